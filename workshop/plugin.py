"""The pytest plugin (entry point ``pytest11: workshop``): hooks that hand off to the suite.

Inert unless a cases file is configured (``--cases`` or the ``cases`` ini value), so
installing the package changes nothing in other projects.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from pathlib import Path
from typing import Any

import pytest
from pytest_html.extras import html as html_extra

from workshop import report as html_report
from workshop.calls import Prefetcher
from workshop.console import analysis_lines, version_line
from workshop.errors import WorkshopError
from workshop.evaluation import EvalResult
from workshop.gate import Outcome
from workshop.github import write_step_summary
from workshop.model import ProviderError
from workshop.settings import add_options, read_settings
from workshop.suite import Cell, EvalSuite, RunCollector, RunReport
from workshop.summary import run_metadata

SUITE_KEY = pytest.StashKey[EvalSuite]()


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)


@pytest.hookimpl(tryfirst=True)  # before pytest-html reads --html
def pytest_configure(config: pytest.Config) -> None:
    settings = read_settings(config)
    if settings is None:
        return
    try:
        suite = EvalSuite.load(settings)
    except WorkshopError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[SUITE_KEY] = suite
    collector = None
    if not hasattr(config, "workerinput"):  # controller only: workers write no files
        baseline = settings.baseline if settings.use_baseline else None
        metadata = run_metadata(suite.fixtures, config.rootpath, config.invocation_params.args, baseline)
        collector = RunCollector(suite, config.getoption("keyword") or None, metadata)
    _default_html_report(config, settings.html_report)
    html_on = config.pluginmanager.hasplugin("html") and bool(config.getoption("htmlpath", None))
    active = ActiveSuite(suite, collector, html_on, settings.html_full_rows)
    config.pluginmanager.register(active, "workshop-suite")


def _default_html_report(config: pytest.Config, path: Path | None) -> None:
    """Write the configured self-contained HTML report unless --html says otherwise."""
    if path is None or not config.pluginmanager.hasplugin("html") or config.getoption("htmlpath", None):
        return
    config.option.htmlpath = str(path)
    config.option.self_contained_html = True


@pytest.fixture(scope="session")
def eval_suite(pytestconfig: pytest.Config) -> EvalSuite:
    """The loaded suite: fixtures, model, baseline."""
    suite = pytestconfig.stash.get(SUITE_KEY, None)
    if suite is None:
        pytest.fail("no workshop cases configured: set `cases` in the pytest ini options or pass --cases", False)
    return suite


def _cell(item: pytest.Item) -> Cell | None:
    callspec = getattr(item, "callspec", None)
    return callspec.params.get("prompt_cell") if callspec else None


def _set_outcome(report: pytest.TestReport, outcome: tuple[str, str] | None) -> None:
    """The gate's verdict as the test's outcome, set on the report as pytest's own xfail does."""
    if outcome is None:
        return
    kind, text = outcome
    if kind == "xfail":
        report.outcome = "skipped"
        report.wasxfail = text
    else:
        report.outcome = "failed"
        report.longrepr = text


def _folded(report: pytest.TestReport) -> bool:
    """At scale, passes and known failures are counted in the matrix, not listed as rows."""
    return report.passed or hasattr(report, "wasxfail")


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _queued_items(session: pytest.Session) -> list[pytest.Item]:
    """The items xdist has handed this worker and it has not run yet.

    xdist has no public API for this, so it is read from its worker's queue; if that
    ever changes, the worker falls back to calling one cell at a time.
    """
    for plugin in session.config.pluginmanager.get_plugins():
        queue = getattr(plugin, "torun", None)
        if queue is None or not hasattr(queue, "lock"):
            continue
        try:
            with queue.lock() as pending:
                return [session.items[index] for index in pending if isinstance(index, int)]
        except Exception:
            return []
    return []


def _wait_with_progress(config: pytest.Config, prefetcher: Prefetcher) -> None:
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None:
        prefetcher.wait_all()
        return
    stats = prefetcher.wait_all(progress=lambda stats: terminal.rewrite(stats.line()))
    terminal.rewrite(stats.line())
    terminal.write_line("")


class ActiveSuite:
    """Hooks of a configured run; registered by `pytest_configure`."""

    def __init__(self, suite: EvalSuite, collector: RunCollector | None, html_on: bool, full_rows: int) -> None:
        self.suite = suite
        self.collector = collector
        self.html_on = html_on
        self.full_rows = full_rows
        self.eval_count = 0
        self.step_summary_error: str | None = None

    @property
    def fold(self) -> bool:
        """Above ``html_full_rows`` evaluations, passes and known failures live in the matrix and the pack,
        not as report rows: a report of tens of thousands of rows takes a browser too long to open."""
        return self.html_on and self.eval_count > self.full_rows

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        cases = self.suite.fixtures.cases
        if "prompt_cell" in metafunc.fixturenames:
            metafunc.parametrize("prompt_cell", [pytest.param(cell, id=cell.id) for cell in self.suite.cells])
        if "workshop_case" in metafunc.fixturenames:
            metafunc.parametrize("workshop_case", [pytest.param(case, id=case.id) for case in cases])
        if "route_case" in metafunc.fixturenames:
            routed = [pytest.param(case, id=case.id) for case in cases if case.expected_route is not None]
            metafunc.parametrize("route_case", routed)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        # serial runs: every selected cell is called before the first test asserts
        prefetcher = self.suite.prefetcher
        if prefetcher is None or _is_worker(session.config) or not session.items:
            return
        cells = [cell for item in session.items if (cell := _cell(item)) is not None]
        if self.suite.prefetch(cells):
            _wait_with_progress(session.config, prefetcher)

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        cell = _cell(item)
        if cell is None:
            return
        # JUnit XML properties (`--junitxml`): they travel in the reports, so xdist keeps them
        item.user_properties += [("version", cell.version.name), ("case", cell.case.id)]
        if self.suite.prefetcher is None:
            return
        if _is_worker(item.config):  # call what this worker was handed, not what the others run
            queued = [queued for other in _queued_items(item.session) if (queued := _cell(other)) is not None]
            self.suite.prefetch([cell, *queued])
        try:
            self.suite.prepare(cell)
        except ProviderError as exc:
            pytest.fail(f"provider_error: {cell.version.name} / {cell.case.id}: {exc}", pytrace=False)

    @pytest.hookimpl(tryfirst=True)  # before -k: a cell's shard never depends on the selection
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        shard = self.suite.settings.shard
        if shard is None:
            return
        positions = {cell.id: position for position, cell in enumerate(self.suite.cells)}
        kept, deselected, others = [], [], 0
        for item in items:
            cell = _cell(item)
            if cell is not None:
                position = positions[cell.id]
            else:  # other tests take turns over the shards too
                position, others = others, others + 1
            (kept if shard.takes(position) else deselected).append(item)
        if deselected:
            config.hook.pytest_deselected(items=deselected)
            items[:] = kept

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.eval_count = sum(1 for item in session.items if _cell(item) is not None)
        if self.collector is not None:
            self.collector.select(item.nodeid for item in session.items)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: object, ids: Sequence[str]) -> None:
        if self.collector is not None:
            self.collector.select(ids)
            self.eval_count = len(self.collector.selected)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        cell = _cell(item)
        if cell is not None and report.when == "setup" and report.failed:
            error = self.suite.error_of(cell)
            if error is not None:
                report.workshop_error = {"prompt_version": cell.version.name, "case_id": cell.case.id, "error": error}
        result = self.suite.result_of(cell) if cell is not None and report.when == "call" else None
        if result is not None and report.passed:
            _set_outcome(report, self.suite.test_outcome(cell))  # type: ignore[arg-type]
        if result is not None:
            item.user_properties.append(("reason", result.reason))  # the teardown report carries it to JUnit XML
            # plain JSON data: it crosses from xdist workers to the controller in the report
            report.workshop_result = result.to_json()
            if self.html_on and not (self.fold and _folded(report)):
                extra = html_report.result_extra_html(result, with_payload=not self.fold)
                report.extras = [*getattr(report, "extras", []), html_extra(extra)]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.collector is None:
            return
        data = getattr(report, "workshop_result", None)
        if data is not None:
            # in a serial run the result is right here; from xdist workers it comes as data
            result = self.suite.result_by_key((data["prompt_version"], data["case_id"]))
            self.collector.add(result or EvalResult.from_json(data))
            # pytest keeps every report to the end: keep only what the HTML row needs
            report.workshop_result = {key: data[key] for key in ("prompt_version", "case_id", "reason")}
        error = getattr(report, "workshop_error", None)
        if error is not None:
            self.collector.add_error(error)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: object) -> None:
        recorded = getattr(node, "workeroutput", {}).get("workshop_recordings")
        if recorded and self.suite.recordings is not None:
            self.suite.recordings.add_recorded(recorded)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        self.suite.close()
        recordings = self.suite.recordings
        if _is_worker(session.config):
            if recordings is not None:  # the controller writes the files
                session.config.workeroutput["workshop_recordings"] = recordings.new_recordings()
            return
        if recordings is not None:
            recordings.save()
        if self.collector is None:
            return
        _one_line_per_failure_at_scale(session.config)
        run = self.collector.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)
        if run.pack_error:
            session.exitstatus = pytest.ExitCode.USAGE_ERROR
        if run.results or run.errors:
            self._write_step_summary(run)

    def _write_step_summary(self, run: RunReport) -> None:
        shard = self.suite.settings.shard
        title = "Prompt evaluation" + (f" (shard {shard})" if shard else "")
        self.step_summary_error = write_step_summary(run, self.suite.fixtures, title)

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        run = self.collector.report if self.collector else None
        if run is None or not (run.results or run.errors):
            return
        _print_summary(terminalreporter, run, terminalreporter.config.invocation_params.dir)
        if self.step_summary_error:
            terminalreporter.write_line(self.step_summary_error, yellow=True)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[2:2] = html_report.header_cells()

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        result = getattr(report, "workshop_result", None)
        if result is not None and self.fold and _folded(report):
            cells.clear()  # pytest-html leaves out a row with no cells
            return
        cells[2:2] = html_report.row_cells(result)

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(self, prefix: list[str], summary: list[str], postfix: list[str]) -> None:
        run = self.collector.report if self.collector else None
        if run is not None and (run.results or run.errors):
            fixtures = self.suite.fixtures
            versions, cases = [v.name for v in fixtures.versions], [c.id for c in fixtures.cases]
            folded = sum(o.outcome in FOLDED_OUTCOMES for o in run.outcomes) if self.fold else 0
            prefix.append(html_report.summary_matrix(run, versions, cases, folded))


FOLDED_OUTCOMES = frozenset({Outcome.PASSED, Outcome.NEW, Outcome.KNOWN_FAILURE})
MAX_FAILURE_SECTIONS = 200
"""Above this many failures, pytest's default traceback style gives way to one line per failure."""


def _one_line_per_failure_at_scale(config: pytest.Config) -> None:
    """pytest prints each failure's section by scanning every report of the run, which is quadratic:
    with thousands of failing cells (``--no-baseline`` on a big suite) it takes minutes. Above
    `MAX_FAILURE_SECTIONS`, and only if the user chose no ``--tb`` style, show one line per failure;
    each failure's full message is in ``failure_cases.md`` and the HTML report."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    if terminal is None or config.option.tbstyle != "auto":
        return
    failures = len(terminal.stats.get("failed", ()))
    if failures > MAX_FAILURE_SECTIONS:
        config.option.tbstyle = "line"
        terminal.write_line(
            f"{failures} failures: one line each (pass --tb=short for full sections); "
            "every message is in the evidence pack and the HTML report"
        )


def _shown(path: Path, base: Path) -> str:
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return path.as_posix()


def _print_summary(terminal: pytest.TerminalReporter, run: RunReport, base: Path) -> None:
    terminal.write_sep("=", "prompt evaluation")
    terminal.write_line("STEP 2: Prompt version evaluation")
    for score in run.scores:
        terminal.write_line(version_line(score))
    verdict = run.verdict
    terminal.write_line(verdict.summary_line(), green=verdict.passed, red=not verdict.passed, bold=True)
    for kind, cells in (
        ("regression", verdict.regressions),
        ("improvement", verdict.improvements),
        ("new failure", verdict.new_failures),
    ):
        for cell in cells:
            terminal.write_line(f"  {kind}: {cell.prompt_version} / {cell.case_id}: {cell.reason}")
    if verdict.improvements:
        terminal.write_line("  record improvements with `pytest --update-baseline`")
    for cell in run.outcomes:
        if cell.outcome is Outcome.KNOWN_FAILURE and cell.recorded_reason != cell.reason:
            terminal.write_line(
                f"  known failure, reason changed: {cell.prompt_version} / {cell.case_id}: "
                f"{cell.recorded_reason} -> {cell.reason}"
            )
    for version, case_id, error in run.errors:
        terminal.write_line(f"  no result: {version} / {case_id}: {error}")
    trials = [trial for result in run.results for trial in result.trials]
    replayed = sum(trial.completion.replayed for trial in trials)
    if replayed or any(trial.completion.latency_s is not None for trial in trials) or run.errors:
        tokens = [(t.completion.input_tokens or 0, t.completion.output_tokens or 0) for t in trials]
        terminal.write_line(
            f"Model calls: {len(trials) - replayed} answered by the model, {replayed} replayed from recordings, "
            f"{len(run.errors)} cells failed; tokens in/out {sum(i for i, _ in tokens)}/{sum(o for _, o in tokens)}"
        )
    if run.analysis is not None:
        for line in analysis_lines(run.analysis):
            terminal.write_line(line)
    if run.baseline_changes is not None:
        terminal.write_line(f"Baseline updated: {len(run.baseline_changes)} change(s)")
        for line in run.baseline_changes:
            terminal.write_line(f"  {line}")
    if run.pack_error:
        terminal.write_line(f"Evidence pack NOT written: {run.pack_error}", red=True)
    elif run.pack:
        missing = len(run.missing) + len(run.errors)
        state = "complete" if run.complete else f"INCOMPLETE: {missing} selected evaluations have no result"
        where = _shown(run.pack[0].parent, base)
        took = f"; written in {run.pack_seconds:.2f} s" if run.pack_seconds is not None else ""
        terminal.write_line(f"Evidence pack: {where} ({len(run.results)} of {run.total} evaluations; {state}{took})")
    if run.history is not None:
        terminal.write_line(f"Kept in history: {_shown(run.history, base)}")
    for line in run.since_previous:
        terminal.write_line(line)
    if run.history_error:
        terminal.write_line(f"History NOT kept: {run.history_error}", yellow=True)
