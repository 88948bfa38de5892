"""The first solution route: the seed's keyword rules, now in routes.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from workshop.fixtures import RouteRule, load_fixtures
from workshop.routes import RouteDecision, decide_routes, solution_route

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = load_fixtures(ROOT / "cases" / "cases.json", ROOT / "cases" / "prompt_versions.json")
RULES = FIXTURES.routes


def test_routes_equal_the_seeds_for_the_three_cases():
    golden = json.loads((ROOT / "tests" / "golden" / "route_decisions.json").read_text(encoding="utf-8"))
    decisions = decide_routes(FIXTURES.cases, RULES)
    assert [decision.model_dump() for decision in decisions] == golden
    assert [d.first_route for d in decisions] == [
        "Prompt first",
        "Structured output",
        "Prompt eval first, then fine-tuning plan",
    ]


def test_each_case_gets_its_expected_route():
    for case in FIXTURES.cases:
        assert solution_route(case.user_input, RULES) == case.expected_route


@pytest.mark.parametrize(
    ("text", "route"),
    [
        ("What is the latest policy?", "RAG first"),
        # the seed's substring quirk: "source" inside "resource"
        ("Which resource should I read?", "RAG first"),
        ("POLICY", "RAG first"),
        # first rule wins: "source" beats "json"
        ("Cite a source as JSON", "RAG first"),
        ("It keeps using emojis", "Prompt eval first, then fine-tuning plan"),
        ("Add a field", "Structured output"),
        ("Explain attention", "Prompt first"),
        ("", "Prompt first"),
    ],
)
def test_solution_route_like_the_seed(text, route):
    assert solution_route(text, RULES) == route


def test_routes_come_from_the_fixture():
    rules = RULES.model_copy(
        update={"rules": [RouteRule(keywords=["lora"], route="Fine-tune"), *RULES.rules], "default_route": "Ask"}
    )
    assert solution_route("Train a LoRA", rules) == "Fine-tune"
    assert solution_route("hello", rules) == "Ask"
    assert rules.route_names() == [
        "Fine-tune",
        "RAG first",
        "Prompt eval first, then fine-tuning plan",
        "Structured output",
        "Ask",
    ]


def test_route_names_are_unique_and_end_with_the_default():
    rules = RULES.model_copy(update={"default_route": "RAG first"})
    assert rules.route_names() == ["RAG first", "Prompt eval first, then fine-tuning plan", "Structured output"]


def test_decisions_keep_case_order_and_input():
    decisions = decide_routes(reversed(FIXTURES.cases), RULES)
    assert [d.case_id for d in decisions] == ["case_3", "case_2", "case_1"]
    assert decisions[0] == RouteDecision(
        case_id="case_3",
        user_input=FIXTURES.cases[2].user_input,
        first_route="Prompt eval first, then fine-tuning plan",
    )
