"""The HTML report as a reader sees it: opened in a real headless Chromium, not parsed as text.

``test_plugin`` checks the report's bytes; these tests check what a browser makes of them, because
pytest-html builds its rows in JavaScript (``insertAdjacentHTML``, ``template.innerHTML``) from a JSON
blob, so escaping that looks right in the file could still turn into markup on the page. Each test
runs the evaluation suite in a throwaway pytester project whose ``v3_json_with_boundary`` (which
otherwise passes every case) answers hostile text, turning its three cases into FAILED regressions,
then opens ``reports/report.html`` from ``file://`` and checks:

- the summary matrix and the extra columns (Prompt version, Case, Reason) show the right text;
- pytest-html's own outcome checkboxes, clicked as a user would, leave only the failed rows;
- an expanded row shows the raw model output as text, exactly as the model returned it;
- the hostile output shows no dialog, runs no script, adds none of its elements to the page and
  makes no request: the report file is the only thing the page loads;
- nothing logs a console error or throws, while the reader filters, sorts and expands rows.

The filter test also saves a full-page screenshot of the failed rows for reviewers
(``reports/report-screenshot.png``, git-ignored like the rest of ``reports/``).

A control test opens a page that does run the same payloads, so the watchers cannot pass by
seeing nothing. The browser is Debian's ``chromium`` driven by Playwright with ``executable_path``
(never a browser download), as ``benchmarks/bench_report_browser.py`` does. Without chromium or
Playwright the tests skip, unless ``WORKSHOP_REQUIRE_BROWSER=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import importlib.util
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import pytest
from test_plugin import edit_json, make_project, version_named

from benchmarks.common import CHROMIUM, CHROMIUM_ARGS
from workshop.cli import main

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Dialog, Locator, Page, Request, Route

REPO = Path(__file__).resolve().parents[1]
SCREENSHOT = REPO / "reports" / "report-screenshot.png"
REQUIRE_BROWSER = "WORKSHOP_REQUIRE_BROWSER"
TIMEOUT_MS = 10_000

V3 = "v3_json_with_boundary"
ROW = "tests/test_prompt_eval.py::test_prompt_version[{version}-{case}]"

# Each would run a script, open a dialog, add an element or load something if it became markup.
SCRIPT_TAG = "<script>window.__pwned=1</script>"
IMG_ONERROR = '<img src=x onerror="window.__pwned=1;alert(1)">'
JS_LINK = '<a href="javascript:alert(1)">x</a>'
BREAKOUT = "</td></table></pre><script>alert(2)</script>"
SVG_ONLOAD = "<svg onload=alert(3)>"
REMOTE = (
    '<iframe src="https://example.invalid/frame"></iframe><link rel="stylesheet" href="https://example.invalid/s.css">'
)
HOSTILE_INTENT = '<img src=x onerror="window.__pwned=1;alert(4)">'
HOSTILE_ACTION = "</pre><script>window.__pwned=1;alert(5)</script>"

HOSTILE_REPLIES = {
    # not JSON: invalid_json
    "case_1": f"{SCRIPT_TAG}{IMG_ONERROR}\n{JS_LINK}  {SVG_ONLOAD}",
    "case_2": f"{BREAKOUT}\n{REMOTE}",
    # valid JSON whose intent is HTML: bad_intent, and the reason quotes it
    "case_3": json.dumps(
        {
            "id": "case_3",
            "intent": HOSTILE_INTENT,
            "action": HOSTILE_ACTION,
            "confidence": 0.5,
            "needs_human_review": False,
        }
    ),
}
REASONS = {
    "case_1": "invalid_json: Expecting value",
    "case_2": "invalid_json: Expecting value",
    "case_3": f"bad_intent: {HOSTILE_INTENT}",
}
GATE_LINE = "Gate: FAIL (3 regressions, 0 improvements to record, 0 new failures, 4 known failures)"

# Elements and effects any of the payloads would leave on the page had it become markup.
PAYLOAD_TRACES = {
    "img with a source": 'img[src]:not([src=""])',  # pytest-html's media template holds <img src="">
    "svg": "svg",
    "iframe": "iframe",
    "javascript: link": 'a[href^="javascript:"]',
    "linked stylesheet": "link",
}


# --------------------------------------------------------------------------- browser


def _unavailable(reason: str) -> NoReturn:
    """Skip, or fail loudly where the browser tests must run (CI sets WORKSHOP_REQUIRE_BROWSER=1)."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Debian chromium for the whole module."""
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(f"{CHROMIUM} not found (apt-get install chromium)")
    if importlib.util.find_spec("playwright") is None:
        _unavailable("the playwright package is not installed (pip install -e '.[dev]')")
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        except Error as exc:
            _unavailable(f"{CHROMIUM} did not start: {exc.message.splitlines()[0]}")
        yield launched
        launched.close()


@dataclass
class Watch:
    """Everything a page did that a report must never do."""

    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)


class Opened(NamedTuple):
    page: Page
    watch: Watch


def _block_the_network(watch: Watch) -> Callable[[Route, Request], None]:
    def handle(route: Route, request: Request) -> None:
        if request.url.startswith("file:"):
            route.continue_()
        else:
            watch.blocked.append(request.url)
            route.abort()

    return handle


@pytest.fixture
def open_page(browser: Browser) -> Iterator[Callable[[str], Opened]]:
    """Open a URL in a fresh context with every watcher attached before navigation."""
    contexts: list[BrowserContext] = []

    def open_(url: str) -> Opened:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        contexts.append(context)
        watch = Watch()
        context.route("**/*", _block_the_network(watch))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)

        def on_dialog(dialog: Dialog) -> None:
            watch.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        def on_console(message: ConsoleMessage) -> None:
            if message.type == "error":
                watch.console_errors.append(message.text)

        page.on("dialog", on_dialog)
        page.on("console", on_console)
        page.on("pageerror", lambda error: watch.page_errors.append(str(error)))
        page.on("request", lambda request: watch.requests.append(request.url))
        page.goto(url, wait_until="load")
        return Opened(page, watch)

    yield open_
    for context in contexts:
        context.close()


# --------------------------------------------------------------------------- the report


def _hostile_replies(data: dict[str, Any]) -> None:
    version_named(data, V3)["fake_model"]["scripted_replies"] = HOSTILE_REPLIES


@pytest.fixture
def report(pytester: pytest.Pytester) -> Path:
    """The report of a run whose v3 answers hostile text for every case: three FAILED regressions."""
    root = make_project(pytester, html_report=True)
    edit_json(root / "cases" / "prompt_versions.json", _hostile_replies)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=8, failed=3, xfailed=4)
    result.stdout.fnmatch_lines([GATE_LINE])
    path = root / "reports" / "report.html"
    assert path.is_file()
    return path


def _open_report(open_page: Callable[[str], Opened], report: Path) -> Opened:
    opened = open_page(report.as_uri())
    opened.page.wait_for_selector("#results-table tbody.results-table-row", state="visible")
    return opened


def _row(page: Page, case: str) -> Locator:
    return page.locator(f'tbody.results-table-row[id="{ROW.format(version=V3, case=case)}"]')


def _shown_rows(page: Page) -> list[tuple[str, str]]:
    """(outcome, test id) of every results row the reader can see."""
    return [
        (classes.replace("results-table-row", "").strip(), test_id)
        for classes, test_id in page.locator("#results-table tbody.results-table-row").evaluate_all(
            "rows => rows.filter(row => row.querySelector('tr.collapsible').checkVisibility())"
            ".map(row => [row.className, row.id])"
        )
    ]


def _assert_quiet(watch: Watch, report: Path) -> None:
    assert watch.dialogs == []
    assert watch.console_errors == []
    assert watch.page_errors == []
    assert watch.blocked == []
    assert watch.requests == [report.as_uri()], "the report file is the only thing the page loads"


# --------------------------------------------------------------------------- tests


def test_summary_matrix_and_custom_columns_show_versions_cases_and_reasons(
    open_page: Callable[[str], Opened], report: Path
) -> None:
    page, watch = _open_report(open_page, report)
    matrix = page.locator(".summary .workshop-matrix")
    assert matrix.is_visible()
    assert matrix.locator("h2").inner_text() == "Prompt evaluation"
    assert matrix.locator("p").first.inner_text() == GATE_LINE
    table = matrix.locator("table").first
    header = table.locator("tr").first.locator("th").all_inner_texts()
    assert header == ["Prompt version", "Passed", "case_1", "case_2", "case_3"]
    body = [row.locator("th, td").all_inner_texts() for row in table.locator("tr").all()[1:]]
    assert body == [
        ["v1_goal_only", "0/3", "known failure", "known failure", "known failure"],
        ["v2_json_contract", "2/3", "pass", "pass", "known failure"],
        [V3, "0/3", "REGRESSION", "REGRESSION", "REGRESSION"],
    ]
    v3_cells = table.locator("tr").nth(3).locator("td")
    titles = [v3_cells.nth(i).get_attribute("title") for i in range(1, 4)]
    assert titles == [REASONS["case_1"], REASONS["case_2"], REASONS["case_3"]], "reasons as hover text, unescaped"

    heads = page.locator("#results-table-head th").all_inner_texts()
    assert [head.strip() for head in heads][:5] == ["Result", "Test", "Prompt version", "Case", "Reason"]
    for case, reason in REASONS.items():
        row = _row(page, case)
        assert row.locator("td.col-result").inner_text() == "Failed"
        assert row.locator("td.col-version").inner_text() == V3
        assert row.locator("td.col-case").inner_text() == case
        assert row.locator("td.col-reason").text_content() == reason
        assert row.locator("td.col-reason *").count() == 0, "the reason is text, not markup"
    route_row = page.locator('tbody.results-table-row[id="tests/test_prompt_eval.py::test_route[case_1]"]')
    assert [route_row.locator(f"td.col-{key}").text_content() for key in ("version", "case", "reason")] == ["", "", ""]
    _assert_quiet(watch, report)


def test_outcome_filters_clicked_by_a_reader_leave_only_the_failed_rows(
    open_page: Callable[[str], Opened], report: Path
) -> None:
    page, watch = _open_report(open_page, report)
    failed = [("failed", ROW.format(version=V3, case=case)) for case in REASONS]
    before = _shown_rows(page)
    assert len(before) == 15
    assert {outcome for outcome, _ in before} == {"failed", "passed", "xfailed"}

    filters = page.locator('input.filter[name="filter_checkbox"]')
    others = [
        box.get_attribute("data-test-result")
        for box in filters.all()
        if box.get_attribute("data-test-result") != "failed" and box.is_enabled()
    ]
    assert sorted(others) == ["passed", "xfailed"], "the outcomes this run has besides failed"
    for outcome in others:
        page.locator(f'input.filter[data-test-result="{outcome}"]').click()
    assert page.locator('input.filter[data-test-result="failed"]').is_checked()
    assert not any(page.locator(f'input.filter[data-test-result="{outcome}"]').is_checked() for outcome in others)
    assert sorted(_shown_rows(page)) == sorted(failed)
    # for reviewers: the matrix, the columns and the failed rows with their hostile output, as a reader sees them
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # and back: the reader's click on "passed" brings the passed rows back
    page.locator('input.filter[data-test-result="passed"]').click()
    assert {outcome for outcome, _ in _shown_rows(page)} == {"failed", "passed"}
    _assert_quiet(watch, report)


def test_expanded_row_shows_the_raw_model_output_as_text(open_page: Callable[[str], Opened], report: Path) -> None:
    page, watch = _open_report(open_page, report)
    for case, raw in HOSTILE_REPLIES.items():
        row = _row(page, case)
        extras = row.locator("tr.extras-row")
        # a reader's click on the result cell collapses the row, a second click expands it again
        row.locator("td.col-result").click()
        assert extras.is_hidden()
        row.locator("td.col-result").click()
        assert extras.is_visible()
        extra = extras.locator("div.workshop-extra")
        assert extra.is_visible()
        output = extra.locator("p:has-text('Raw model output') + pre")
        assert output.count() == 1
        assert output.text_content() == raw
        assert output.locator("*").count() == 0, "the output is text, not markup"
        assert extra.locator("p").first.inner_text().startswith("expected intent: ")
    _assert_quiet(watch, report)


def test_hostile_model_output_runs_no_script_opens_no_dialog_and_loads_nothing(
    open_page: Callable[[str], Opened], report: Path
) -> None:
    page, watch = _open_report(open_page, report)
    # render every row's extras and log, then re-render the table by sorting on the reason column
    page.locator("#show_all_details").click()
    page.locator('#results-table-head th[data-column-type="reason"]').click()
    page.locator("#show_all_details").click()
    assert page.locator("div.workshop-extra").count() == 9  # one per evaluation
    assert all(extra.is_visible() for extra in page.locator("div.workshop-extra").all())
    page.wait_for_timeout(200)  # an onerror or onload handler would have fired by now

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 1, "pytest-html's own script only"
    found = {name: page.locator(selector).count() for name, selector in PAYLOAD_TRACES.items()}
    assert found == dict.fromkeys(PAYLOAD_TRACES, 0)
    _assert_quiet(watch, report)


def test_merged_report_shows_hostile_output_as_text_and_runs_nothing(
    open_page: Callable[[str], Opened], pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the page `python -m workshop merge --html` writes for shard packs: no pytest-html, our HTML alone
    root = make_project(pytester)
    edit_json(root / "cases" / "prompt_versions.json", _hostile_replies)
    for k in (1, 2):
        pytester.runpytest("-p", "no:cacheprovider", "--shard", f"{k}/2", "--evidence-dir", f"reports/shard{k}")
    monkeypatch.chdir(root)
    merged = root / "reports" / "merged.html"
    assert main(["merge", "reports/shard1", "reports/shard2", "-o", "reports/merged", "--html", str(merged)]) == 1

    page, watch = open_page(merged.as_uri())
    page.wait_for_timeout(200)  # an onerror or onload handler would have fired by now
    assert page.locator(".workshop-matrix p").first.inner_text() == GATE_LINE
    shown = {
        row.locator("td").nth(1).inner_text(): row.locator("pre").inner_text()
        for row in page.locator("table.workshop-cells tr").all()[1:]
        if row.locator("td").first.inner_text() == V3
    }
    assert shown == HOSTILE_REPLIES, "each raw output shows as the exact text the model returned"
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 0
    found = {name: page.locator(selector).count() for name, selector in PAYLOAD_TRACES.items()}
    assert found == dict.fromkeys(PAYLOAD_TRACES, 0)
    _assert_quiet(watch, merged)


def test_report_logs_no_console_error_while_a_reader_uses_it(open_page: Callable[[str], Opened], report: Path) -> None:
    page, watch = _open_report(open_page, report)
    page.locator("#environment-header").click()
    for column in ("version", "case", "reason", "result"):
        page.locator(f'#results-table-head th[data-column-type="{column}"]').click()
    page.locator('input.filter[data-test-result="xfailed"]').click()
    page.locator("#hide_all_details").click()
    page.locator("#show_all_details").click()
    page.locator('input.filter[data-test-result="xfailed"]').click()
    page.locator(".logexpander").first.click()
    assert len(_shown_rows(page)) == 15
    _assert_quiet(watch, report)


# --------------------------------------------------------------------------- control


CONTROL_PAGE = f"""<!DOCTYPE html><html><body>
<pre>{HOSTILE_REPLIES["case_1"]}</pre>
{REMOTE}
<script>console.error("control: console error"); throw new Error("control: page error")</script>
</body></html>
"""


def test_watchers_catch_a_page_that_does_run_the_payloads(open_page: Callable[[str], Opened], tmp_path: Path) -> None:
    """The same payloads, unescaped: every watcher and DOM check the report passes must fire here."""
    control = tmp_path / "control.html"
    control.write_text(CONTROL_PAGE, encoding="utf-8")
    page, watch = open_page(control.as_uri())
    page.wait_for_function("window.__pwned === 1")
    page.wait_for_timeout(200)

    assert sorted(watch.dialogs) == ["alert: 1", "alert: 3"], "the img onerror and the svg onload"
    assert "control: console error" in watch.console_errors
    assert any("control: page error" in error for error in watch.page_errors)
    assert watch.requests[0] == control.as_uri()
    assert (tmp_path / "x").as_uri() in watch.requests, "the onerror image loads its source"
    assert set(watch.blocked) == {"https://example.invalid/frame", "https://example.invalid/s.css"}
    assert page.evaluate("document.scripts.length") == 2
    found = {name: page.locator(selector).count() for name, selector in PAYLOAD_TRACES.items()}
    assert all(found.values()), found


@pytest.mark.parametrize(("required", "outcome"), [("1", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_browser_skips_unless_ci_requires_it(
    monkeypatch: pytest.MonkeyPatch, required: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv(REQUIRE_BROWSER, required)
    with pytest.raises(outcome, match="chromium not found") as raised:
        _unavailable("chromium not found")
    assert (REQUIRE_BROWSER in str(raised.value)) is (required == "1"), "CI's failure names the variable"
