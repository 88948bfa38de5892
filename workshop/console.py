"""The seed's console lines, shared by ``python -m workshop`` and the pytest summary."""

from __future__ import annotations

from workshop.analysis import Analysis
from workshop.evaluation import VersionScore
from workshop.routes import RouteDecision
from workshop.text import some
from workshop.tokens import TokenTrace

SHOWN_TOKENS = 8


def token_line(trace: TokenTrace) -> str:
    """A STEP 1 line: the first tokens and ids of a case, and its tiny vector."""
    return (
        f"{trace.case_id} tokens={trace.tokens[:SHOWN_TOKENS]} "
        f"ids={trace.token_ids[:SHOWN_TOKENS]} vector={trace.tiny_embedding}"
    )


def version_line(score: VersionScore) -> str:
    """A STEP 2 line: a version's pass count and its failures."""
    failures = [f"{case_id}:{reason}" for case_id, reason in score.failures]
    return f"{score.version}: {score.passed}/{score.total} passed; failures={failures or ['none']}"


def route_line(decision: RouteDecision) -> str:
    """A STEP 3 line: a case's first route."""
    return f"{decision.case_id} -> {decision.first_route}"


def analysis_lines(analysis: Analysis) -> list[str]:
    """The run's explanation in a few terminal lines; the pack's files hold the whole of it."""
    lines = []
    if analysis.groups:
        parts = [
            f"{g.type} {len(g.cells)} ({', '.join(f'{v} {n}' for v, n in g.by_version.items())})"
            for g in analysis.groups
        ]
        lines.append("Failures by reason: " + "; ".join(parts))
    changes = []
    for diff in analysis.diffs:
        said = []
        if diff.fixed:
            said.append("fixes " + some([case for case, _ in diff.fixed]))
        if diff.broken:
            said.append("BREAKS " + some([case for case, _ in diff.broken]))
        if said:
            changes.append(f"{diff.version} {' and '.join(said)} over {diff.previous}")
    if changes:
        lines.append("Version to version: " + "; ".join(changes))
    for counts in analysis.review:
        lines.append(
            f"Review boundary, {counts.version}: {counts.flagged} flagged correctly, {counts.missed} missed, "
            f"{counts.over_flagged} over-flagged, {counts.cleared} correctly not flagged, {counts.unjudged} not judged"
        )
    if analysis.next_steps:
        steps = [f"{step.version} -> {step.route or 'fix the run'}" for step in analysis.next_steps]
        lines.append("Next route: " + "; ".join(steps) + " (why: next_steps.md in the evidence pack)")
    return lines
