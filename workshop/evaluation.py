"""Run prompt versions against cases and score them: the prompt evaluation lab."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from workshop.contract import Contract, validate_output
from workshop.fixtures import Case, Fixtures, PromptVersion
from workshop.model import Completion, Model
from workshop.payload import Payload, build_payload
from workshop.text import one_line, shorten


class Trial(NamedTuple):
    """One answer to one (prompt version, case) and the verdict on it."""

    passed: bool
    reason: str
    completion: Completion
    review_flag: bool | None = None
    """The answer's ``needs_human_review`` when the answer met the contract, else None."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return {
            "passed": self.passed,
            "reason": self.reason,
            "completion": self.completion.to_json(),
            "review_flag": self.review_flag,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Trial:
        """Rebuild a trial from `to_json` data."""
        return cls(data["passed"], data["reason"], Completion(**data["completion"]), data.get("review_flag"))


def _total(values: Iterable[float | int | None]) -> Any:
    present = [value for value in values if value is not None]
    return sum(present) if present else None


class EvalResult(NamedTuple):
    """One (prompt version, case) evaluation: a row of ``prompt_eval.csv`` and more.

    A cell runs one or more trials (``--repeat``); it passes when its pass rate
    reaches the minimum. ``raw_output`` is the first failing trial's answer when
    the cell failed, else the first trial's.
    """

    prompt_version: str
    case_id: str
    passed: bool
    reason: str
    expected_intent: str
    payload: Payload
    trials: tuple[Trial, ...]

    @classmethod
    def from_trials(
        cls, case: Case, payload: Payload, trials: Sequence[Trial], min_pass_rate: float = 1.0
    ) -> EvalResult:
        """Decide a cell from its trials."""
        if len(trials) == 1:  # the common case, kept cheap: it runs once per evaluation
            only = trials[0]
            passed = (only.passed and min_pass_rate <= 1) or min_pass_rate == 0
            reason = "ok" if passed else only.reason
            return cls(payload.prompt_version, case.id, passed, reason, case.expected_intent, payload, (only,))
        passes = sum(trial.passed for trial in trials)
        passed = passes >= min_pass_rate * len(trials)
        first_failure = next((trial for trial in trials if not trial.passed), None)
        if passed:
            reason = "ok"
        elif len(trials) == 1 or first_failure is None:
            reason = trials[0].reason
        else:
            reason = f"{first_failure.reason} ({passes}/{len(trials)} trials passed)"
        return cls(payload.prompt_version, case.id, passed, reason, case.expected_intent, payload, tuple(trials))

    @property
    def shown_trial(self) -> Trial:
        """The trial whose answer represents the cell."""
        if not self.passed:
            return next((trial for trial in self.trials if not trial.passed), self.trials[0])
        return self.trials[0]

    @property
    def raw_output(self) -> str:
        """The raw answer of the trial that represents the cell."""
        return self.shown_trial.completion.text

    @property
    def pass_rate(self) -> float:
        """Share of trials that passed."""
        return sum(trial.passed for trial in self.trials) / len(self.trials)

    @property
    def input_tokens(self) -> int | None:
        """Input tokens over all trials (None when the model reports no usage)."""
        return _total(trial.completion.input_tokens for trial in self.trials)

    @property
    def output_tokens(self) -> int | None:
        """Output tokens over all trials."""
        return _total(trial.completion.output_tokens for trial in self.trials)

    @property
    def latency_s(self) -> float | None:
        """Seconds spent waiting for the model over all trials (replays count nothing)."""
        return _total(trial.completion.latency_s for trial in self.trials)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data, for crossing process boundaries (xdist) and files."""
        return {
            "prompt_version": self.prompt_version,
            "case_id": self.case_id,
            "passed": self.passed,
            "reason": self.reason,
            "expected_intent": self.expected_intent,
            "payload": self.payload.as_dict(),
            "trials": [trial.to_json() for trial in self.trials],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvalResult:
        """Rebuild a result from `to_json` data."""
        return cls(
            prompt_version=data["prompt_version"],
            case_id=data["case_id"],
            passed=data["passed"],
            reason=data["reason"],
            expected_intent=data["expected_intent"],
            payload=Payload(**data["payload"]),
            trials=tuple(Trial.from_json(trial) for trial in data["trials"]),
        )


def _flag(value: bool) -> str:
    return "true" if value else "false"


def judge_answer(raw: str, case: Case, contract: Contract) -> tuple[bool, str, bool | None]:
    """Validate a raw output, check its intent, then (if the case says) its human-review flag.

    Returns (passed, reason, the answer's review flag or None). The seed's reasons come
    first; ``wrong_review_flag: got <x>, expected <y>`` only when everything else is right.
    """
    verdict = validate_output(raw, contract)
    if not verdict.ok:
        return False, verdict.reason, None
    flag = verdict.data.get("needs_human_review")
    intent = verdict.data.get("intent")
    if intent != case.expected_intent:
        return False, f"wrong_intent: {intent} != {case.expected_intent}", flag
    expected = case.expected_needs_human_review
    if expected is not None and flag is not expected:
        return False, f"wrong_review_flag: got {_flag(flag)}, expected {_flag(expected)}", flag
    return True, "ok", flag


def judge(raw: str, case: Case, contract: Contract) -> tuple[bool, str]:
    """`judge_answer` without the flag: (passed, reason)."""
    passed, reason, _ = judge_answer(raw, case, contract)
    return passed, reason


def judge_completion(completion: Completion, case: Case, contract: Contract) -> Trial:
    """Judge one answer: a refusal fails as such, a truncated answer says so in its reason."""
    if completion.refusal is not None:
        return Trial(False, f"refusal: {one_line(shorten(completion.refusal, 200))}", completion)
    passed, reason, flag = judge_answer(completion.text, case, contract)
    if completion.truncated and not passed:
        reason = f"truncated: max_output_tokens reached; {reason}"
    return Trial(passed, reason, completion, flag)


def score_cell(
    case: Case, payload: Payload, completions: Sequence[Completion], contract: Contract, min_pass_rate: float = 1.0
) -> EvalResult:
    """Judge each trial's answer and decide the cell."""
    if len(completions) == 1:  # one trial: no list to build
        return EvalResult.from_trials(case, payload, (judge_completion(completions[0], case, contract),), min_pass_rate)
    trials = [judge_completion(completion, case, contract) for completion in completions]
    return EvalResult.from_trials(case, payload, trials, min_pass_rate)


def evaluate(
    version: PromptVersion,
    case: Case,
    model: Model,
    contract: Contract,
    environ: Mapping[str, str] = os.environ,
    repeat: int = 1,
    min_pass_rate: float = 1.0,
) -> EvalResult:
    """Build the payload, call the model ``repeat`` times, validate each answer and check its intent."""
    payload = build_payload(case, version, environ)
    completions = [model.complete(payload, case) for _ in range(repeat)]
    return score_cell(case, payload, completions, contract, min_pass_rate)


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
    pass_at_1: float = 0.0
    """Mean pass rate of a single trial over the cells."""
    pass_all: float = 0.0
    """Share of cells whose trials all passed (pass^N)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None


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
            pass_at_1=sum(r.pass_rate for r in rows) / len(rows),
            pass_all=sum(r.pass_rate == 1.0 for r in rows) / len(rows),
            input_tokens=_total(r.input_tokens for r in rows),
            output_tokens=_total(r.output_tokens for r in rows),
            latency_s=_total(r.latency_s for r in rows),
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
