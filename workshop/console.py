"""The seed's console lines, shared by ``python -m workshop`` and the pytest summary."""

from __future__ import annotations

from workshop.evaluation import VersionScore
from workshop.routes import RouteDecision
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
