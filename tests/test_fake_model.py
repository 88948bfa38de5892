"""The offline fake model: the seed's raw outputs, from the fixtures."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from workshop.fake_model import FakeModel, infer_intent
from workshop.fixtures import Case, FakeReply, PromptVersion, load_fixtures
from workshop.payload import build_payload

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = load_fixtures(ROOT / "cases" / "cases.json", ROOT / "cases" / "prompt_versions.json")


def golden_rows() -> list[dict[str, str]]:
    with open(ROOT / "tests" / "golden" / "prompt_eval.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def answer(model: FakeModel, version: PromptVersion, case: Case) -> str:
    return model.complete(build_payload(case, version, environ={}), case).text


def new_version(name: str, reply: FakeReply) -> PromptVersion:
    return FIXTURES.versions[-1].model_copy(update={"name": name, "fake_model": reply})


def test_raw_outputs_are_byte_identical_to_the_seeds():
    model = FakeModel(FIXTURES.fake_model, FIXTURES.versions)
    rows = golden_rows()
    assert len(rows) == len(FIXTURES.versions) * len(FIXTURES.cases) == 9
    cases = {case.id: case for case in FIXTURES.cases}
    versions = {version.name: version for version in FIXTURES.versions}
    for row in rows:
        raw = answer(model, versions[row["prompt_version"]], cases[row["case_id"]])
        assert raw.encode("utf-8") == row["raw_output"].encode("utf-8"), (row["prompt_version"], row["case_id"])


def test_json_answers_keep_the_seeds_key_order():
    model = FakeModel(FIXTURES.fake_model, FIXTURES.versions)
    raw = answer(model, FIXTURES.versions[2], FIXTURES.cases[0])
    assert list(json.loads(raw)) == ["id", "intent", "action", "confidence", "needs_human_review"]


def test_non_ascii_is_written_as_is_like_the_seeds_ensure_ascii_false():
    case = Case(id="c", user_input="Café notes", expected_intent="learning_plan")
    rules = FIXTURES.fake_model.model_copy(
        update={"actions": {**FIXTURES.fake_model.actions, "learning_plan": "Lisez ça"}}
    )
    raw = answer(FakeModel(rules, FIXTURES.versions), FIXTURES.versions[2], case)
    assert '"action": "Lisez ça"' in raw


def test_a_new_prose_version_from_the_fixtures():
    version = new_version("v4_prose", FakeReply(answer="prose", prose_text="Sure! Here you go."))
    model = FakeModel(FIXTURES.fake_model, [*FIXTURES.versions, version])
    assert {answer(model, version, case) for case in FIXTURES.cases} == {"Sure! Here you go."}


def test_scripted_replies_override_contract_json():
    reply = FakeReply(answer="contract_json", scripted_replies={"case_1": "scripted!"})
    version = new_version("v5", reply)
    model = FakeModel(FIXTURES.fake_model, [version])
    assert answer(model, version, FIXTURES.cases[0]) == "scripted!"
    assert json.loads(answer(model, version, FIXTURES.cases[1]))["intent"] == "structured_output"


def test_scripted_replies_override_prose():
    reply = FakeReply(answer="prose", prose_text="prose", scripted_replies={"case_2": ""})
    version = new_version("v6", reply)
    model = FakeModel(FIXTURES.fake_model, [version])
    assert [answer(model, version, case) for case in FIXTURES.cases] == ["prose", "", "prose"]


def test_answer_fields_come_from_the_rules():
    rules = FIXTURES.fake_model.model_copy(update={"confidence": 0.5, "needs_human_review": True})
    raw = answer(FakeModel(rules, FIXTURES.versions), FIXTURES.versions[2], FIXTURES.cases[2])
    data = json.loads(raw)
    assert (data["confidence"], data["needs_human_review"]) == (0.5, True)
    assert data["action"] == FIXTURES.fake_model.actions["solution_choice"]


def test_an_unknown_version_raises_a_clear_value_error():
    model = FakeModel(FIXTURES.fake_model, FIXTURES.versions[:1])
    with pytest.raises(ValueError, match="no behaviour for prompt version 'v3_json_with_boundary'"):
        answer(model, FIXTURES.versions[2], FIXTURES.cases[0])


def test_intent_comes_from_the_payload_input():
    case = FIXTURES.cases[0]
    payload = build_payload(case, FIXTURES.versions[2], environ={})
    payload = type(payload)(**{**payload.as_dict(), "input": "Please give me JSON"})
    raw = FakeModel(FIXTURES.fake_model, FIXTURES.versions).complete(payload, case).text
    assert json.loads(raw)["intent"] == "structured_output"
    assert json.loads(raw)["id"] == "case_1"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("I understand tokens but not attention. Give me a short study plan.", "learning_plan"),
        ("Convert this note into JSON fields: topic=LoRA, risk=overfitting.", "structured_output"),
        ("Our assistant keeps using the wrong brand tone. Should we fine-tune?", "solution_choice"),
        # the seed's substring quirks: "rag" inside "storage", "field" inside "fieldwork"
        ("How does storage work?", "solution_choice"),
        ("Plan my fieldwork", "structured_output"),
        # the first rule wins: "schema" beats "fine-tune"
        ("Fine-tune a SCHEMA", "structured_output"),
        ("BRAND TONE please", "solution_choice"),
        ("", "learning_plan"),
    ],
)
def test_infer_intent_like_the_seed(text, intent):
    assert infer_intent(text, FIXTURES.fake_model) == intent


def test_intent_rules_come_from_the_fixture():
    rules = FIXTURES.fake_model.model_copy(update={"default_intent": "structured_output", "intent_rules": []})
    assert infer_intent("Convert this note into JSON", rules) == "structured_output"
    assert infer_intent("fine-tune", rules) == "structured_output"
