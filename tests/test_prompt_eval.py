"""The evaluation tests: generated from the JSON fixtures by the workshop plugin.

One ``test_prompt_version`` per (prompt version, case), with ids ``<version>-<case>``,
so ``pytest -k v3`` runs one version and ``pytest -k case_2`` one case. Adding a
version or a case to ``cases/*.json`` adds tests; no Python changes.
"""

import math

from workshop import Case, solution_route, token_id, trace_text
from workshop.suite import Cell, EvalSuite


def test_prompt_version(prompt_cell: Cell) -> None:
    """Run one version on one case through the model and validator; the baseline gate judges it.

    The gate's verdict (pass, known failure, regression, ...) becomes this test's outcome.
    """
    prompt_cell.check()


def test_token_trace(workshop_case: Case) -> None:
    """The case's text becomes tokens, stable ids and a unit-length tiny vector."""
    trace = trace_text(workshop_case.id, workshop_case.user_input)
    assert trace.tokens, f"{workshop_case.id}: user_input has no alphanumeric token"
    assert trace.token_ids == [token_id(token) for token in trace.tokens]
    norm = math.sqrt(sum(value * value for value in trace.tiny_embedding))
    assert math.isclose(norm, 1.0, abs_tol=0.01), f"{workshop_case.id}: tiny vector norm {norm}"


def test_route(route_case: Case, eval_suite: EvalSuite) -> None:
    """The route rules send the case down its expected first route."""
    route = solution_route(route_case.user_input, eval_suite.fixtures.routes)
    assert route == route_case.expected_route, (
        f"{route_case.id}: first route is {route!r}, expected {route_case.expected_route!r}"
    )
