"""Hostile model output end to end: every kind gets a verdict with a clear reason, and the pack and
the report stay well formed, with nothing from the output read as HTML, Markdown or a formula.

The outputs are scripted through the fake model's per-case replies (one case per output), and a
sample goes through the real OpenAI SDK against the loopback server. The report is checked here
as HTML text; ``test_report_browser.py`` opens it in Chromium.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from test_plugin import PACK, edit_json, make_project, summary, version_named, write_project
from test_providers import SENTINEL_KEY, fake_responder, load_repo_fixtures, walk

from workshop.evidence import FORMULA_TRIGGERS, spreadsheet_safe
from workshop.loopback import LoopbackServer, Reply

V3 = "v3_json_with_boundary"
HostileRun = tuple[Path, "subprocess.CompletedProcess[str]"]


def _contract_json(**fields: Any) -> str:
    answer = {"id": "h", "intent": "learning_plan", "action": "a", "confidence": 0.5, "needs_human_review": False}
    return json.dumps({**answer, **fields})


HOSTILE: dict[str, tuple[str, str]] = {
    # name: (model output, how its reason starts)
    "script": ("<script>window.__pwned=1;alert(1)</script>", "invalid_json: "),
    "img_onerror": ('<img src=x onerror="alert(1)">', "invalid_json: "),
    "javascript_link": ('<a href="javascript:alert(1)">open</a>', "invalid_json: "),
    "closing_tags": ("</td></tr></table></pre></div><script>alert(2)</script>", "invalid_json: "),
    "markdown": ("fine\n- v9 / case_9: a forged failure\n# Heading\n```\n| a | b |\n`code`", "invalid_json: "),
    "formula_equals": ('=HYPERLINK("http://example.invalid","open")', "invalid_json: "),
    "formula_plus": ("+1+cmd|' /C calc'!A0", "invalid_json: "),
    "formula_minus": ("-2+3", "invalid_json: "),
    "formula_at": ("@SUM(A1:A9)", "invalid_json: "),
    "formula_tab": ("\t=1+1", "invalid_json: "),
    "formula_cr": ("\r=1+1", "invalid_json: "),
    "control_chars": ("\x00\x01\x07\x1b[31mred\x1b[0m\x7f\x9b", "invalid_json: "),
    "lone_surrogates": ("\ud800 then \udfff", "invalid_json: "),
    "ten_megabytes": ("x" * 10_000_000, "invalid_json: output is 10000000 bytes, over the 65536-byte limit"),
    "nested_brackets": ("[" * 100_000, "invalid_json: output is 100000 bytes, over the 65536-byte limit"),
    "deep_nesting": ("[" * 10_000 + "]" * 10_000, "invalid_json: nested deeper than 64 levels"),
    "duplicate_keys": (_contract_json()[:-1] + ', "intent": "structured_output"}', "invalid_json: duplicate key"),
    "nan": (_contract_json(confidence=0.5).replace("0.5", "NaN"), "invalid_json: NaN is not valid JSON"),
    "huge_number": (_contract_json(confidence=0.5).replace("0.5", "1e400"), "invalid_json: "),
    "html_in_fields": (_contract_json(intent="<img src=x onerror=alert(3)>", action="</td><script>"), "bad_intent: "),
}


def hostile_case(name: str) -> dict[str, str]:
    return {
        "id": f"h_{name}",
        "user_input": f"Hostile output number {sorted(HOSTILE).index(name)}.",
        "expected_intent": "learning_plan",
        "expected_route": "Prompt first",
    }


def add_hostile_cases(root: Path, scripted: bool = True) -> None:
    """One case per hostile output; with ``scripted``, the fake model's v3 answers each with it."""
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].extend(map(hostile_case, HOSTILE)))
    if scripted:
        path = root / "cases" / "prompt_versions.json"
        data = json.loads(path.read_text(encoding="utf-8"))
        replies = version_named(data, V3)["fake_model"].setdefault("scripted_replies", {})
        replies.update({f"h_{name}": output for name, (output, _) in HOSTILE.items()})
        # ASCII escapes: a lone surrogate is valid in JSON text but cannot be written as UTF-8
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def csv_rows(root: Path) -> list[list[str]]:
    text = (root / PACK / "prompt_eval.csv").read_bytes().decode("utf-8")
    limit = csv.field_size_limit(sys.maxsize)  # the reader's default stops at 128 KiB; a cell here holds 10 MB
    try:
        return list(csv.reader(io.StringIO(text, newline="")))
    finally:
        csv.field_size_limit(limit)


class _Elements(HTMLParser):
    """Every start tag with its attributes, as a browser's tokenizer would read them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def elements(html_text: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Elements()
    parser.feed(html_text)
    parser.close()
    return parser.tags


ACTIVE_TAGS = ("script", "img", "svg", "iframe", "object", "embed", "a", "form", "meta", "link", "style")


def active_surface(html_text: str) -> tuple[dict[str, int], set[str], list[str]]:
    """What in a page can run code or load something: how many elements of each active kind,
    which ``on*`` handler attributes, and which ``javascript:`` links or sources."""
    tags = elements(html_text)
    counts = {kind: sum(tag == kind for tag, _ in tags) for kind in ACTIVE_TAGS}
    handlers = {name for _, attrs in tags for name in attrs if name.startswith("on")}
    links = [
        value
        for _, attrs in tags
        for name, value in attrs.items()
        if name in ("href", "src", "action", "formaction") and value and value.strip().lower().startswith("javascript:")
    ]
    return counts, handlers, links


# --------------------------------------------------------------------------- the fake model's replies


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One run of the seed project plus a case per hostile output, shared by this module's checks
    (it takes seconds: a 10 MB answer goes through the validator, the pack and the report)."""
    root = write_project(tmp_path_factory.mktemp("hostile"), html_report=True)
    add_hostile_cases(root)
    command = [sys.executable, "-m", "pytest", "--no-baseline", "-p", "no:cacheprovider"]
    return root, subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300, check=False)


def test_every_hostile_output_fails_with_its_clear_reason(
    hostile_run: HostileRun,
) -> None:
    root, result = hostile_run
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, result.stdout[-3000:] + result.stderr[-3000:]
    cells = {(c["prompt_version"], c["case_id"]): c for c in summary(root)["cells"]}
    for name, (_, reason_start) in HOSTILE.items():
        cell = cells[(V3, f"h_{name}")]
        assert cell["passed"] is False, name
        assert cell["reason"].startswith(reason_start), (name, cell["reason"])
        assert "\n" not in cell["reason"] and "\r" not in cell["reason"], "a reason is one line"
    assert "Traceback" not in result.stdout + result.stderr


def test_summary_json_keeps_the_exact_output(hostile_run: HostileRun) -> None:
    root, _ = hostile_run
    cells = {(c["prompt_version"], c["case_id"]): c for c in summary(root)["cells"]}
    for name, (output, _) in HOSTILE.items():
        assert cells[(V3, f"h_{name}")]["raw_output"] == output, name


def test_csv_parses_back_to_the_same_rows_with_formulas_neutralised(
    hostile_run: HostileRun,
) -> None:
    root, _ = hostile_run
    rows = csv_rows(root)
    expected = [
        [c["prompt_version"], c["case_id"], str(c["passed"]), c["reason"], c["raw_output"]]
        for c in summary(root)["cells"]
    ]
    assert len(rows) == 1 + len(expected), "one row per evaluation: no output split or joined rows"

    def as_written(text: str) -> str:
        # lone surrogates cannot be UTF-8: the CSV shows them as escapes
        return spreadsheet_safe(text).encode("utf-8", "backslashreplace").decode("utf-8")

    assert rows[1:] == [[as_written(value) for value in row] for row in expected]
    assert not any(cell.startswith(FORMULA_TRIGGERS) for row in rows for cell in row)
    by_case = {row[1]: row for row in rows[1:] if row[0] == V3}
    assert by_case["h_formula_equals"][4] == "'" + HOSTILE["formula_equals"][0]
    assert by_case["h_formula_cr"][4] == "'\r=1+1"


def test_failure_cases_keeps_one_list_item_per_failure(
    hostile_run: HostileRun,
) -> None:
    root, _ = hostile_run
    text = (root / PACK / "failure_cases.md").read_bytes().decode("utf-8")
    lines = re.split(r"\r\n|\r|\n", text)  # CommonMark's line endings
    seed_part = lines[: lines.index("## Failures by reason")] if "## Failures by reason" in lines else lines
    items = [line for line in seed_part if line.startswith("- ")]
    failures = [c for c in summary(root)["cells"] if not c["passed"]]
    assert len(items) == len(failures)
    assert seed_part[:2] == ["# Failure Cases", ""]
    assert all(line.startswith("- ") for line in seed_part[2:] if line), "nothing else between the items"
    assert not any(line.startswith(("#", "```", "|")) for line in seed_part[2:]), "no heading, fence or table"
    assert "- v9 / case_9" not in text.replace("\\n- v9 / case_9", ""), "the forged item stays inside its line"
    assert not re.search(r"<[A-Za-z/!?]", text), "no tag a Markdown renderer (GitHub's) would build or load"
    assert "- v3_json_with_boundary / h_html_in_fields: bad_intent: &lt;img src=x onerror=alert(3)&gt;" in items


def test_every_json_file_parses(hostile_run: HostileRun) -> None:
    root, _ = hostile_run
    for name in ("summary.json", "token_trace.json", "route_decisions.json"):
        json.loads((root / PACK / name).read_bytes().decode("utf-8"))


def test_the_report_runs_nothing_from_the_output(hostile_run: HostileRun, pytester: pytest.Pytester) -> None:
    root, _ = hostile_run
    hostile_html = (root / "reports" / "report.html").read_text(encoding="utf-8", errors="strict")
    # the same project without hostile answers: what pytest-html itself puts in a page
    clean = make_project(pytester, html_report=True)
    add_hostile_cases(clean, scripted=False)
    pytester.runpytest("--no-baseline", "-p", "no:cacheprovider")
    clean_html = (clean / "reports" / "report.html").read_text(encoding="utf-8")

    counts, handlers, links = active_surface(hostile_html)
    assert (counts, handlers, links) == active_surface(clean_html), "pytest-html's own elements, nothing more"
    assert links == []

    # pytest-html keeps each row as HTML inside a JSON attribute and inserts it with innerHTML
    # when the page loads: those fragments must hold nothing active either
    match = re.search(r'<div id="data-container" data-jsonblob="([^"]*)"', hostile_html)
    assert match
    blob = json.loads(html.unescape(match.group(1)))
    fragments = [node for node in walk(blob) if isinstance(node, str) and "<" in node]
    assert any("col-reason" in fragment for fragment in fragments), "the rows are among the fragments"
    for fragment in fragments:
        tags = elements(fragment)
        assert not [tag for tag, _ in tags if tag in ("script", "img", "svg", "iframe", "object", "embed")], fragment
        assert not [name for _, attrs in tags for name in attrs if name.startswith("on")], fragment


def test_report_keeps_a_huge_output_short(hostile_run: HostileRun) -> None:
    root, _ = hostile_run
    size = (root / "reports" / "report.html").stat().st_size
    assert size < 2_000_000, "a 10 MB answer is cut in the report (the pack keeps it whole)"


# --------------------------------------------------------------------------- through the real SDK

THROUGH_SDK = ("closing_tags", "markdown", "formula_equals", "control_chars", "deep_nesting", "nan")


@pytest.mark.parametrize("provider", ["openai", "openai-chat"])
def test_hostile_answers_from_a_real_provider_are_judged_and_kept_exactly(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, provider: str
) -> None:
    for name in ("OPENAI_MODEL", "WORKSHOP_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SENTINEL_KEY)
    root = make_project(pytester)
    edit_json(root / "cases" / "cases.json", lambda data: data["cases"].extend(map(hostile_case, THROUGH_SDK)))
    answers = {f"h_{name}": HOSTILE[name][0] for name in THROUGH_SDK}

    def hostile(version: str, case: str) -> Reply | None:
        return Reply(text=answers[case]) if version == V3 and case in answers else None

    with LoopbackServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        server.responder = fake_responder(load_repo_fixtures(root / "cases"), hostile)
        # a subprocess: an in-process run would drop the SDK modules it imports, confusing later tests
        result = pytester.runpytest_subprocess("--provider", provider, "--no-baseline", "--max-retries", "0")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cells = {(c["prompt_version"], c["case_id"]): c for c in summary(root)["cells"]}
    for name in THROUGH_SDK:
        cell = cells[(V3, f"h_{name}")]
        assert cell["raw_output"] == HOSTILE[name][0], name
        assert cell["reason"].startswith(HOSTILE[name][1]), (name, cell["reason"])
    rows = {(row[0], row[1]): row for row in csv_rows(root)[1:]}
    assert rows[(V3, "h_formula_equals")][4] == "'" + HOSTILE["formula_equals"][0]
    assert len(rows) == len(cells)
