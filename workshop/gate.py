"""The regression gate: compare each evaluation with the recorded baseline.

The baseline (``cases/baseline.json``) records, per (prompt version, case), whether
it passed and, if not, why. A run is judged cell by cell against it: known failures
are expected, anything that changed for the worse or for the better stops the gate
until a person records it with ``pytest --update-baseline``.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from workshop.errors import FixtureError, Problem
from workshop.files import replace_file
from workshop.fixtures import FixtureFile, FixtureModel, Identifier, validate_fixture
from workshop.jsonfile import read_json_file
from workshop.text import one_line, shorten

CellKey = tuple[str, str]
"""(prompt version, case id)"""

UPDATE_HINT = "record it with `pytest --update-baseline`"


class BaselineCell(FixtureModel):
    """What the baseline recorded for one (prompt version, case)."""

    prompt_version: Identifier
    case_id: Identifier
    passed: bool
    reason: str | None = None

    @model_validator(mode="after")
    def _failure_has_reason(self) -> BaselineCell:
        if not self.passed and not self.reason:
            raise ValueError('a failing cell needs its "reason"')
        if self.passed and self.reason is not None:
            raise ValueError('a passing cell has no "reason"')
        return self

    @property
    def key(self) -> CellKey:
        """The (prompt version, case id) this cell is about."""
        return (self.prompt_version, self.case_id)


class Baseline(FixtureFile):
    """``baseline.json``: the recorded outcome of every known cell."""

    cells: list[BaselineCell] = Field(default_factory=list)

    def lookup(self) -> dict[CellKey, BaselineCell]:
        """Cells by (prompt version, case id)."""
        return {cell.key: cell for cell in self.cells}


def load_baseline(path: Path) -> Baseline:
    """Load a baseline file; a missing file is an empty baseline (every cell is new)."""
    if not path.exists():
        return Baseline()
    baseline = validate_fixture(Baseline, read_json_file(path), path)
    seen: set[CellKey] = set()
    problems = []
    for index, cell in enumerate(baseline.cells):
        if cell.key in seen:
            message = f"duplicate cell {cell.prompt_version} / {cell.case_id}"
            problems.append(Problem(path, message, item=f"cells[{index}]"))
        seen.add(cell.key)
    if problems:
        raise FixtureError(problems)
    return baseline


class Outcome(str, enum.Enum):
    """How one evaluation compares with the baseline."""

    PASSED = "passed"
    """Passed, as recorded (or passed with the baseline off)."""
    FAILED = "failed"
    """Failed with the baseline off."""
    KNOWN_FAILURE = "known_failure"
    """Failed, and the baseline says it fails."""
    REGRESSION = "regression"
    """Failed, but the baseline says it passed."""
    IMPROVEMENT = "improvement"
    """Passed, but the baseline says it fails: record it."""
    NEW = "new"
    """Not in the baseline, and passed."""
    NEW_FAILURE = "new_failure"
    """Not in the baseline, and failed: a new cell must pass."""

    @property
    def blocks(self) -> bool:
        """True if this outcome makes the gate (and the test) fail."""
        return self in _BLOCKING


_BLOCKING = frozenset({Outcome.FAILED, Outcome.REGRESSION, Outcome.IMPROVEMENT, Outcome.NEW_FAILURE})


def classify(passed: bool, recorded: BaselineCell | None, use_baseline: bool = True) -> Outcome:
    """Compare one evaluation's result with what the baseline recorded for it."""
    if not use_baseline:
        return Outcome.PASSED if passed else Outcome.FAILED
    if recorded is None:
        return Outcome.NEW if passed else Outcome.NEW_FAILURE
    if recorded.passed:
        return Outcome.PASSED if passed else Outcome.REGRESSION
    return Outcome.IMPROVEMENT if passed else Outcome.KNOWN_FAILURE


@dataclass(frozen=True, slots=True)
class CellOutcome:
    """One evaluated cell judged by the gate."""

    prompt_version: str
    case_id: str
    passed: bool
    reason: str
    outcome: Outcome
    recorded_reason: str | None = None


@dataclass(frozen=True)
class GateVerdict:
    """The gate's decision for a whole run."""

    mode: Literal["gate", "off", "update"]
    """``gate``: judged against the baseline; ``off``: --no-baseline; ``update``: --update-baseline."""
    regressions: tuple[CellOutcome, ...]
    improvements: tuple[CellOutcome, ...]
    new_failures: tuple[CellOutcome, ...]
    failures: tuple[CellOutcome, ...]
    """Failures with the baseline off."""
    known_failures: int
    errors: int = 0
    """Cells with no result because their model calls failed: the run is incomplete."""

    @property
    def blocked(self) -> bool:
        """True when a cell blocks the gate (recording a baseline blocks on nothing)."""
        if self.mode == "update":
            return False
        return bool(self.regressions or self.improvements or self.new_failures or self.failures)

    @property
    def passed(self) -> bool:
        """True when no cell blocks the gate and every cell has a result."""
        return not self.blocked and not self.errors

    @property
    def state(self) -> Literal["pass", "fail", "incomplete"]:
        """``fail`` when a cell blocks, else ``incomplete`` when a cell has no result, else ``pass``."""
        if self.blocked:
            return "fail"
        return "incomplete" if self.errors else "pass"

    def summary_line(self) -> str:
        """One line for terminals and reports."""
        errors = f"; {self.errors} cells without a result (provider errors)" if self.errors else ""
        return self._line() + errors

    def _line(self) -> str:
        if self.mode == "update":
            return f"Gate: not applied (--update-baseline); {len(self.failures)} failures recorded as known"
        if self.mode == "off":
            state = "PASS" if self.passed else "FAIL"
            return f"Gate: off (--no-baseline); raw result {state}, {len(self.failures)} failing"
        counts = (
            f"{len(self.regressions)} regressions, {len(self.improvements)} improvements to record, "
            f"{len(self.new_failures)} new failures, {self.known_failures} known failures"
        )
        return f"Gate: {self.state.upper()} ({counts})"


def judge_run(outcomes: Iterable[CellOutcome], mode: Literal["gate", "off", "update"], errors: int = 0) -> GateVerdict:
    """Collect the cells that block the gate."""
    cells = list(outcomes)

    def of(kind: Outcome) -> tuple[CellOutcome, ...]:
        return tuple(cell for cell in cells if cell.outcome is kind)

    return GateVerdict(
        mode=mode,
        regressions=of(Outcome.REGRESSION),
        improvements=of(Outcome.IMPROVEMENT),
        new_failures=of(Outcome.NEW_FAILURE),
        failures=of(Outcome.FAILED),
        known_failures=len(of(Outcome.KNOWN_FAILURE)),
        errors=errors,
    )


def updated_baseline(
    baseline: Baseline, results: Mapping[CellKey, tuple[bool, str]], order: Sequence[CellKey]
) -> Baseline:
    """The baseline with this run's results recorded; cells that did not run are kept.

    Recorded cells keep their place, so a review diff shows only what changed; new
    cells follow, in ``order`` (fixture order).
    """
    fresh = {
        key: BaselineCell(prompt_version=key[0], case_id=key[1], passed=passed, reason=None if passed else reason)
        for key, (passed, reason) in results.items()
    }
    cells = [fresh.pop(cell.key, cell) for cell in baseline.cells]
    cells += [fresh.pop(key) for key in order if key in fresh]
    cells += fresh.values()  # results for cells outside ``order``, if any
    return Baseline(schema_=baseline.schema_ or "schemas/baseline.schema.json", cells=cells)


def baseline_changes(old: Baseline, new: Baseline) -> list[str]:
    """Human-readable lines for each cell whose record changed."""
    before = old.lookup()
    lines = []
    for cell in new.cells:
        previous = before.get(cell.key)
        now = "passes" if cell.passed else f"fails ({cell.reason})"
        if previous is None:
            lines.append(f"+ {cell.prompt_version} / {cell.case_id}: {now}")
        elif (previous.passed, previous.reason) != (cell.passed, cell.reason):
            was = "passed" if previous.passed else f"failed ({previous.reason})"
            lines.append(f"~ {cell.prompt_version} / {cell.case_id}: {was} -> {now}")
    return lines


def render_baseline(baseline: Baseline) -> str:
    """The baseline file's text: one cell per line, so a review diff shows one line per change."""
    cells = [f"    {json.dumps(cell.model_dump(exclude_none=True), ensure_ascii=False)}" for cell in baseline.cells]
    lines = ["{"]
    if baseline.schema_:
        lines.append(f'  "$schema": {json.dumps(baseline.schema_)},')
    lines.append('  "cells": [' + ("\n" + ",\n".join(cells) + "\n  " if cells else "") + "]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write_baseline(path: Path, baseline: Baseline) -> None:
    """Write the baseline atomically (a temporary file beside it, then a rename)."""
    replace_file(path, render_baseline(baseline).encode("utf-8"))


RAW_OUTPUT_LIMIT = 300

_HEADLINES = {
    Outcome.REGRESSION: "REGRESSION: passed in the baseline, fails now",
    Outcome.IMPROVEMENT: f"IMPROVEMENT: the baseline records a failure, passes now; {UPDATE_HINT}",
    Outcome.NEW_FAILURE: f"NEW FAILURE: not in the baseline, and a new cell must pass (or {UPDATE_HINT})",
    Outcome.FAILED: "FAILED",
}


def _visible(text: str, limit: int = RAW_OUTPUT_LIMIT) -> str:
    shown = text if len(text) <= limit else shorten(text, limit) + f" ({len(text)} characters in all)"
    return one_line(shown)


def failure_message(cell: CellOutcome, expected_intent: str, raw_output: str) -> str:
    """What a reviewer needs when a cell blocks the gate: what changed, why, and the output."""
    lines = [f"{cell.prompt_version} / {cell.case_id}: {_HEADLINES[cell.outcome]}"]
    if cell.outcome is Outcome.IMPROVEMENT:
        lines.append(f"  recorded reason: {cell.recorded_reason}")
    else:
        lines.append(f"  reason: {cell.reason}")
    lines.append(f"  expected intent: {expected_intent}")
    lines.append(f"  raw output: {_visible(raw_output)}")
    return "\n".join(lines)


def known_failure_reason(cell: CellOutcome) -> str:
    """The xfail reason of a known failure (or of a failure being recorded)."""
    if cell.recorded_reason is None:
        return f"recording as a known failure: {cell.reason}"
    if cell.recorded_reason != cell.reason:
        return f"known failure, reason changed: {cell.reason} (recorded: {cell.recorded_reason})"
    return f"known failure: {cell.reason}"
