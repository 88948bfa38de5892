"""Evaluating prompt versions against cases, and scoring them."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from workshop.evaluation import EvalResult, VersionScore, best_version, evaluate, evaluate_all, judge, score_versions
from workshop.fake_model import FakeModel
from workshop.fixtures import FakeReply, load_fixtures

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = load_fixtures(ROOT / "cases" / "cases.json", ROOT / "cases" / "prompt_versions.json")
MODEL = FakeModel(FIXTURES.fake_model, FIXTURES.versions)


def golden_rows() -> list[dict[str, str]]:
    with open(ROOT / "tests" / "golden" / "prompt_eval.csv", newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def good_json(intent: str, **changes) -> str:
    data = {"id": "x", "intent": intent, "action": "a", "confidence": 0.5, "needs_human_review": False, **changes}
    return json.dumps(data)


def test_evaluate_all_gives_the_seeds_rows():
    results = evaluate_all(FIXTURES, MODEL, environ={})
    rows = [
        {
            "prompt_version": r.prompt_version,
            "case_id": r.case_id,
            "passed": str(r.passed),
            "reason": r.reason,
            "raw_output": r.raw_output,
        }
        for r in results
    ]
    assert rows == golden_rows()


def test_evaluate_all_runs_version_by_version_in_fixture_order():
    results = evaluate_all(FIXTURES, MODEL, environ={})
    assert [(r.prompt_version, r.case_id) for r in results] == [
        (v.name, c.id) for v in FIXTURES.versions for c in FIXTURES.cases
    ]
    assert all(r.expected_intent == c.expected_intent for r, c in zip(results, FIXTURES.cases * 3, strict=True))


def test_results_carry_the_payload_sent():
    results = evaluate_all(FIXTURES, MODEL, environ={"OPENAI_MODEL": "gpt-test"})
    assert {r.payload.model for r in results} == {"gpt-test"}
    assert results[4].payload.instructions == FIXTURES.versions[1].instructions
    assert results[4].payload.input == FIXTURES.cases[1].user_input


def test_wrong_intent_reason_format():
    case = FIXTURES.cases[0]
    assert judge(good_json("solution_choice"), case, FIXTURES.contract) == (
        False,
        "wrong_intent: solution_choice != learning_plan",
    )
    assert judge(good_json("learning_plan"), case, FIXTURES.contract) == (True, "ok")


def test_contract_failures_come_before_the_intent_check():
    case = FIXTURES.cases[0]
    assert judge(good_json("solution_choice", confidence=3), case, FIXTURES.contract) == (
        False,
        "confidence_out_of_range",
    )
    assert judge("nope", case, FIXTURES.contract) == (False, "invalid_json: Expecting value")


def test_evaluate_with_a_model_that_answers_the_wrong_intent():
    version = FIXTURES.versions[2].model_copy(
        update={
            "fake_model": FakeReply(answer="contract_json", scripted_replies={"case_2": good_json("learning_plan")})
        }
    )
    model = FakeModel(FIXTURES.fake_model, [version])
    result = evaluate(version, FIXTURES.cases[1], model, FIXTURES.contract, environ={})
    assert (result.passed, result.reason) == (False, "wrong_intent: learning_plan != structured_output")
    assert result.raw_output == good_json("learning_plan")


def test_score_versions_on_the_real_fixtures():
    results = evaluate_all(FIXTURES, MODEL, environ={})
    scores = score_versions(results, [v.name for v in FIXTURES.versions])
    assert scores == [
        VersionScore(
            "v1_goal_only",
            0,
            3,
            tuple((c, "invalid_json: Expecting value") for c in ("case_1", "case_2", "case_3")),
            pass_at_1=0.0,
            pass_all=0.0,
        ),
        VersionScore(
            "v2_json_contract",
            2,
            3,
            (("case_3", "missing_fields: ['confidence', 'needs_human_review']"),),
            pass_at_1=2 / 3,
            pass_all=2 / 3,
        ),
        VersionScore("v3_json_with_boundary", 3, 3, (), pass_at_1=1.0, pass_all=1.0),
    ]
    assert best_version(scores) == scores[2]


def test_score_versions_follows_the_given_order_and_skips_versions_without_results():
    results = evaluate_all(FIXTURES, MODEL, environ={})
    scores = score_versions(results[3:], ["v3_json_with_boundary", "v1_goal_only", "v2_json_contract"])
    assert [s.version for s in scores] == ["v3_json_with_boundary", "v2_json_contract"]


def test_score_versions_keeps_versions_not_listed_at_the_end():
    results = evaluate_all(FIXTURES, MODEL, environ={})
    scores = score_versions(results, ["v2_json_contract"])
    assert [s.version for s in scores] == ["v2_json_contract", "v1_goal_only", "v3_json_with_boundary"]


def test_score_versions_of_nothing():
    assert score_versions([], ["v1_goal_only"]) == []


def score(name: str, passed: int, total: int) -> VersionScore:
    return VersionScore(name, passed, total, ())


def test_best_version_is_the_highest_pass_rate_not_count():
    assert best_version([score("a", 2, 3), score("b", 2, 2), score("c", 3, 6)]).version == "b"
    assert best_version([score("a", 1, 1), score("b", 9, 10)]).version == "a"


def test_best_version_tie_goes_to_the_later_version():
    assert best_version([score("a", 3, 3), score("b", 3, 3)]).version == "b"
    assert best_version([score("a", 1, 2), score("b", 2, 4), score("c", 0, 4)]).version == "b"
    assert best_version([score("a", 0, 3), score("b", 0, 3)]).version == "b"


def test_best_version_of_no_scores_is_none():
    assert best_version([]) is None


def test_a_version_with_no_results_is_never_best():
    # 0/0 has no pass rate; cross-multiplying would make it tie with (and so beat) everything
    assert best_version([score("a", 3, 3), score("b", 0, 0)]).version == "a"
    assert best_version([score("a", 0, 0), score("b", 0, 3)]).version == "b"
    assert best_version([score("a", 0, 0)]) is None


@pytest.mark.parametrize("index", range(9))
def test_eval_result_json_round_trip(index):
    result = evaluate_all(FIXTURES, MODEL, environ={})[index]
    data = result.to_json()
    assert json.loads(json.dumps(data)) == data
    assert EvalResult.from_json(json.loads(json.dumps(data))) == result
    assert data["payload"]["prompt_version"] == result.prompt_version


def test_eval_result_to_json_fields():
    result = evaluate_all(FIXTURES, MODEL, environ={})[5]
    assert result.to_json() == {
        "prompt_version": "v2_json_contract",
        "case_id": "case_3",
        "passed": False,
        "reason": "missing_fields: ['confidence', 'needs_human_review']",
        "expected_intent": "solution_choice",
        "payload": result.payload.as_dict(),
        "trials": [
            {
                "passed": False,
                "reason": "missing_fields: ['confidence', 'needs_human_review']",
                "completion": {
                    "text": '{"id": "case_3", "intent": "fine_tune", "action": "try fine-tuning"}',
                    "model": "gpt-5.5",
                    "input_tokens": None,
                    "output_tokens": None,
                    "latency_s": None,
                    "refusal": None,
                    "truncated": False,
                    "replayed": False,
                },
                "review_flag": None,
            }
        ],
    }
