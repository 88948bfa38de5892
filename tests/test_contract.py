"""The output contract and validate_output: the seed's reasons, and the seed's holes closed."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from workshop.contract import DEFAULT_MAX_BYTES, DEFAULT_MAX_DEPTH, load_contract, parse_output, validate_output
from workshop.errors import FixtureError

CONTRACT_PATH = Path(__file__).resolve().parents[1] / "cases" / "output_contract.schema.json"
CONTRACT = load_contract(CONTRACT_PATH)
SCHEMA = json.loads(CONTRACT_PATH.read_text(encoding="utf-8"))
FIELDS = ["id", "intent", "action", "confidence", "needs_human_review"]
REASON_PREFIXES = (
    "ok",
    "invalid_json: ",
    "not_an_object: got ",
    "missing_fields: ",
    "bad_intent: ",
    "confidence_not_number",
    "confidence_out_of_range",
    "needs_human_review_not_boolean",
    "schema_violation: ",
)
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()))
MISSING = object()


def good(**changes):
    data = {
        "id": "case_1",
        "intent": "learning_plan",
        "action": "Start with tokens.",
        "confidence": 0.86,
        "needs_human_review": False,
    }
    data.update(changes)
    return {key: value for key, value in data.items() if value is not MISSING}


def reason(data) -> str:
    raw = data if isinstance(data, str) else json.dumps(data)
    return validate_output(raw, CONTRACT).reason


# --- the seed's reasons ------------------------------------------------------


def test_a_good_answer_is_ok_and_returns_the_data():
    verdict = validate_output(json.dumps(good()), CONTRACT)
    assert verdict.ok
    assert verdict.reason == "ok"
    assert verdict.data == good()


def test_prose_is_invalid_json_with_the_seeds_message():
    verdict = validate_output("Here is a helpful answer, but it is not machine-readable.", CONTRACT)
    assert (verdict.ok, verdict.reason, verdict.data) == (False, "invalid_json: Expecting value", None)


def test_missing_fields_are_listed_in_contract_order():
    data = {"needs_human_review": False, "id": "case_3", "intent": "fine_tune", "action": "try fine-tuning"}
    del data["needs_human_review"]
    assert reason(data) == "missing_fields: ['confidence', 'needs_human_review']"
    assert reason({}) == f"missing_fields: {FIELDS}"
    reversed_order = {key: good()[key] for key in ["needs_human_review", "action"]}
    assert reason(reversed_order) == "missing_fields: ['id', 'intent', 'confidence']"


def test_the_seeds_v2_case_3_output():
    raw = '{"id": "case_3", "intent": "fine_tune", "action": "try fine-tuning"}'
    verdict = validate_output(raw, CONTRACT)
    assert not verdict.ok
    assert verdict.reason == "missing_fields: ['confidence', 'needs_human_review']"
    assert verdict.data == json.loads(raw)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"intent": "fine_tune"}, "bad_intent: fine_tune"),
        ({"intent": 5}, "bad_intent: 5"),
        ({"confidence": "high"}, "confidence_not_number"),
        ({"confidence": None}, "confidence_not_number"),
        ({"confidence": 1.5}, "confidence_out_of_range"),
        ({"confidence": -0.01}, "confidence_out_of_range"),
        ({"needs_human_review": "no"}, "needs_human_review_not_boolean"),
        ({"needs_human_review": 0}, "needs_human_review_not_boolean"),
    ],
)
def test_each_seed_reason(changes, expected):
    verdict = validate_output(json.dumps(good(**changes)), CONTRACT)
    assert not verdict.ok
    assert verdict.reason == expected
    assert verdict.data == good(**changes)


@pytest.mark.parametrize("confidence", [0, 1, 0.0, 1.0, 0.5])
def test_confidence_bounds_are_inclusive(confidence):
    assert reason(good(confidence=confidence)) == "ok"


def test_confidence_true_is_not_a_number():
    # the seed's isinstance(True, (int, float)) let a boolean through
    assert reason(good(confidence=True)) == "confidence_not_number"
    assert reason(good(confidence=False)) == "confidence_not_number"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        # missing beats everything after it
        (
            {"intent": "fine_tune", "confidence": "x", "needs_human_review": MISSING},
            "missing_fields: ['needs_human_review']",
        ),
        ({"id": MISSING, "intent": 5}, "missing_fields: ['id']"),
        # bad intent beats confidence and review
        ({"intent": "fine_tune", "confidence": "x", "needs_human_review": "no"}, "bad_intent: fine_tune"),
        ({"intent": "fine_tune", "confidence": 7}, "bad_intent: fine_tune"),
        # confidence type beats review
        ({"confidence": "x", "needs_human_review": "no"}, "confidence_not_number"),
        # confidence range beats review
        ({"confidence": 7, "needs_human_review": "no"}, "confidence_out_of_range"),
        # an x-reason beats a schema violation of an earlier field
        ({"id": 5, "intent": "fine_tune"}, "bad_intent: fine_tune"),
        ({"action": [], "needs_human_review": "no"}, "needs_human_review_not_boolean"),
    ],
)
def test_reason_priority_when_several_fields_are_wrong(changes, expected):
    assert reason(good(**changes)) == expected


# --- the seed's holes, closed ------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "got"),
    [
        ("[1, 2]", "array"),
        ('"text"', "string"),
        ("3", "number"),
        ("0.5", "number"),
        ("true", "boolean"),
        ("null", "null"),
    ],
)
def test_json_that_is_not_an_object(raw, got):
    verdict = validate_output(raw, CONTRACT)
    assert not verdict.ok
    assert verdict.reason == f"not_an_object: got {got}"
    assert verdict.data == json.loads(raw)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_invalid_json(literal):
    raw = json.dumps(good()).replace("0.86", literal)
    assert literal in raw
    verdict = validate_output(raw, CONTRACT)
    assert not verdict.ok
    assert verdict.reason.startswith("invalid_json: ")
    assert literal in verdict.reason


def test_duplicate_keys_are_invalid_json():
    raw = json.dumps(good())[:-1] + ', "intent": "fine_tune"}'
    assert validate_output(raw, CONTRACT).reason == "invalid_json: duplicate key 'intent'"


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_a_number_that_overflows_a_float_is_invalid_json(number):
    assert validate_output(number, CONTRACT).reason == f"invalid_json: number {number} is out of range"
    raw = json.dumps(good()).replace("0.86", number)
    assert validate_output(raw, CONTRACT).reason.startswith("invalid_json: number")


def test_an_integer_too_long_to_convert_is_invalid_json_not_an_exception():
    verdict = validate_output("1" * 5000, CONTRACT)
    assert not verdict.ok
    assert verdict.reason.startswith("invalid_json: ")


def test_output_over_64_kib_is_invalid_json_naming_the_limit():
    data = good(action="x" * DEFAULT_MAX_BYTES)
    verdict = validate_output(json.dumps(data), CONTRACT)
    assert not verdict.ok
    assert verdict.reason.startswith("invalid_json: ")
    assert "65536-byte limit" in verdict.reason


def test_the_size_limit_counts_utf8_bytes_not_characters():
    filler = "é" * 20_000  # 40,000 bytes of UTF-8 in 20,000 characters
    assert validate_output(json.dumps(good(action=filler), ensure_ascii=False), CONTRACT).ok
    filler = "é" * 33_000  # 66,000 bytes, fewer characters than the limit
    verdict = validate_output(json.dumps(good(action=filler), ensure_ascii=False), CONTRACT)
    assert "byte limit" in verdict.reason


def test_output_just_under_the_limit_is_parsed():
    raw = json.dumps(good())
    raw = raw[:-1] + ', "pad": "' + "x" * (DEFAULT_MAX_BYTES - len(raw) - 11) + '"}'
    assert len(raw.encode()) == DEFAULT_MAX_BYTES
    assert validate_output(raw, CONTRACT).ok


@pytest.mark.parametrize("opener", ["[", "{", '{"a":'])
def test_deep_nesting_is_invalid_json_never_a_recursion_error(opener):
    raw = opener * 100_000
    verdict = validate_output(raw, CONTRACT, max_bytes=len(raw) * 2)
    assert verdict.reason == f"invalid_json: nested deeper than {DEFAULT_MAX_DEPTH} levels"
    # under the default size limit, the size check may fire first; either way it is invalid_json
    assert validate_output(raw, CONTRACT).reason.startswith("invalid_json: ")


def test_nesting_just_under_64_kib_is_caught_by_the_depth_check():
    assert validate_output("[" * 30_000, CONTRACT).reason == "invalid_json: nested deeper than 64 levels"


def test_nesting_up_to_the_limit_is_parsed():
    raw = "[" * DEFAULT_MAX_DEPTH + "]" * DEFAULT_MAX_DEPTH
    assert validate_output(raw, CONTRACT).reason == "not_an_object: got array"
    raw = "[" * (DEFAULT_MAX_DEPTH + 1) + "]" * (DEFAULT_MAX_DEPTH + 1)
    assert validate_output(raw, CONTRACT).reason == "invalid_json: nested deeper than 64 levels"


def test_brackets_inside_strings_do_not_count_as_nesting():
    text = "[{" * 500 + '\\"' + "]}" * 3
    verdict = validate_output(json.dumps(good(action=text)), CONTRACT)
    assert verdict.ok
    assert verdict.data["action"] == text


def test_parse_output_raises_value_error():
    with pytest.raises(ValueError, match="Expecting value"):
        parse_output("nope")
    assert parse_output('{"a": [1, 2.5]}') == {"a": [1, 2.5]}


def test_a_wrong_type_without_an_x_reason_is_a_schema_violation():
    assert reason(good(id=5)) == "schema_violation: $.id: 5 is not of type 'string'"
    assert reason(good(action=None)) == "schema_violation: $.action: None is not of type 'string'"


def test_extra_properties_are_allowed_as_in_the_seed():
    verdict = validate_output(json.dumps(good(note="extra", nested={"a": [1]})), CONTRACT)
    assert verdict.ok
    assert verdict.data["note"] == "extra"


def test_a_long_bad_value_is_shortened_in_the_reason():
    verdict = validate_output(json.dumps(good(intent="z" * 5000)), CONTRACT)
    assert verdict.reason.startswith("bad_intent: zzz")
    assert len(verdict.reason) < 300
    assert verdict.reason.endswith("…")


def test_lone_surrogates_do_not_break_validation():
    assert validate_output("\ud800", CONTRACT).reason == "invalid_json: Expecting value"
    verdict = validate_output(json.dumps(good(action="\ud800")), CONTRACT)
    assert verdict.ok
    assert verdict.data["action"] == "\ud800"


# --- properties --------------------------------------------------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | ANY_TEXT
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(ANY_TEXT, children, max_size=4),
    max_leaves=20,
)
FIELD_VALUES = st.one_of(
    JSON_VALUES,
    st.sampled_from(["learning_plan", "structured_output", "solution_choice", "fine_tune"]),
    st.floats(min_value=-0.5, max_value=1.5),
    st.integers(-1, 2),
)
CONTRACT_DICTS = st.dictionaries(st.sampled_from([*FIELDS, "extra"]), FIELD_VALUES)


def check_verdict(raw: str) -> None:
    verdict = validate_output(raw, CONTRACT)
    assert verdict.reason.startswith(REASON_PREFIXES)
    if verdict.reason.startswith("invalid_json: "):
        assert not verdict.ok
        return
    parsed = json.loads(raw)
    assert verdict.data == parsed
    is_valid = isinstance(parsed, dict) and jsonschema.Draft202012Validator(SCHEMA).is_valid(parsed)
    assert verdict.ok is is_valid
    assert (verdict.reason == "ok") is is_valid


@given(ANY_TEXT)
@example("")
@example("{}")
@example("[" * 70)
def test_never_raises_for_any_text(raw):
    verdict = validate_output(raw, CONTRACT)
    assert verdict.reason.startswith(REASON_PREFIXES)
    assert verdict.ok is (verdict.reason == "ok")


@given(JSON_VALUES)
def test_never_raises_for_any_json_value(value):
    check_verdict(json.dumps(value))
    check_verdict(json.dumps(value, ensure_ascii=False, indent=1))


@given(CONTRACT_DICTS)
@example(dict(zip(FIELDS, ["a", "learning_plan", "b", True, False], strict=True)))
def test_verdict_is_ok_iff_jsonschema_says_the_object_is_valid(data):
    check_verdict(json.dumps(data))


@given(st.fixed_dictionaries({name: FIELD_VALUES for name in FIELDS}))
def test_complete_objects_are_judged_by_their_first_failing_field(data):
    verdict = validate_output(json.dumps(data), CONTRACT)
    assert not verdict.reason.startswith("missing_fields")
    check_verdict(json.dumps(data))


# --- loading the contract ----------------------------------------------------


def write_contract(tmp_path: Path, schema) -> Path:
    path = tmp_path / "contract.schema.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def test_the_real_contract_loads():
    assert CONTRACT.required == tuple(FIELDS)
    assert CONTRACT.intents == ("learning_plan", "structured_output", "solution_choice")
    assert CONTRACT.reasons["confidence"]["minimum"] == "confidence_out_of_range"
    assert CONTRACT.path == CONTRACT_PATH


def broken(mutate):
    schema = json.loads(json.dumps(SCHEMA))
    mutate(schema)
    return schema


@pytest.mark.parametrize(
    ("schema", "field", "says"),
    [
        ([SCHEMA], None, "must be a JSON object"),
        ({"type": 5}, None, "not a valid JSON Schema"),
        (broken(lambda s: s.update(type="array")), "type", '"type": "object"'),
        (broken(lambda s: s["properties"]["intent"].pop("enum")), "properties.intent.enum", "allowed intents"),
        (broken(lambda s: s["properties"].pop("intent")), "properties.intent.enum", "allowed intents"),
        (broken(lambda s: s["properties"]["intent"].update(enum=[1, 2])), "properties.intent.enum", "as strings"),
        (
            broken(lambda s: s["properties"]["confidence"].update({"x-reasons": {"type": 5}})),
            "properties.confidence.x-reasons",
            "reason strings",
        ),
        (
            broken(lambda s: s["properties"]["confidence"].update({"x-reasons": ["type"]})),
            "properties.confidence.x-reasons",
            "reason strings",
        ),
    ],
)
def test_contract_loading_errors_name_the_file(tmp_path, schema, field, says):
    path = write_contract(tmp_path, schema)
    with pytest.raises(FixtureError) as info:
        load_contract(path)
    message = str(info.value)
    assert path.as_posix() in message
    assert says in message
    if field:
        assert f"field {field!r}" in message
    assert all(problem.file == path for problem in info.value.problems)


def test_contract_file_with_bad_json_names_the_file(tmp_path):
    path = tmp_path / "contract.schema.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(FixtureError, match="line 1, column 2") as info:
        load_contract(path)
    assert path.as_posix() in str(info.value)


def test_a_boolean_property_schema_is_a_valid_contract(tmp_path):
    # JSON Schema allows `true`/`false` as a property's schema
    path = write_contract(tmp_path, broken(lambda s: s["properties"].update(extra=True, forbidden=False)))
    contract = load_contract(path)
    assert validate_output(json.dumps(good(extra=[1])), contract).ok
    verdict = validate_output(json.dumps(good(forbidden=1)), contract)
    assert verdict.reason.startswith("schema_violation: ")
    assert "False schema does not allow 1" in verdict.reason


def test_reasons_come_from_the_contract_file(tmp_path):
    schema = broken(lambda s: s["properties"]["intent"]["x-reasons"].update(enum="unknown_intent: {value}!"))
    contract = load_contract(write_contract(tmp_path, schema))
    assert validate_output(json.dumps(good(intent="chat")), contract).reason == "unknown_intent: chat!"


# --- the per-property fast path agrees with the full walk ---------------------

JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
FIELD_VALUES = st.dictionaries(
    st.sampled_from([*FIELDS, "extra"]),
    JSON_SCALARS | st.lists(JSON_SCALARS, max_size=3) | st.sampled_from(["learning_plan", "solution_choice", 0.5]),
)


@given(FIELD_VALUES)
def test_conforms_agrees_with_jsonschema_on_the_real_contract(data):
    assert CONTRACT.conforms(data) is bool(CONTRACT.validator.is_valid(data))
    assert CONTRACT.conforms(data) is bool(CONTRACT.validator.is_valid(data)), "memoised answer is the same"


@given(FIELD_VALUES)
def test_a_root_with_other_keywords_takes_the_full_walk(data):
    from workshop.contract import Contract

    closed = Contract({**SCHEMA, "additionalProperties": False})
    assert closed._property_validators is None
    assert closed.conforms(data) is bool(closed.validator.is_valid(data))


# --- references ---------------------------------------------------------------


def _with_ref(tmp_path: Path, **properties: object) -> Path:
    schema = json.loads(json.dumps(SCHEMA))
    schema["properties"].update(properties)
    path = tmp_path / "contract.json"
    path.write_text(json.dumps(schema), encoding="utf-8")
    return path


def test_a_ref_within_the_file_works(tmp_path: Path) -> None:
    path = _with_ref(tmp_path, action={"$ref": "#/$defs/action"})
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["$defs"] = {"action": {"type": "string", "minLength": 1}}
    path.write_text(json.dumps(schema), encoding="utf-8")
    contract = load_contract(path)
    answer = {"id": "c", "intent": "learning_plan", "action": "", "confidence": 0.5, "needs_human_review": False}
    assert validate_output(json.dumps(answer), contract).reason.startswith("schema_violation: ")


@pytest.mark.parametrize("ref", ["#/nowhere", "https://example.com/other.schema.json", "other.json#/x"])
def test_a_ref_that_cannot_be_followed_is_refused_when_the_contract_loads(tmp_path: Path, ref: str) -> None:
    path = _with_ref(tmp_path, action={"$ref": ref})
    with pytest.raises(FixtureError, match=r"field 'properties\.action\.\$ref'.*cannot be followed"):
        load_contract(path)


def test_a_reference_cycle_is_refused_when_the_contract_loads(tmp_path: Path) -> None:
    path = _with_ref(tmp_path, action={"$ref": "#/properties/action"})
    with pytest.raises(FixtureError, match="refers back to itself without end"):
        load_contract(path)


def test_a_cycle_only_some_answers_reach_is_a_verdict_not_a_crash(tmp_path: Path) -> None:
    # the probes at load time give `action` no "deep" key, so this cycle shows only on such an answer
    deep = {"$ref": "#/properties/action/properties/deep"}
    path = _with_ref(tmp_path, action={"type": ["string", "object"], "properties": {"deep": deep}})
    contract = load_contract(path)
    answer = {
        "id": "c",
        "intent": "learning_plan",
        "action": {"deep": 1},
        "confidence": 0.5,
        "needs_human_review": False,
    }
    verdict = validate_output(json.dumps(answer), contract)
    assert (verdict.ok, verdict.reason) == (
        False,
        "contract_error: the output contract cannot be applied to this answer",
    )
