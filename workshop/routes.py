"""The first solution route for a request: Prompt, structured output, RAG, or a fine-tuning plan."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from workshop.fixtures import Case, RouteRules, first_match


class RouteDecision(BaseModel):
    """One row of ``route_decisions.json``."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    user_input: str
    first_route: str


def solution_route(text: str, rules: RouteRules) -> str:
    """The route of the first rule whose keyword occurs in the lowercased text."""
    rule = first_match(text, rules.rules)
    return rules.default_route if rule is None else rule.route


def decide_routes(cases: Sequence[Case], rules: RouteRules) -> list[RouteDecision]:
    """The route decision for every case, in fixture order."""
    return [
        RouteDecision(case_id=case.id, user_input=case.user_input, first_route=solution_route(case.user_input, rules))
        for case in cases
    ]
