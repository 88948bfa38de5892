"""Explain a run like an engineer: what failed, why, what changed between versions, what to do next.

Everything said here comes from the results and from ``failure_guide.json``; the
advice follows the route ladder, cheapest first (Prompt, structured output, RAG,
a fine-tuning plan).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from workshop.evaluation import EvalResult
from workshop.fixtures import Case, FailureGuide

CellFailure = tuple[str, str, str]
"""(prompt version, case id, reason)"""

OTHER = "other"


def reason_type(reason: str) -> str:
    """The kind of a reason: the text before its first colon (``missing_fields: [...]`` -> ``missing_fields``)."""
    return reason.split(":", 1)[0]


@dataclass(frozen=True)
class ReasonGroup:
    """Failures of one type: what they mean, and where they happened."""

    type: str
    meaning: str
    why: str
    next_change: str
    route: str | None
    cells: tuple[CellFailure, ...]
    by_version: dict[str, int]


@dataclass(frozen=True)
class VersionDiff:
    """What a version fixed and broke compared with the version before it (cells that ran in both)."""

    version: str
    previous: str
    fixed: tuple[tuple[str, str], ...]
    """(case id, the reason it failed with before)"""
    broken: tuple[tuple[str, str], ...]
    """(case id, the reason it fails with now)"""
    changed: tuple[tuple[str, str, str], ...]
    """(case id, reason before, reason now) of cells failing in both, for a different reason"""


@dataclass(frozen=True)
class ReviewCounts:
    """The human-review boundary of one version, over cases that declare whether review is needed."""

    version: str
    flagged: int
    """Risky, and flagged: right."""
    missed: int
    """Risky, not flagged: the dangerous direction."""
    over_flagged: int
    """Harmless, flagged: costs a reviewer's time."""
    cleared: int
    """Harmless, not flagged: right."""
    unjudged: int
    """The answer did not meet the contract, so it has no flag to judge."""


@dataclass(frozen=True)
class Advice:
    """One piece of advice for a failing version."""

    topic: str
    cases: tuple[str, ...]
    next_change: str
    route: str | None


@dataclass(frozen=True)
class NextStep:
    """The recommended next route for one failing version, with the advice behind it."""

    version: str
    passed: int
    total: int
    route: str | None
    advice: tuple[Advice, ...]


@dataclass(frozen=True)
class Analysis:
    """The whole explanation of a run."""

    ladder: tuple[str, ...]
    groups: tuple[ReasonGroup, ...]
    diffs: tuple[VersionDiff, ...]
    review: tuple[ReviewCounts, ...]
    next_steps: tuple[NextStep, ...]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data for ``summary.json``."""
        return {
            "ladder": list(self.ladder),
            "reasons": [{**asdict(group), "cells": [list(cell) for cell in group.cells]} for group in self.groups],
            "version_diffs": [
                {
                    "version": diff.version,
                    "previous": diff.previous,
                    "fixed": [case for case, _ in diff.fixed],
                    "broken": [case for case, _ in diff.broken],
                    "reason_changed": [case for case, _, _ in diff.changed],
                }
                for diff in self.diffs
            ],
            "review_boundary": [asdict(counts) for counts in self.review],
            "next_steps": [asdict(step) for step in self.next_steps],
        }


def _failures(results: Sequence[EvalResult], errors: Sequence[CellFailure]) -> list[CellFailure]:
    failed = [(r.prompt_version, r.case_id, r.reason) for r in results if not r.passed]
    return failed + list(errors)


def group_failures(failures: Sequence[CellFailure], guide: FailureGuide, versions: Sequence[str]) -> list[ReasonGroup]:
    """Failures grouped by the guide's types, in the guide's order; unknown reasons last, as ``other``."""
    buckets: dict[str, list[CellFailure]] = {}
    for failure in failures:
        entry = guide.guide_for(failure[2])
        buckets.setdefault(entry.type if entry else OTHER, []).append(failure)
    groups = []
    for entry in guide.reasons:
        cells = buckets.pop(entry.type, [])
        if cells:
            groups.append(_group(entry.type, entry.meaning, entry.why, entry.next_change, entry.route, cells, versions))
    if OTHER in buckets:
        unknown = ("A reason the failure guide does not describe.", "", "Add it to failure_guide.json.", None)
        groups.append(_group(OTHER, *unknown, buckets[OTHER], versions))
    return groups


def _group(
    kind: str, meaning: str, why: str, change: str, route: str | None, cells: list[CellFailure], versions: Sequence[str]
) -> ReasonGroup:
    counts = Counter(version for version, _, _ in cells)
    by_version = {version: counts[version] for version in versions if counts[version]}
    return ReasonGroup(kind, meaning, why, change, route, tuple(cells), by_version)


def diff_versions(results: Sequence[EvalResult], versions: Sequence[str]) -> list[VersionDiff]:
    """For each version after the first that ran, what it fixed and broke against the one before."""
    by_version: dict[str, dict[str, EvalResult]] = {}
    for result in results:
        by_version.setdefault(result.prompt_version, {})[result.case_id] = result
    ran = [version for version in versions if version in by_version]
    diffs = []
    for previous, version in pairwise(ran):
        before, now = by_version[previous], by_version[version]
        shared = [case for case in now if case in before]
        diffs.append(
            VersionDiff(
                version=version,
                previous=previous,
                fixed=tuple((c, before[c].reason) for c in shared if now[c].passed and not before[c].passed),
                broken=tuple((c, now[c].reason) for c in shared if before[c].passed and not now[c].passed),
                changed=tuple(
                    (c, before[c].reason, now[c].reason)
                    for c in shared
                    if not before[c].passed and not now[c].passed and before[c].reason != now[c].reason
                ),
            )
        )
    return diffs


def review_counts(
    results: Sequence[EvalResult], cases: Mapping[str, Case], versions: Sequence[str]
) -> list[ReviewCounts]:
    """Confusion counts of the review flag per version, over cases that declare the expected flag."""
    tallies: dict[str, Counter[str]] = {}
    for result in results:
        expected = cases[result.case_id].expected_needs_human_review if result.case_id in cases else None
        if expected is None:
            continue
        flag = result.shown_trial.review_flag
        if flag is None:
            kind = "unjudged"
        elif expected:
            kind = "flagged" if flag else "missed"
        else:
            kind = "over_flagged" if flag else "cleared"
        tallies.setdefault(result.prompt_version, Counter())[kind] += 1
    kinds = ("flagged", "missed", "over_flagged", "cleared", "unjudged")
    return [
        ReviewCounts(version, **{kind: tallies[version][kind] for kind in kinds})
        for version in versions
        if version in tallies
    ]


def _advice_for(
    failures: Sequence[CellFailure], guide: FailureGuide, case_routes: Mapping[str, str], repeated: set[str]
) -> list[Advice]:
    topics: dict[tuple[str, str, str | None], list[str]] = {}
    for _, case_id, reason in failures:
        kind = reason_type(reason)
        route_advice = guide.route_advice.get(case_routes.get(case_id, ""))
        if route_advice is not None and kind not in route_advice.applies_to:
            route_advice = None
        repeats = kind == "wrong_intent" and case_id in repeated
        if route_advice is not None and (route_advice.over_repeats or not repeats):
            key = (f"{kind}, first route {case_routes[case_id]}", route_advice.next_change, route_advice.route)
        elif repeats:
            repeat = guide.repeated_wrong_intent
            key = ("wrong_intent repeated across versions", repeat.next_change, repeat.route)
        else:
            entry = guide.guide_for(reason)
            key = (kind, entry.next_change, entry.route) if entry else (kind, "Add it to failure_guide.json.", None)
        topics.setdefault(key, []).append(case_id)
    return [Advice(topic, tuple(cases), change, route) for (topic, change, route), cases in topics.items()]


def next_steps(
    results: Sequence[EvalResult],
    errors: Sequence[CellFailure],
    guide: FailureGuide,
    case_routes: Mapping[str, str],
    versions: Sequence[str],
) -> list[NextStep]:
    """For each version with failures: the cheapest route on the ladder that its advice points to."""
    wrong_intent_versions: dict[str, set[str]] = {}
    for result in results:
        if reason_type(result.reason) == "wrong_intent":
            wrong_intent_versions.setdefault(result.case_id, set()).add(result.prompt_version)
    repeated = {case for case, seen in wrong_intent_versions.items() if len(seen) >= 2}
    rung = {route: index for index, route in enumerate(guide.ladder)}
    steps = []
    for version in versions:
        rows = [r for r in results if r.prompt_version == version]
        failures = [f for f in _failures(rows, errors) if f[0] == version]
        if not failures:
            continue
        advice = sorted(
            _advice_for(failures, guide, case_routes, repeated),
            key=lambda a: (rung.get(a.route, len(rung)) if a.route else len(rung) + 1, -len(a.cases)),
        )
        routes = [a.route for a in advice if a.route is not None]
        route = min(routes, key=lambda r: rung.get(r, len(rung))) if routes else None
        steps.append(NextStep(version, sum(r.passed for r in rows), len(rows), route, tuple(advice)))
    return steps


def analyse(
    results: Sequence[EvalResult],
    errors: Sequence[CellFailure],
    cases: Sequence[Case],
    case_routes: Mapping[str, str],
    guide: FailureGuide,
    versions: Sequence[str],
) -> Analysis:
    """The full explanation of one run's results."""
    by_id = {case.id: case for case in cases}
    return Analysis(
        ladder=tuple(guide.ladder),
        groups=tuple(group_failures(_failures(results, errors), guide, versions)),
        diffs=tuple(diff_versions(results, versions)),
        review=tuple(review_counts(results, by_id, versions)),
        next_steps=tuple(next_steps(results, errors, guide, case_routes, versions)),
    )
