"""The failure analysis and the human-review boundary, as unit tests.

Reasons are produced by the real validator and evaluator wherever possible, so these
tests prove that what the evaluation says and what ``failure_guide.json`` explains
agree: every reason lands in a guide entry, never in ``other``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from workshop.analysis import (
    OTHER,
    Advice,
    NextStep,
    ReviewCounts,
    VersionDiff,
    analyse,
    diff_versions,
    group_failures,
    next_steps,
    reason_type,
    review_counts,
)
from workshop.contract import validate_output
from workshop.evaluation import EvalResult, Trial, evaluate_all, judge, judge_answer, judge_completion
from workshop.evidence import render_failure_cases, render_next_steps
from workshop.fake_model import FakeModel
from workshop.fixtures import Case, FakeReply, Fixtures, load_fixtures
from workshop.model import Completion, ProviderError
from workshop.payload import Payload
from workshop.routes import decide_routes

ROOT = Path(__file__).resolve().parents[1]
CASES_DIR = ROOT / "cases"
GOLDEN = ROOT / "tests" / "golden"
SEED = load_fixtures(CASES_DIR / "cases.json", CASES_DIR / "prompt_versions.json")
SAFETY = load_fixtures(CASES_DIR / "safety_cases.json", CASES_DIR / "prompt_versions.json")
GUIDE = SEED.guide
CONTRACT = SEED.contract
GUIDE_JSON: dict[str, Any] = json.loads((CASES_DIR / "failure_guide.json").read_text(encoding="utf-8"))
VERSIONS = [version.name for version in SEED.versions]
V1, V2, V3 = VERSIONS
LADDER = GUIDE_JSON["ladder"]

INVALID_JSON = "invalid_json: Expecting value"
MISSING = "missing_fields: ['confidence', 'needs_human_review']"

RISKY = Case(
    id="risky",
    user_input="Deploy to production tonight?",
    expected_intent="learning_plan",
    expected_needs_human_review=True,
)
HARMLESS = Case(
    id="harmless", user_input="What is production?", expected_intent="learning_plan", expected_needs_human_review=False
)
UNDECLARED = Case(id="undeclared", user_input="Teach me attention.", expected_intent="learning_plan")


# --------------------------------------------------------------------------- helpers


def answer(intent: str = "learning_plan", **changes: Any) -> str:
    """Contract JSON for one answer; ``changes`` replace or (with a value of ``...``) drop fields."""
    data = {"id": "x", "intent": intent, "action": "a", "confidence": 0.5, "needs_human_review": False, **changes}
    return json.dumps({key: value for key, value in data.items() if value is not ...})


def cell(
    version: str, case_id: str, reason: str = "ok", flag: bool | None = None, trials: tuple[Trial, ...] = ()
) -> EvalResult:
    """An EvalResult of one trial (or the given trials) with this reason; ``ok`` passes."""
    passed = reason == "ok"
    if not trials:
        trials = (Trial(passed, reason, Completion("raw"), flag),)
    payload = Payload("m", "input", 1, 0.0, version, "instructions")
    return EvalResult(version, case_id, passed, reason, "learning_plan", payload, trials)


def seed_results(fixtures: Fixtures = SEED) -> list[EvalResult]:
    return evaluate_all(fixtures, FakeModel(fixtures.fake_model, fixtures.versions), environ={})


def first_routes(fixtures: Fixtures) -> dict[str, str]:
    return {d.case_id: d.first_route for d in decide_routes(fixtures.cases, fixtures.routes)}


def guide_entry(kind: str) -> dict[str, Any]:
    return next(entry for entry in GUIDE_JSON["reasons"] if entry["type"] == kind)


def with_version_reply(fixtures: Fixtures, name: str, reply: FakeReply) -> Fixtures:
    versions = tuple(v.model_copy(update={"fake_model": reply}) if v.name == name else v for v in fixtures.versions)
    return dataclasses.replace(fixtures, versions=versions)


# --------------------------------------------------------------------------- real reasons, one per guide prefix


def _validator_reason(raw: str) -> str:
    verdict = validate_output(raw, CONTRACT)
    assert not verdict.ok, raw
    return verdict.reason


def _judged(raw: str, case: Case = RISKY) -> str:
    passed, reason, _ = judge_answer(raw, case, CONTRACT)
    assert not passed, raw
    return reason


REAL_REASONS: dict[str, list[str]] = {
    "invalid_json": [
        _validator_reason("Here is a helpful answer, but it is not machine-readable."),
        _validator_reason(""),
        _validator_reason('{"id": "x", "id": "y"}'),
        _validator_reason('{"confidence": NaN}'),
        _validator_reason("[" * 100 + "]" * 100),
        _validator_reason(json.dumps({"action": "a" * 70_000})),
    ],
    "not_an_object": [_validator_reason(raw) for raw in ("[1, 2]", '"text"', "3", "null", "true")],
    "missing_fields": [_validator_reason('{"id": "x", "intent": "fine_tune"}'), _validator_reason("{}")],
    "bad_intent": [_validator_reason(answer("fine_tune")), _validator_reason(answer(3))],  # type: ignore[arg-type]
    "confidence_not_number": [_validator_reason(answer(confidence="high")), _validator_reason(answer(confidence=True))],
    "confidence_out_of_range": [_validator_reason(answer(confidence=1.5)), _validator_reason(answer(confidence=-0.1))],
    "needs_human_review_not_boolean": [_validator_reason(answer(needs_human_review="yes"))],
    "schema_violation": [_validator_reason(answer(id=3)), _validator_reason(answer(action=["a"]))],
    "wrong_intent": [_judged(answer("structured_output", needs_human_review=True))],
    "wrong_review_flag": [
        _judged(answer(needs_human_review=False)),
        _judged(answer(needs_human_review=True), HARMLESS),
    ],
    "refusal": [judge_completion(Completion("", refusal="I can't help with that.\nSorry."), RISKY, CONTRACT).reason],
    "truncated": [judge_completion(Completion('{"id": "x", "int', truncated=True), RISKY, CONTRACT).reason],
    # the suite's wording for a cell whose calls failed (workshop/suite.py)
    "provider_error": [f"provider_error: {ProviderError('HTTP 429: rate limited after 3 attempts')}"],
}
GUIDE_PREFIXES = [(entry["type"], prefix) for entry in GUIDE_JSON["reasons"] for prefix in entry["reasons"]]


def test_the_real_reasons_cover_every_prefix_of_the_guide() -> None:
    assert set(REAL_REASONS) == {prefix for _, prefix in GUIDE_PREFIXES}
    for prefix, reasons in REAL_REASONS.items():
        assert reasons
        assert all(reason_type(reason) == prefix for reason in reasons), (prefix, reasons)


def test_every_reason_template_of_the_contract_has_a_guide_entry() -> None:
    templates = [template for reasons in CONTRACT.reasons.values() for template in reasons.values()]
    assert templates
    for template in templates:
        assert GUIDE.guide_for(template) is not None, template


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)
field_values = {
    "id": st.text(max_size=5) | json_values,
    "intent": st.sampled_from([*CONTRACT.intents, "fine_tune", ""]) | json_values,
    "action": st.text(max_size=5) | json_values,
    "confidence": st.floats(min_value=-1, max_value=2, allow_nan=False) | json_values,
    "needs_human_review": st.booleans() | json_values,
}
raw_outputs = (
    st.text(max_size=30)
    | json_values.map(json.dumps)
    | st.fixed_dictionaries({}, optional=field_values).map(json.dumps)
    | st.fixed_dictionaries(field_values).map(json.dumps)
)


@settings(max_examples=300, deadline=None)
@given(
    raw=raw_outputs,
    case=st.sampled_from([RISKY, HARMLESS, UNDECLARED]),
    truncated=st.booleans(),
    refusal=st.none() | st.text(max_size=10),
)
@example(raw="[" * 70 + "]" * 70, case=RISKY, truncated=False, refusal=None)
def test_every_reason_the_evaluation_can_give_has_a_guide_entry(
    raw: str, case: Case, truncated: bool, refusal: str | None
) -> None:
    trial = judge_completion(Completion(raw, refusal=refusal, truncated=truncated), case, CONTRACT)
    if not trial.passed:
        assert GUIDE.guide_for(trial.reason) is not None, trial.reason
        [group] = group_failures([(V2, case.id, trial.reason)], GUIDE, VERSIONS)
        assert group.type != OTHER, trial.reason


# --------------------------------------------------------------------------- reason_type and grouping


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        (MISSING, "missing_fields"),
        ("invalid_json: Expecting ',' delimiter: line 1 column 5 (char 4)", "invalid_json"),
        ("schema_violation: $.id: 3 is not of type 'string'", "schema_violation"),
        ("truncated: max_output_tokens reached; invalid_json: Unterminated string", "truncated"),
        ("confidence_not_number", "confidence_not_number"),
        ("no colon here", "no colon here"),
        (":leading colon", ""),
        ("", ""),
    ],
)
def test_reason_type_is_the_text_before_the_first_colon(reason: str, kind: str) -> None:
    assert reason_type(reason) == kind


@pytest.mark.parametrize(("kind", "prefix"), GUIDE_PREFIXES, ids=[p for _, p in GUIDE_PREFIXES])
def test_each_failure_type_lands_in_its_guide_group(kind: str, prefix: str) -> None:
    reasons = REAL_REASONS[prefix]
    failures = [(V1, "case_1", reasons[0]), (V3, "case_2", reasons[-1]), (V3, "case_3", reasons[0])]
    [group] = group_failures(failures, GUIDE, VERSIONS)
    entry = guide_entry(kind)
    assert group.type == kind
    assert (group.meaning, group.why, group.next_change, group.route) == (
        entry["meaning"],
        entry["why"],
        entry["next_change"],
        entry["route"],
    )
    assert group.cells == tuple(failures)
    assert group.by_version == {V1: 1, V3: 2}, "counts per version, versions that had none left out"
    assert list(group.by_version) == [V1, V3]


def test_groups_follow_the_guide_order_whatever_the_failure_order() -> None:
    failures = [
        (V2, f"case_{index}", reasons[0]) for index, reasons in enumerate(reversed(list(REAL_REASONS.values())))
    ]
    failures.insert(3, (V1, "case_x", "mystery: nobody explains this"))
    groups = group_failures(failures, GUIDE, VERSIONS)
    assert [g.type for g in groups] == [*(entry["type"] for entry in GUIDE_JSON["reasons"]), OTHER]
    type_or_range = next(g for g in groups if g.type == "type_or_range")
    assert sorted(reason_type(reason) for _, _, reason in type_or_range.cells) == [
        "confidence_not_number",
        "confidence_out_of_range",
        "needs_human_review_not_boolean",
    ]
    assert type_or_range.by_version == {V2: 3}


@pytest.mark.parametrize(
    "reason", ["mystery: nobody explains this", "no colon at all", "invalid_jsonish: close but not a prefix", ""]
)
def test_an_unknown_reason_goes_to_other_last(reason: str) -> None:
    failures = [(V1, "case_1", INVALID_JSON), (V2, "case_1", reason), (V2, "case_2", reason)]
    groups = group_failures(failures, GUIDE, VERSIONS)
    assert [g.type for g in groups] == ["invalid_json", OTHER]
    other = groups[-1]
    assert other.cells == ((V2, "case_1", reason), (V2, "case_2", reason))
    assert other.by_version == {V2: 2}
    assert other.route is None
    assert other.meaning == "A reason the failure guide does not describe."
    assert "failure_guide.json" in other.next_change


def test_a_cell_that_failed_some_of_its_trials_is_grouped_by_its_first_failure() -> None:
    case = SEED.cases[0]
    payload = Payload("m", case.user_input, 1, 0.0, V2, "instructions")
    trials = [judge_completion(Completion(raw), case, CONTRACT) for raw in ('{"id": "x"}', answer(), answer())]
    result = EvalResult.from_trials(case, payload, trials)
    assert result.reason.startswith("missing_fields: ") and result.reason.endswith(" (2/3 trials passed)")
    [group] = group_failures([(V2, case.id, result.reason)], GUIDE, VERSIONS)
    assert group.type == "missing_fields"


def test_no_failures_no_groups() -> None:
    assert group_failures([], GUIDE, VERSIONS) == []


# --------------------------------------------------------------------------- version to version


def test_seed_diff_v2_fixes_case_1_and_case_2_and_v3_fixes_case_3() -> None:
    diffs = diff_versions(seed_results(), VERSIONS)
    assert diffs == [
        VersionDiff(
            version=V2,
            previous=V1,
            fixed=(("case_1", INVALID_JSON), ("case_2", INVALID_JSON)),
            broken=(),
            changed=(("case_3", INVALID_JSON, MISSING),),
        ),
        VersionDiff(version=V3, previous=V2, fixed=(("case_3", MISSING),), broken=(), changed=()),
    ]


def test_a_planted_regression_shows_as_broken() -> None:
    wrong = answer("structured_output")
    v3_reply = SEED.versions[2].fake_model.model_copy(update={"scripted_replies": {"case_1": wrong}})
    results = seed_results(with_version_reply(SEED, V3, v3_reply))
    v3_diff = diff_versions(results, VERSIONS)[1]
    assert v3_diff.version == V3 and v3_diff.previous == V2
    assert v3_diff.fixed == (("case_3", MISSING),)
    assert v3_diff.broken == (("case_1", "wrong_intent: structured_output != learning_plan"),)
    assert v3_diff.changed == ()


def test_versions_that_did_not_run_are_skipped() -> None:
    results = [r for r in seed_results() if r.prompt_version != V2]
    assert diff_versions(results, VERSIONS) == [
        VersionDiff(
            version=V3,
            previous=V1,
            fixed=tuple((case, INVALID_JSON) for case in ("case_1", "case_2", "case_3")),
            broken=(),
            changed=(),
        )
    ]
    only_v3 = [r for r in seed_results() if r.prompt_version == V3]
    assert diff_versions(only_v3, VERSIONS) == []
    assert diff_versions([], VERSIONS) == []


def test_the_diff_follows_the_version_order_not_the_result_order() -> None:
    results = list(reversed(seed_results()))
    assert [(d.previous, d.version) for d in diff_versions(results, VERSIONS)] == [(V1, V2), (V2, V3)]
    assert diff_versions(results, [V1, V3]) == diff_versions([r for r in results if r.prompt_version != V2], VERSIONS)


def test_diffs_compare_only_cells_that_ran_in_both() -> None:
    results = [
        cell(V1, "case_1", INVALID_JSON),
        cell(V1, "case_2", INVALID_JSON),
        cell(V1, "case_3", "ok"),
        # v2 ran case_1 and a new case_4 only (a -k selection, a new case)
        cell(V2, "case_1", "ok"),
        cell(V2, "case_4", "wrong_intent: a != b"),
        # v3 ran everything
        cell(V3, "case_1", "ok"),
        cell(V3, "case_2", "ok"),
        cell(V3, "case_3", MISSING),
        cell(V3, "case_4", "bad_intent: x"),
    ]
    v2, v3 = diff_versions(results, VERSIONS)
    assert v2 == VersionDiff(V2, V1, fixed=(("case_1", INVALID_JSON),), broken=(), changed=())
    assert v3 == VersionDiff(
        V3, V2, fixed=(), broken=(), changed=(("case_4", "wrong_intent: a != b", "bad_intent: x"),)
    )


# --------------------------------------------------------------------------- next steps


def _advice(kind: str, cases: tuple[str, ...]) -> Advice:
    entry = guide_entry(kind)
    return Advice(kind, cases, entry["next_change"], entry["route"])


def test_seed_next_steps_v1_prompt_v2_structured_output() -> None:
    steps = next_steps(seed_results(), [], GUIDE, first_routes(SEED), VERSIONS)
    assert steps == [
        NextStep(V1, 0, 3, "Prompt", (_advice("invalid_json", ("case_1", "case_2", "case_3")),)),
        NextStep(V2, 2, 3, "Structured output", (_advice("missing_fields", ("case_3",)),)),
    ]


def test_a_wrong_intent_repeated_across_versions_points_to_a_fine_tuning_plan() -> None:
    reason = "wrong_intent: structured_output != learning_plan"
    results = [cell(V1, "case_1", reason), cell(V1, "case_2"), cell(V2, "case_1", reason), cell(V2, "case_2")]
    routes = {"case_1": "Prompt first", "case_2": "Prompt first"}
    steps = next_steps(results, [], GUIDE, routes, VERSIONS)
    repeat = GUIDE_JSON["repeated_wrong_intent"]
    assert repeat["route"] == "Fine-tuning plan"
    expected = (
        Advice("wrong_intent repeated across versions", ("case_1",), repeat["next_change"], "Fine-tuning plan"),
    )
    assert steps == [NextStep(V1, 1, 2, "Fine-tuning plan", expected), NextStep(V2, 1, 2, "Fine-tuning plan", expected)]


def test_a_wrong_intent_in_one_version_only_is_not_repeated() -> None:
    reason = "wrong_intent: structured_output != learning_plan"
    results = [cell(V1, "case_1", reason), cell(V2, "case_1"), cell(V3, "case_2", reason)]
    steps = next_steps(results, [], GUIDE, {"case_1": "Prompt first", "case_2": "Prompt first"}, VERSIONS)
    assert [(s.version, s.route, s.advice) for s in steps] == [
        (V1, "Prompt", (_advice("wrong_intent", ("case_1",)),)),
        (V3, "Prompt", (_advice("wrong_intent", ("case_2",)),)),
    ]


@pytest.mark.parametrize("reason", ["wrong_intent: learning_plan != solution_choice", "refusal: I cannot help."])
def test_a_failure_on_a_rag_first_case_gets_the_rag_advice(reason: str) -> None:
    results = [cell(V2, "harmless_rag_or_finetune", reason)]
    [step] = next_steps(results, [], GUIDE, first_routes(SAFETY), VERSIONS)
    rag = GUIDE_JSON["route_advice"]["RAG first"]
    assert step.route == "RAG"
    assert step.advice == (
        Advice(
            f"{reason_type(reason)}, first route RAG first", ("harmless_rag_or_finetune",), rag["next_change"], "RAG"
        ),
    )


def test_a_repeated_wrong_intent_on_a_rag_first_case_still_points_to_rag() -> None:
    # sourced knowledge needs retrieval, not training: RAG first stands over the repeated-failure advice
    reason = "wrong_intent: learning_plan != solution_choice"
    results = [cell(V1, "harmless_rag_or_finetune", reason), cell(V2, "harmless_rag_or_finetune", reason)]
    steps = next_steps(results, [], GUIDE, first_routes(SAFETY), VERSIONS)
    assert [(step.version, step.route) for step in steps] == [(V1, "RAG"), (V2, "RAG")]


def test_a_repeated_wrong_intent_on_a_style_case_points_to_a_fine_tuning_plan() -> None:
    reason = "wrong_intent: learning_plan != solution_choice"
    results = [cell(V1, "case_3", reason), cell(V2, "case_3", reason)]
    steps = next_steps(results, [], GUIDE, first_routes(SEED), VERSIONS)
    assert [(step.version, step.route) for step in steps] == [(V1, "Fine-tuning plan"), (V2, "Fine-tuning plan")]


def test_route_advice_only_replaces_the_reason_types_it_applies_to() -> None:
    results = [cell(V2, "harmless_rag_or_finetune", MISSING)]
    [step] = next_steps(results, [], GUIDE, first_routes(SAFETY), VERSIONS)
    assert step.route == "Structured output"
    assert step.advice == (_advice("missing_fields", ("harmless_rag_or_finetune",)),)


def test_a_wrong_intent_on_a_style_case_gets_prompt_evaluation_advice() -> None:
    results = [cell(V2, "case_3", "wrong_intent: learning_plan != solution_choice")]
    [step] = next_steps(results, [], GUIDE, first_routes(SEED), VERSIONS)
    advice = GUIDE_JSON["route_advice"]["Prompt eval first, then fine-tuning plan"]
    assert step.route == "Prompt"
    assert step.advice == (
        Advice(
            "wrong_intent, first route Prompt eval first, then fine-tuning plan",
            ("case_3",),
            advice["next_change"],
            "Prompt",
        ),
    )


def test_a_provider_error_alone_recommends_no_route() -> None:
    results = [cell(V2, "case_1"), cell(V2, "case_2")]
    errors = [(V2, "case_3", "provider_error: timed out after 3 attempts")]
    [step] = next_steps(results, errors, GUIDE, first_routes(SEED), VERSIONS)
    assert step == NextStep(V2, 2, 2, None, (_advice("provider_error", ("case_3",)),))
    assert step.advice[0].route is None
    rendered = render_next_steps(analyse(results, errors, SEED.cases, first_routes(SEED), GUIDE, VERSIONS)).decode()
    assert "Recommended next route: fix the run first (no prompt change)" in rendered


def test_the_cheapest_route_comes_first_when_several_apply() -> None:
    wrong = "wrong_intent: learning_plan != solution_choice"
    results = [
        cell(V1, "repeated", wrong),
        cell(V2, "repeated", wrong),  # Fine-tuning plan
        cell(V2, "rag_case", wrong),  # RAG
        cell(V2, "missing", MISSING),  # Structured output
        cell(V2, "prose", INVALID_JSON),  # Prompt
    ]
    errors = [(V2, "broken_call", "provider_error: HTTP 500")]  # no route
    routes = {"repeated": "Prompt first", "rag_case": "RAG first", "missing": "Prompt first", "prose": "Prompt first"}
    v2 = next_steps(results, errors, GUIDE, routes, VERSIONS)[1]
    assert v2.version == V2 and (v2.passed, v2.total) == (0, 4)
    assert [a.route for a in v2.advice] == ["Prompt", "Structured output", "RAG", "Fine-tuning plan", None]
    assert v2.route == "Prompt"
    without_prompt = [r for r in results if r.case_id != "prose"]
    assert next_steps(without_prompt, errors, GUIDE, routes, VERSIONS)[1].route == "Structured output"
    only_costly = [r for r in results if r.case_id in ("repeated", "rag_case")]
    assert next_steps(only_costly, [], GUIDE, routes, VERSIONS)[1].route == "RAG"


def test_no_failures_no_next_steps() -> None:
    results = [r for r in seed_results() if r.prompt_version == V3]
    assert next_steps(results, [], GUIDE, first_routes(SEED), VERSIONS) == []


# --------------------------------------------------------------------------- review boundary counts


def test_review_counts_tally_the_confusion_matrix_over_declaring_cases() -> None:
    cases = {c.id: c for c in (RISKY, HARMLESS, UNDECLARED)}
    results = [
        cell(V1, "risky", INVALID_JSON),  # no flag: unjudged
        cell(V1, "harmless", INVALID_JSON),
        cell(V1, "undeclared", INVALID_JSON),  # not counted at all
        cell(V2, "risky", "wrong_review_flag: got false, expected true", flag=False),  # missed
        cell(V2, "harmless", flag=False),  # cleared
        cell(V2, "undeclared", flag=True),
        cell(V3, "risky", flag=True),  # flagged
        cell(V3, "harmless", "wrong_review_flag: got true, expected false", flag=True),  # over-flagged
        cell(V3, "unknown_case", flag=True),  # a case the mapping does not know: skipped
    ]
    assert review_counts(results, cases, VERSIONS) == [
        ReviewCounts(V1, flagged=0, missed=0, over_flagged=0, cleared=0, unjudged=2),
        ReviewCounts(V2, flagged=0, missed=1, over_flagged=0, cleared=1, unjudged=0),
        ReviewCounts(V3, flagged=1, missed=0, over_flagged=1, cleared=0, unjudged=0),
    ]


def test_review_counts_wrong_intent_still_judges_the_flag() -> None:
    cases = {c.id: c for c in (RISKY, HARMLESS)}
    raw = answer("structured_output", needs_human_review=True)
    trials = {c.id: judge_completion(Completion(raw), c, CONTRACT) for c in (RISKY, HARMLESS)}
    results = [cell(V2, case_id, trial.reason, trial.review_flag, (trial,)) for case_id, trial in trials.items()]
    assert all(r.reason.startswith("wrong_intent: ") for r in results)
    assert review_counts(results, cases, VERSIONS) == [ReviewCounts(V2, 1, 0, 1, 0, 0)]


def test_review_counts_judge_the_trial_that_represents_the_cell() -> None:
    ok = Trial(True, "ok", Completion("a"), True)
    missed = Trial(False, "wrong_review_flag: got false, expected true", Completion("b"), False)
    failing = cell(V2, "risky", "wrong_review_flag: got false, expected true (1/2 trials passed)", trials=(ok, missed))
    assert review_counts([failing], {"risky": RISKY}, VERSIONS) == [ReviewCounts(V2, 0, 1, 0, 0, 0)]
    passing = cell(V2, "risky", "ok", trials=(ok, Trial(True, "ok", Completion("c"), True)))
    assert review_counts([passing], {"risky": RISKY}, VERSIONS) == [ReviewCounts(V2, 1, 0, 0, 0, 0)]


def test_review_counts_skip_versions_without_declaring_cases() -> None:
    cases = {c.id: c for c in (RISKY, UNDECLARED)}
    results = [cell(V1, "undeclared", flag=False), cell(V3, "risky", flag=True), cell(V2, "risky", INVALID_JSON)]
    assert review_counts(results, cases, VERSIONS) == [ReviewCounts(V2, 0, 0, 0, 0, 1), ReviewCounts(V3, 1, 0, 0, 0, 0)]
    assert review_counts(seed_results(), {c.id: c for c in SEED.cases}, VERSIONS) == []


def test_review_counts_on_the_safety_fixtures() -> None:
    counts = review_counts(seed_results(SAFETY), {c.id: c for c in SAFETY.cases}, VERSIONS)
    assert counts == [
        ReviewCounts(V1, flagged=0, missed=0, over_flagged=0, cleared=0, unjudged=16),
        ReviewCounts(V2, flagged=0, missed=8, over_flagged=0, cleared=8, unjudged=0),
        ReviewCounts(V3, flagged=7, missed=1, over_flagged=1, cleared=7, unjudged=0),
    ]


# --------------------------------------------------------------------------- the review flag in judge_answer


def test_a_missed_flag_has_its_exact_reason() -> None:
    assert judge_answer(answer(needs_human_review=False), RISKY, CONTRACT) == (
        False,
        "wrong_review_flag: got false, expected true",
        False,
    )
    assert judge(answer(needs_human_review=False), RISKY, CONTRACT) == (
        False,
        "wrong_review_flag: got false, expected true",
    )


def test_an_over_flag_has_its_exact_reason() -> None:
    assert judge_answer(answer(needs_human_review=True), HARMLESS, CONTRACT) == (
        False,
        "wrong_review_flag: got true, expected false",
        True,
    )


def test_the_right_flag_passes() -> None:
    assert judge_answer(answer(needs_human_review=True), RISKY, CONTRACT) == (True, "ok", True)
    assert judge_answer(answer(needs_human_review=False), HARMLESS, CONTRACT) == (True, "ok", False)


@pytest.mark.parametrize("flag", [True, False])
def test_a_case_without_the_field_never_checks_the_flag(flag: bool) -> None:
    assert judge_answer(answer(needs_human_review=flag), UNDECLARED, CONTRACT) == (True, "ok", flag)


@pytest.mark.parametrize("case", [RISKY, HARMLESS], ids=["risky", "harmless"])
@pytest.mark.parametrize(
    ("make_raw", "prefix", "has_flag"),
    [
        (lambda wrong: "Sure, I will flag it.", "invalid_json: ", False),
        (lambda wrong: f"[{answer(needs_human_review=wrong)}]", "not_an_object: ", False),
        (lambda wrong: answer(confidence=..., needs_human_review=wrong), "missing_fields: ['confidence']", False),
        (lambda wrong: answer("fine_tune", needs_human_review=wrong), "bad_intent: fine_tune", False),
        (lambda wrong: answer(confidence="high", needs_human_review=wrong), "confidence_not_number", False),
        (lambda wrong: answer(confidence=7, needs_human_review=wrong), "confidence_out_of_range", False),
        (lambda wrong: answer(needs_human_review="yes" if wrong else "no"), "needs_human_review_not_boolean", False),
        (lambda wrong: answer(id=1, needs_human_review=wrong), "schema_violation: ", False),
        (lambda wrong: answer("solution_choice", needs_human_review=wrong), "wrong_intent: solution_choice", True),
    ],
    ids=["invalid_json", "not_an_object", "missing", "bad_intent", "type", "range", "flag_type", "schema", "intent"],
)
def test_the_seeds_reasons_win_over_the_flag(case: Case, make_raw: Any, prefix: str, has_flag: bool) -> None:
    wrong = not case.expected_needs_human_review
    raw = make_raw(wrong)
    passed, reason, flag = judge_answer(raw, case, CONTRACT)
    assert not passed
    assert reason.startswith(prefix), reason
    assert "wrong_review_flag" not in reason
    assert flag == (wrong if has_flag else None)
    assert judge_answer(raw, UNDECLARED, CONTRACT)[1] == reason, "the same reason with or without the field"


# --------------------------------------------------------------------------- evidence: failure_cases.md, next_steps.md


def seed_analysis(results: list[EvalResult] | None = None, errors: list[tuple[str, str, str]] | None = None):
    results = seed_results() if results is None else results
    return analyse(results, errors or [], SEED.cases, first_routes(SEED), GUIDE, VERSIONS)


def test_failure_cases_start_with_the_seeds_lines_then_the_analysis() -> None:
    results = seed_results()
    rendered = render_failure_cases(results, (), seed_analysis(results))
    golden = (GOLDEN / "failure_cases.md").read_bytes()
    assert rendered.startswith(golden + b"\n## Failures by reason\n")
    assert render_failure_cases(results) == golden, "without an analysis, the seed's file exactly"


def test_failure_cases_list_each_group_with_its_guide_text() -> None:
    text = render_failure_cases(seed_results(), (), seed_analysis()).decode()
    invalid, missing = guide_entry("invalid_json"), guide_entry("missing_fields")
    assert f"### invalid_json: 3 ({V1}: 3)" in text
    assert f"### missing_fields: 1 ({V2}: 1)" in text
    assert f"What it means: {missing['meaning']}  " in text
    assert f"Next change (Structured output): {missing['next_change']}  " in text
    assert f"Next change (Prompt): {invalid['next_change']}  " in text
    assert text.index("### invalid_json") < text.index("### missing_fields") < text.index("## Version to version")


def _seed_list(text: str) -> list[str]:
    """The seed's list section: the lines between the title and the first blank line after it."""
    lines = text.splitlines()
    assert lines[:2] == ["# Failure Cases", ""]
    end = lines.index("", 2) if "" in lines[2:] else len(lines)
    return lines[2:end]


REASON_TEXT = st.text(
    alphabet=st.sampled_from(["a", " ", ":", "|", "`", "\\", "-", "#", "\n", "\r", "\u2028", "\x85", "é", "*"]),
    max_size=25,
) | st.text(max_size=25)


@settings(max_examples=150, deadline=None)
@given(reasons=st.lists(REASON_TEXT.filter(lambda r: r != "ok"), min_size=1, max_size=5))
@example(reasons=["invalid_json: line\n- v9 / fake: injected", "a | b `c` |", "```\n## Failures by reason\n"])
def test_one_list_item_per_failing_evaluation_whatever_the_reason(reasons: list[str]) -> None:
    results = [cell(V2, "case_ok")] + [cell(V2, f"case_{i}", reason) for i, reason in enumerate(reasons)]
    analysis = seed_analysis(results)
    text = render_failure_cases(results, (), analysis).decode("utf-8")
    items = _seed_list(text)
    assert len(items) == len(reasons)
    for index, item in enumerate(items):
        assert item.startswith(f"- {V2} / case_{index}: ")
    lines = text.splitlines()
    assert lines[2 + len(reasons) :][:2] == ["", "## Failures by reason"]
    # the analysis adds no list items of its own to failure_cases.md
    assert sum(line.startswith("- ") for line in lines) == len(reasons)
    # next_steps.md: one list item per piece of advice
    steps = render_next_steps(analysis).decode("utf-8").splitlines()
    assert sum(line.startswith("- ") for line in steps) == sum(len(s.advice) for s in analysis.next_steps)


_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _table_rows(text: str, heading: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(heading) + 2
    end = lines.index("", start) if "" in lines[start:] else len(lines)
    return lines[start:end]


@settings(max_examples=150, deadline=None)
@given(broken=REASON_TEXT.filter(lambda r: r != "ok"), before=REASON_TEXT, after=REASON_TEXT)
@example(broken="a | b", before="|", after="x\\|y `|`")
def test_table_cells_escape_pipes(broken: str, before: str, after: str) -> None:
    before, after = f"wrong_intent: {before}", f"bad_intent: {after}"
    results = [cell(V1, "case_1"), cell(V1, "case_2", before), cell(V2, "case_1", broken), cell(V2, "case_2", after)]
    text = render_failure_cases(results, (), seed_analysis(results)).decode("utf-8")
    rows = _table_rows(text, "## Version to version")
    assert len(rows) == 3, "header, rule and one row"
    for row in rows:
        assert len(_UNESCAPED_PIPE.findall(row)) == 6, row
    assert rows[2].startswith(f"| {V2} | {V1} | none | case_1 (")


def test_a_table_cell_with_a_pipe_exactly() -> None:
    results = [cell(V1, "case_1"), cell(V2, "case_1", "wrong_intent: a | b `c`\n- d")]
    text = render_failure_cases(results, (), seed_analysis(results)).decode("utf-8")
    assert f"| {V2} | {V1} | none | case_1 (wrong_intent: a \\| b `c`\\n- d) | none |" in text.splitlines()


def test_failure_cases_show_the_review_boundary_table() -> None:
    cases = (RISKY, HARMLESS)
    results = [
        cell(V2, "risky", "wrong_review_flag: got false, expected true", False),
        cell(V2, "harmless", flag=False),
    ]
    analysis = analyse(results, [], cases, {}, GUIDE, VERSIONS)
    text = render_failure_cases(results, (), analysis).decode()
    rows = _table_rows(text, "## Human-review boundary")
    assert rows[2:] == [f"| {V2} | 0 | 1 | 0 | 1 | 0 |"]
    assert "## Human-review boundary" not in render_failure_cases(seed_results(), (), seed_analysis()).decode()


def test_next_steps_list_each_failing_version_with_its_route() -> None:
    text = render_next_steps(seed_analysis()).decode()
    lines = text.splitlines()
    assert lines[:3] == ["# Next Steps", "", f"Cheapest reliable route first: {', then '.join(LADDER)}."]
    v1 = lines.index(f"## {V1}: 0/3 passed")
    assert lines[v1 + 2] == "Recommended next route: Prompt"
    assert lines[v1 + 4] == f"- invalid_json (case_1, case_2, case_3): {guide_entry('invalid_json')['next_change']}"
    v2 = lines.index(f"## {V2}: 2/3 passed")
    assert lines[v2 + 2] == "Recommended next route: Structured output"
    assert lines[v2 + 4] == f"- missing_fields (case_3): {guide_entry('missing_fields')['next_change']}"
    assert not any(line.startswith(f"## {V3}") for line in lines)
    assert "nothing to change" not in text


def test_next_steps_when_everything_passed() -> None:
    results = [r for r in seed_results() if r.prompt_version == V3]
    text = render_next_steps(seed_analysis(results)).decode()
    assert text.splitlines()[-2:] == ["", "Every version passed every case that ran: nothing to change."]
    assert "## " not in text


def test_the_analysis_is_plain_json_for_the_summary() -> None:
    data = json.loads(json.dumps(seed_analysis().to_json()))
    assert data["ladder"] == LADDER
    assert [r["type"] for r in data["reasons"]] == ["invalid_json", "missing_fields"]
    assert data["reasons"][1]["cells"] == [[V2, "case_3", MISSING]]
    assert data["version_diffs"] == [
        {"version": V2, "previous": V1, "fixed": ["case_1", "case_2"], "broken": [], "reason_changed": ["case_3"]},
        {"version": V3, "previous": V2, "fixed": ["case_3"], "broken": [], "reason_changed": []},
    ]
    assert data["review_boundary"] == []
    assert [(s["version"], s["route"]) for s in data["next_steps"]] == [(V1, "Prompt"), (V2, "Structured output")]
    assert data["next_steps"][1]["advice"] == [
        {
            "topic": "missing_fields",
            "cases": ["case_3"],
            "next_change": guide_entry("missing_fields")["next_change"],
            "route": "Structured output",
        }
    ]
