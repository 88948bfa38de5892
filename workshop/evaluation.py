"""Run prompt versions against cases and score them: the prompt evaluation lab."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from workshop.contract import Contract, validate_output
from workshop.fixtures import Case, Fixtures, PromptVersion
from workshop.model import Model
from workshop.payload import Payload, build_payload


@dataclass(frozen=True, slots=True)
class EvalResult:
    """One (prompt version, case) evaluation: a row of ``prompt_eval.csv`` and more."""

    prompt_version: str
    case_id: str
    passed: bool
    reason: str
    raw_output: str
    expected_intent: str
    payload: Payload

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, for crossing process boundaries (xdist) and files."""
        return {
            "prompt_version": self.prompt_version,
            "case_id": self.case_id,
            "passed": self.passed,
            "reason": self.reason,
            "raw_output": self.raw_output,
            "expected_intent": self.expected_intent,
            "payload": self.payload.as_dict(),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalResult:
        """Rebuild a result from `to_json` data."""
        fields = dict(data)
        return cls(**{**fields, "payload": Payload(**fields["payload"])})


def judge(raw: str, case: Case, contract: Contract) -> tuple[bool, str]:
    """Validate a raw output, then check its intent against the case's expected intent."""
    verdict = validate_output(raw, contract)
    if not verdict.ok:
        return False, verdict.reason
    intent = verdict.data.get("intent")
    if intent != case.expected_intent:
        return False, f"wrong_intent: {intent} != {case.expected_intent}"
    return True, "ok"


def evaluate(
    version: PromptVersion, case: Case, model: Model, contract: Contract, environ: Mapping[str, str] = os.environ
) -> EvalResult:
    """Build the payload, call the model, validate the answer and check its intent."""
    payload = build_payload(case, version, environ)
    raw = model.complete(payload, case)
    passed, reason = judge(raw, case, contract)
    return EvalResult(version.name, case.id, passed, reason, raw, case.expected_intent, payload)


def evaluate_all(fixtures: Fixtures, model: Model, environ: Mapping[str, str] = os.environ) -> list[EvalResult]:
    """Every version against every case, version by version, in fixture order."""
    return [
        evaluate(version, case, model, fixtures.contract, environ)
        for version in fixtures.versions
        for case in fixtures.cases
    ]


@dataclass(frozen=True, slots=True)
class VersionScore:
    """How one prompt version did on the cases that ran."""

    version: str
    passed: int
    total: int
    failures: tuple[tuple[str, str], ...]
    """(case id, reason) of each failing case, in case order."""


def score_versions(results: Iterable[EvalResult], versions: Sequence[str]) -> list[VersionScore]:
    """Score each version that has results, in the given version order."""
    by_version: dict[str, list[EvalResult]] = {name: [] for name in versions}
    for result in results:
        by_version.setdefault(result.prompt_version, []).append(result)
    return [
        VersionScore(
            version=name,
            passed=sum(r.passed for r in rows),
            total=len(rows),
            failures=tuple((r.case_id, r.reason) for r in rows if not r.passed),
        )
        for name, rows in by_version.items()
        if rows
    ]


def best_version(scores: Sequence[VersionScore]) -> VersionScore | None:
    """The version with the highest pass rate; a tie goes to the later (newer) version."""
    best: VersionScore | None = None
    for score in scores:
        if score.total == 0:  # no pass rate; 0/0 would otherwise tie with (and beat) everything
            continue
        if best is None or score.passed * best.total >= best.passed * score.total:
            best = score
    return best
