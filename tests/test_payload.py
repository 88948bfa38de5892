"""The request payload: the seed's build_payload, from the fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from workshop.fixtures import load_fixtures
from workshop.payload import build_payload

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = load_fixtures(ROOT / "cases" / "cases.json", ROOT / "cases" / "prompt_versions.json")
CASE_3 = FIXTURES.cases[2]

# The seed's instructions, as its build_payload wrote them.
SEED_INSTRUCTIONS = {
    "v1_goal_only": "Help the learner.",
    "v2_json_contract": (
        "Classify the learner request. Return JSON with id, intent, action, confidence, and needs_human_review."
    ),
    "v3_json_with_boundary": (
        "Classify the learner request. Return JSON only. Allowed intent values: "
        "learning_plan, structured_output, solution_choice. confidence must be a "
        "number from 0 to 1. needs_human_review must be true only when the request "
        "asks for unsafe, legal, medical, or production deployment decisions."
    ),
}


@pytest.mark.parametrize("version", FIXTURES.versions, ids=lambda v: v.name)
def test_payload_equals_the_seeds(version):
    payload = build_payload(CASE_3, version, environ={})
    assert payload.as_dict() == {
        "model": "gpt-5.5",
        "input": "Our assistant keeps using the wrong brand tone. Should we fine-tune?",
        "max_output_tokens": 180,
        "temperature": 0.2,
        "prompt_version": version.name,
        "instructions": SEED_INSTRUCTIONS[version.name],
    }


def test_payload_keys_are_in_the_seeds_order():
    payload = build_payload(CASE_3, FIXTURES.versions[0], environ={})
    assert list(payload.as_dict()) == [
        "model",
        "input",
        "max_output_tokens",
        "temperature",
        "prompt_version",
        "instructions",
    ]


def test_values_come_from_the_version_fixture():
    version = FIXTURES.versions[1].model_copy(update={"model": "small-model", "max_output_tokens": 7, "temperature": 0})
    payload = build_payload(FIXTURES.cases[0], version, environ={})
    assert (payload.model, payload.max_output_tokens, payload.temperature) == ("small-model", 7, 0)
    assert payload.input == FIXTURES.cases[0].user_input


def test_openai_model_overrides_the_fixture_model():
    payload = build_payload(CASE_3, FIXTURES.versions[2], environ={"OPENAI_MODEL": "gpt-test"})
    assert payload.model == "gpt-test"
    assert payload.as_dict()["model"] == "gpt-test"


def test_empty_openai_model_is_ignored():
    assert build_payload(CASE_3, FIXTURES.versions[2], environ={"OPENAI_MODEL": ""}).model == "gpt-5.5"


def test_default_environ_is_the_process_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_MODEL", "from-env")
    assert build_payload(CASE_3, FIXTURES.versions[0]).model == "from-env"
    monkeypatch.delenv("OPENAI_MODEL")
    assert build_payload(CASE_3, FIXTURES.versions[0]).model == "gpt-5.5"


def test_payload_is_frozen():
    payload = build_payload(CASE_3, FIXTURES.versions[0], environ={})
    with pytest.raises(AttributeError):
        payload.model = "other"
