"""The evaluation suite behind the pytest plugin: cells to run, results to gather, the pack to write.

`EvalSuite` lives in every process (the controller and each xdist worker): it
knows the fixtures, runs cells and judges them. `RunCollector` lives only in the
controller: it gathers results from test reports and, at the end, writes the
evidence pack and (on request) the baseline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from workshop.analysis import Analysis, analyse
from workshop.calls import CallKey, Prefetcher
from workshop.compare import change_lines, compare_packs
from workshop.errors import EvidenceError
from workshop.evaluation import EvalResult, VersionScore, best_version, score_cell, score_versions
from workshop.evidence import SUMMARY, ReadmeInfo, render_pack, write_pack
from workshop.fake_model import FakeModel
from workshop.fixtures import Case, Fixtures, PromptVersion, load_fixtures
from workshop.gate import (
    Baseline,
    CellKey,
    CellOutcome,
    GateVerdict,
    Outcome,
    baseline_changes,
    classify,
    failure_message,
    judge_run,
    known_failure_reason,
    load_baseline,
    updated_baseline,
    write_baseline,
)
from workshop.history import keep_run, previous_run
from workshop.model import Completion, ProviderError
from workshop.packs import PackOutcomes
from workshop.payload import Payload, build_payload
from workshop.providers import ClientSettings, make_provider, require_sdk
from workshop.recordings import Recorder, RecordingStore
from workshop.routes import decide_routes
from workshop.settings import SuiteSettings
from workshop.shard import Shard
from workshop.summary import render_summary
from workshop.tokens import trace_text

RUN_COMMAND = "pytest"


@dataclass(frozen=True)
class Cell:
    """One (prompt version, case) to evaluate: one generated test."""

    version: PromptVersion
    case: Case
    suite: EvalSuite = field(compare=False, repr=False)

    def check(self) -> EvalResult:
        """Evaluate this cell; the gate's verdict becomes the test's outcome (see `EvalSuite.check`)."""
        return self.suite.check(self)

    @property
    def id(self) -> str:
        """The test id: ``<version>-<case>``, so ``-k v3`` or ``-k case_2`` selects."""
        return f"{self.version.name}-{self.case.id}"

    @property
    def key(self) -> CellKey:
        """(prompt version, case id)."""
        return (self.version.name, self.case.id)


class EvalSuite:
    """Fixtures, model and baseline of one run; evaluates and judges cells.

    With the fake model a cell is evaluated when its test runs. With a real provider,
    calls go through recordings and a bounded pool (`Prefetcher`), ahead of the tests.
    """

    def __init__(
        self, settings: SuiteSettings, fixtures: Fixtures, baseline: Baseline, environ: Mapping[str, str] = os.environ
    ) -> None:
        self.settings = settings
        self.fixtures = fixtures
        self.baseline = baseline
        self.environ = environ
        self.model = FakeModel(fixtures.fake_model, fixtures.versions)
        self.cells = [Cell(version, case, self) for version in fixtures.versions for case in fixtures.cases]
        self.cells_by_id = {cell.id: cell for cell in self.cells}
        self._cells_by_key = {cell.key: cell for cell in self.cells}
        self._recorded = baseline.lookup()
        self._results: dict[CellKey, EvalResult] = {}
        self._errors: dict[CellKey, str] = {}
        self._judged: dict[CellKey, CellOutcome] = {}
        self.recordings: RecordingStore | None = None
        self.prefetcher: Prefetcher | None = None
        if settings.provider != "fake":
            self._recorder = self._real_provider()
            self.prefetcher = Prefetcher(self._call, settings.max_concurrency)

    def _real_provider(self) -> Recorder:
        settings = self.settings
        structured = frozenset(version.name for version in self.fixtures.versions if version.structured_output)
        client = ClientSettings.from_environ(self.environ, settings.max_retries, settings.request_timeout)
        provider = make_provider(settings.provider, self.fixtures.contract, structured, client)
        if settings.record_mode != "none":
            require_sdk()
        self.recordings = RecordingStore(settings.recordings_dir)
        return Recorder(provider, self.recordings, settings.record_mode)  # type: ignore[arg-type]

    @classmethod
    def load(cls, settings: SuiteSettings) -> EvalSuite:
        """Load fixtures and baseline; raises `WorkshopError` with a user-facing message."""
        fixtures = load_fixtures(settings.cases, settings.prompts)
        baseline = load_baseline(settings.baseline) if settings.use_baseline else Baseline()
        return cls(settings, fixtures, baseline)

    def payload(self, cell: Cell) -> Payload:
        """The request payload of a cell."""
        return build_payload(cell.case, cell.version, self.environ)

    def call_keys(self, cell: Cell) -> list[CallKey]:
        """One call per trial."""
        return [(cell.version.name, cell.case.id, trial) for trial in range(self.settings.repeat)]

    def _call(self, key: CallKey) -> Completion:
        cell = self._cells_by_key[(key[0], key[1])]
        return self._recorder.complete(self.payload(cell), cell.case, key[2])

    def prefetch(self, cells: Iterable[Cell]) -> int:
        """Start the calls of ``cells`` in the background (real providers); returns how many started."""
        if self.prefetcher is None:
            return 0
        return self.prefetcher.submit(key for cell in cells for key in self.call_keys(cell))

    def prepare(self, cell: Cell) -> None:
        """Make sure a cell's answers are in; raises `ProviderError` (kept for the report) if a call failed."""
        if self.prefetcher is None or cell.key in self._results:
            return
        try:
            completions = self.prefetcher.completions(self.call_keys(cell))
        except ProviderError as exc:
            self._errors[cell.key] = f"provider_error: {exc}"
            raise
        self._results[cell.key] = self._score(cell, self.payload(cell), completions)

    def _score(self, cell: Cell, payload: Payload, completions: list[Completion]) -> EvalResult:
        return score_cell(cell.case, payload, completions, self.fixtures.contract, self.settings.min_pass_rate)

    def evaluate(self, cell: Cell) -> EvalResult:
        """Run one cell through the model and validator (once per process)."""
        if cell.key not in self._results:
            self.prepare(cell)
        if cell.key not in self._results:  # the fake model answers here, when the test runs
            payload = self.payload(cell)
            completions = [self.model.complete(payload, cell.case) for _ in range(self.settings.repeat)]
            self._results[cell.key] = self._score(cell, payload, completions)
        return self._results[cell.key]

    def result_of(self, cell: Cell) -> EvalResult | None:
        """The result of a cell evaluated in this process, if any."""
        return self._results.get(cell.key)

    def result_by_key(self, key: CellKey) -> EvalResult | None:
        """The result of (prompt version, case id) if evaluated in this process."""
        return self._results.get(key)

    def error_of(self, cell: Cell) -> str | None:
        """Why a cell has no result (``provider_error: ...``), if its calls failed."""
        return self._errors.get(cell.key)

    def close(self) -> None:
        """Stop background calls."""
        if self.prefetcher is not None:
            self.prefetcher.close()

    def judged(self, result: EvalResult) -> CellOutcome:
        """The verdict given when the cell's test ran in this process, or a fresh one (xdist results)."""
        known = self._judged.get((result.prompt_version, result.case_id))
        return known if known is not None else self.judge(result)

    def judge(self, result: EvalResult) -> CellOutcome:
        """Compare a result with the baseline (or not, with ``--no-baseline``)."""
        recorded = self._recorded.get((result.prompt_version, result.case_id))
        return CellOutcome(
            prompt_version=result.prompt_version,
            case_id=result.case_id,
            passed=result.passed,
            reason=result.reason,
            outcome=classify(result.passed, recorded, use_baseline=self.settings.gate_mode == "gate"),
            recorded_reason=recorded.reason if recorded else None,
        )

    def check(self, cell: Cell) -> EvalResult:
        """Evaluate a cell and judge it against the baseline; `test_outcome` then says what its test reports.

        Nothing is raised here: the plugin sets the outcome on the test's report, as pytest's own
        xfail does, so that thousands of failing or known-failing cells cost no tracebacks.
        """
        result = self.evaluate(cell)
        self._judged[cell.key] = self.judge(result)
        return result

    def test_outcome(self, cell: Cell) -> tuple[str, str] | None:
        """What a checked cell's test reports: ``("xfail", reason)``, ``("fail", message)`` or None (pass)."""
        judged = self._judged.get(cell.key)
        if judged is None:
            return None
        if judged.outcome is Outcome.KNOWN_FAILURE or (self.settings.update_baseline and not judged.passed):
            return ("xfail", known_failure_reason(judged))
        if judged.outcome.blocks:
            result = self._results[cell.key]
            return ("fail", failure_message(judged, result.expected_intent, result.raw_output))
        return None


def cell_id_of(nodeid: str) -> str | None:
    """The parameter id of a test node id (``test_x[v3-case_1]`` -> ``v3-case_1``)."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return None
    return nodeid[nodeid.rindex("[") + 1 : -1]


@dataclass(frozen=True)
class RunReport:
    """What one run found, as the terminal, the HTML report and the pack show it."""

    results: tuple[EvalResult, ...]
    outcomes: tuple[CellOutcome, ...]
    scores: tuple[VersionScore, ...]
    verdict: GateVerdict
    selected: int
    total: int
    missing: tuple[str, ...]
    errors: tuple[tuple[str, str, str], ...]
    """(prompt version, case id, reason) of cells whose model calls failed."""
    interrupted: bool
    keyword: str | None
    shard: Shard | None = None
    analysis: Analysis | None = None
    pack: list[Path] = field(default_factory=list)
    pack_error: str | None = None
    pack_seconds: float | None = None
    """Time spent analysing, rendering and writing the pack."""
    baseline_changes: tuple[str, ...] | None = None
    history: Path | None = None
    """Where this run's pack was kept in the history folder."""
    history_error: str | None = None
    since_previous: tuple[str, ...] = ()
    """What changed since the previous run of the same suite (`workshop.compare.change_lines`)."""

    @property
    def complete(self) -> bool:
        """True when every selected evaluation has a result."""
        return not self.missing and not self.errors and not self.interrupted


class RunCollector:
    """Controller-side: gathers results from reports and writes the pack at the end."""

    def __init__(self, suite: EvalSuite, keyword: str | None, metadata: Mapping[str, Any]) -> None:
        self.suite = suite
        self.keyword = keyword
        self.metadata = metadata
        self.selected: dict[str, None] = {}
        self.results: dict[CellKey, EvalResult] = {}
        self.errors: dict[CellKey, str] = {}
        self.report: RunReport | None = None

    def select(self, nodeids: Iterable[str]) -> None:
        """Note the collected evaluation tests (cell ids in node ids)."""
        for nodeid in nodeids:
            cell_id = cell_id_of(nodeid)
            if cell_id in self.suite.cells_by_id:
                self.selected[cell_id] = None

    def add(self, result: EvalResult) -> None:
        """Take one result reported by a test."""
        self.results[(result.prompt_version, result.case_id)] = result

    def add_error(self, error_data: Mapping[str, Any]) -> None:
        """Take one cell whose model calls failed."""
        self.errors[(error_data["prompt_version"], error_data["case_id"])] = error_data["error"]

    def finish(self, interrupted: bool) -> RunReport:
        """Judge the run, write the evidence pack and, if asked, the baseline."""
        suite = self.suite
        report = judge_results(suite, self.results, self.errors, self.selected, interrupted, self.keyword)
        started = time.perf_counter()  # the pack's cost includes its analysis
        report = replace(report, analysis=analyse_report(suite, report))
        if report.results or report.errors:
            report = self._write_pack(report, started)
        if suite.settings.update_baseline and report.results and not interrupted:
            report = self._update_baseline(report)
        self.report = report
        return report

    def _write_pack(self, report: RunReport, started: float) -> RunReport:
        files = render_run_pack(self.suite, report, self.metadata)
        try:
            paths = write_pack(self.suite.settings.evidence_dir, files)
        except EvidenceError as exc:
            return replace(report, pack_error=str(exc))
        report = replace(report, pack=paths, pack_seconds=time.perf_counter() - started)
        return self._keep_history(report, files)

    def _keep_history(self, report: RunReport, files: Mapping[str, bytes]) -> RunReport:
        """Keep the pack under the history folder, and say what changed since the previous run of this suite."""
        settings = self.suite.settings
        if settings.history_dir is None or settings.history_keep == 0:
            return report
        run_id = self.metadata["id"]
        paths = {role: record["path"] for role, record in self.metadata["fixtures"].items()}
        try:
            # found (and read, outcomes only) before pruning may remove it
            previous = previous_run(settings.history_dir, paths, before=run_id)
            kept = keep_run(settings.history_dir, run_id, files, settings.history_keep)
        except EvidenceError as exc:
            return replace(report, history_error=str(exc))
        since: tuple[str, ...] = ()
        if previous is not None:
            new = PackOutcomes.model_validate_json(files[SUMMARY])
            since = tuple(change_lines(compare_packs(previous.pack, new)))
        return replace(report, history=kept, since_previous=since)

    def _update_baseline(self, report: RunReport) -> RunReport:
        suite = self.suite
        recorded = {(r.prompt_version, r.case_id): (r.passed, r.reason) for r in report.results}
        order = [cell.key for cell in suite.cells]
        new = updated_baseline(suite.baseline, recorded, order)
        write_baseline(suite.settings.baseline, new)
        return replace(report, baseline_changes=tuple(baseline_changes(suite.baseline, new)))


def judge_results(
    suite: EvalSuite,
    results: Mapping[CellKey, EvalResult],
    errors: Mapping[CellKey, str],
    selected: Iterable[str],
    interrupted: bool,
    keyword: str | None,
) -> RunReport:
    """A run's report from its results, in the suite's cell order: outcomes, scores, the gate's verdict.

    ``selected`` holds the ids of the cells the run meant to evaluate; those with neither a
    result nor an error are missing.
    """
    ordered = tuple(results[cell.key] for cell in suite.cells if cell.key in results)
    outcomes = tuple(suite.judged(result) for result in ordered)
    failed = tuple((cell.key[0], cell.key[1], errors[cell.key]) for cell in suite.cells if cell.key in errors)
    done = {f"{r.prompt_version}-{r.case_id}" for r in ordered} | {f"{v}-{c}" for v, c, _ in failed}
    selected = dict.fromkeys(selected)
    return RunReport(
        results=ordered,
        outcomes=outcomes,
        scores=tuple(score_versions(ordered, [v.name for v in suite.fixtures.versions])),
        verdict=judge_run(outcomes, mode=suite.settings.gate_mode, errors=len(failed)),
        selected=len(selected | dict.fromkeys(done)),
        total=len(suite.cells),
        missing=tuple(cell_id for cell_id in selected if cell_id not in done),
        errors=failed,
        interrupted=interrupted,
        keyword=keyword,
        shard=suite.settings.shard,
    )


def analyse_report(suite: EvalSuite, report: RunReport) -> Analysis:
    """Why the run's cells failed and what to change next."""
    fixtures = suite.fixtures
    routes = {d.case_id: d.first_route for d in decide_routes(fixtures.cases, fixtures.routes)}
    versions = [version.name for version in fixtures.versions]
    return analyse(report.results, report.errors, fixtures.cases, routes, fixtures.guide, versions)


def readme_notes(report: RunReport) -> list[str]:
    """What the pack's README says about the selection and completeness of the run."""
    notes = []
    if report.shard is not None:
        notes.append(
            f"Shard {report.shard}: this pack holds one part of the cells; the other shards ran the rest. "
            "Combine the shards' packs with `python -m workshop merge PACK... -o OUT`."
        )
    if report.selected < report.total:
        how = f" (`-k {report.keyword}`)" if report.keyword else ""
        notes.append(
            f"Selection: {report.selected} of {report.total} prompt evaluations ran{how}; "
            f"{report.total - report.selected} were deselected."
        )
    if report.errors:
        notes.append(
            f"INCOMPLETE: {len(report.errors)} evaluations have no result because their model calls failed "
            "(listed under Provider errors in `failure_cases.md`); they are not prompt failures."
        )
    if report.missing or report.interrupted:
        notes.append(
            f"INCOMPLETE: the run stopped early; {len(report.missing)} selected evaluations have no result "
            "and are missing from `prompt_eval.csv`. Do not compare this pack with a complete one."
        )
    return notes


def render_run_pack(suite: EvalSuite, report: RunReport, metadata: Mapping[str, Any]) -> dict[str, bytes]:
    """Every file of the run's evidence pack, ``summary.json`` included."""
    fixtures = suite.fixtures
    traces = [trace_text(case.id, case.user_input) for case in fixtures.cases]
    routes = decide_routes(fixtures.cases, fixtures.routes)
    readme = ReadmeInfo(RUN_COMMAND, notes=readme_notes(report))
    files = render_pack(
        traces, report.results, routes, readme, best_version(report.scores), report.errors, report.analysis
    )
    files[SUMMARY] = render_summary(report, metadata)
    return files
