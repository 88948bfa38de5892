"""The evaluation suite behind the pytest plugin: cells to run, results to gather, the pack to write.

`EvalSuite` lives in every process (the controller and each xdist worker): it
knows the fixtures, runs cells and judges them. `RunCollector` lives only in the
controller: it gathers results from test reports and, at the end, writes the
evidence pack and (on request) the baseline.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from workshop.errors import EvidenceError
from workshop.evaluation import EvalResult, VersionScore, best_version, evaluate, score_versions
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
from workshop.routes import decide_routes
from workshop.settings import SuiteSettings
from workshop.summary import render_summary
from workshop.tokens import trace_text

RUN_COMMAND = "pytest"


@dataclass(frozen=True)
class Cell:
    """One (prompt version, case) to evaluate: one generated test."""

    version: PromptVersion
    case: Case

    @property
    def id(self) -> str:
        """The test id: ``<version>-<case>``, so ``-k v3`` or ``-k case_2`` selects."""
        return f"{self.version.name}-{self.case.id}"

    @property
    def key(self) -> CellKey:
        """(prompt version, case id)."""
        return (self.version.name, self.case.id)


class EvalSuite:
    """Fixtures, model and baseline of one run; evaluates and judges cells."""

    def __init__(self, settings: SuiteSettings, fixtures: Fixtures, baseline: Baseline) -> None:
        self.settings = settings
        self.fixtures = fixtures
        self.baseline = baseline
        self.model = FakeModel(fixtures.fake_model, fixtures.versions)
        self.cells = [Cell(version, case) for version in fixtures.versions for case in fixtures.cases]
        self.cells_by_id = {cell.id: cell for cell in self.cells}
        self._recorded = baseline.lookup()
        self._results: dict[CellKey, EvalResult] = {}

    @classmethod
    def load(cls, settings: SuiteSettings) -> EvalSuite:
        """Load fixtures and baseline; raises `WorkshopError` with a user-facing message."""
        fixtures = load_fixtures(settings.cases, settings.prompts)
        baseline = load_baseline(settings.baseline) if settings.use_baseline else Baseline()
        return cls(settings, fixtures, baseline)

    def evaluate(self, cell: Cell, environ: Mapping[str, str] = os.environ) -> EvalResult:
        """Run one cell through the model and validator (once per process)."""
        if cell.key not in self._results:
            self._results[cell.key] = evaluate(cell.version, cell.case, self.model, self.fixtures.contract, environ)
        return self._results[cell.key]

    def result_of(self, cell: Cell) -> EvalResult | None:
        """The result of a cell evaluated in this process, if any."""
        return self._results.get(cell.key)

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
        """Evaluate a cell and let the gate decide the test: pass, xfail (known failure) or fail."""
        result = self.evaluate(cell)
        judged = self.judge(result)
        recording = self.settings.update_baseline and not result.passed
        if judged.outcome is Outcome.KNOWN_FAILURE or recording:
            pytest.xfail(known_failure_reason(judged))
        if judged.outcome.blocks:
            pytest.fail(failure_message(judged, result.expected_intent, result.raw_output), pytrace=False)
        return result


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
    interrupted: bool
    keyword: str | None
    pack: list[Path] = field(default_factory=list)
    pack_error: str | None = None
    baseline_changes: tuple[str, ...] | None = None

    @property
    def complete(self) -> bool:
        """True when every selected evaluation has a result."""
        return not self.missing and not self.interrupted


class RunCollector:
    """Controller-side: gathers results from reports and writes the pack at the end."""

    def __init__(self, suite: EvalSuite, keyword: str | None, metadata: Mapping[str, Any]) -> None:
        self.suite = suite
        self.keyword = keyword
        self.metadata = metadata
        self.selected: dict[str, None] = {}
        self.results: dict[CellKey, EvalResult] = {}
        self.report: RunReport | None = None

    def select(self, nodeids: Iterable[str]) -> None:
        """Note the collected evaluation tests (cell ids in node ids)."""
        for nodeid in nodeids:
            cell_id = cell_id_of(nodeid)
            if cell_id in self.suite.cells_by_id:
                self.selected[cell_id] = None

    def add(self, result_data: Mapping[str, Any]) -> None:
        """Take one result that crossed from a test report."""
        result = EvalResult.from_json(result_data)
        self.results[(result.prompt_version, result.case_id)] = result

    def finish(self, interrupted: bool) -> RunReport:
        """Judge the run, write the evidence pack and, if asked, the baseline."""
        suite = self.suite
        results = tuple(self.results[cell.key] for cell in suite.cells if cell.key in self.results)
        outcomes = tuple(suite.judge(result) for result in results)
        done = {f"{r.prompt_version}-{r.case_id}" for r in results}
        report = RunReport(
            results=results,
            outcomes=outcomes,
            scores=tuple(score_versions(results, [v.name for v in suite.fixtures.versions])),
            verdict=judge_run(outcomes, mode=suite.settings.gate_mode),
            selected=len(self.selected | dict.fromkeys(done)),
            total=len(suite.cells),
            missing=tuple(cell_id for cell_id in self.selected if cell_id not in done),
            interrupted=interrupted,
            keyword=self.keyword,
        )
        if results:
            report = self._write_pack(report)
        if suite.settings.update_baseline and results and not interrupted:
            report = self._update_baseline(report)
        self.report = report
        return report

    def _readme_notes(self, report: RunReport) -> list[str]:
        notes = []
        if report.selected < report.total:
            how = f" (`-k {report.keyword}`)" if report.keyword else ""
            notes.append(
                f"Selection: {report.selected} of {report.total} prompt evaluations ran{how}; "
                f"{report.total - report.selected} were deselected."
            )
        if not report.complete:
            notes.append(
                f"INCOMPLETE: the run stopped early; {len(report.missing)} selected evaluations have no result "
                "and are missing from `prompt_eval.csv`. Do not compare this pack with a complete one."
            )
        return notes

    def _write_pack(self, report: RunReport) -> RunReport:
        suite = self.suite
        traces = [trace_text(case.id, case.user_input) for case in suite.fixtures.cases]
        routes = decide_routes(suite.fixtures.cases, suite.fixtures.routes)
        readme = ReadmeInfo(RUN_COMMAND, notes=self._readme_notes(report))
        files = render_pack(traces, report.results, routes, readme, best_version(report.scores))
        files[SUMMARY] = render_summary(report, self.metadata)
        try:
            paths = write_pack(suite.settings.evidence_dir, files)
        except EvidenceError as exc:
            return replace(report, pack_error=str(exc))
        return replace(report, pack=paths)

    def _update_baseline(self, report: RunReport) -> RunReport:
        suite = self.suite
        recorded = {(r.prompt_version, r.case_id): (r.passed, r.reason) for r in report.results}
        order = [cell.key for cell in suite.cells]
        new = updated_baseline(suite.baseline, recorded, order)
        write_baseline(suite.settings.baseline, new)
        return replace(report, baseline_changes=tuple(baseline_changes(suite.baseline, new)))
