"""Loading the cases/ fixtures, and the error each kind of broken fixture gives."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workshop.errors import FixtureError, Problem
from workshop.fixtures import load_fixtures

REPO_CASES = Path(__file__).resolve().parents[1] / "cases"


def real_fixtures():
    return load_fixtures(REPO_CASES / "cases.json", REPO_CASES / "prompt_versions.json")


@pytest.fixture
def cases_dir(tmp_path: Path) -> Path:
    """A copy of the real cases/*.json files, to break one at a time."""
    for path in REPO_CASES.glob("*.json"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def edit(directory: Path, name: str, change: Callable[[Any], None]) -> Path:
    path = directory / name
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


def load_error(directory: Path) -> FixtureError:
    with pytest.raises(FixtureError) as info:
        load_fixtures(directory / "cases.json", directory / "prompt_versions.json")
    return info.value


def only_problem(directory: Path) -> tuple[Problem, str]:
    error = load_error(directory)
    assert len(error.problems) == 1, str(error)
    return error.problems[0], str(error)


# --- the real fixtures -------------------------------------------------------


def test_real_fixtures_load():
    fixtures = real_fixtures()
    assert [case.id for case in fixtures.cases] == ["case_1", "case_2", "case_3"]
    assert [v.name for v in fixtures.versions] == ["v1_goal_only", "v2_json_contract", "v3_json_with_boundary"]
    assert fixtures.cases[1].user_input == "Convert this note into JSON fields: topic=LoRA, risk=overfitting."
    assert [case.expected_intent for case in fixtures.cases] == [
        "learning_plan",
        "structured_output",
        "solution_choice",
    ]
    assert fixtures.contract.intents == ("learning_plan", "structured_output", "solution_choice")
    assert set(fixtures.files) == {"cases", "prompts", "contract", "fake_model", "routes", "failure_guide"}
    assert fixtures.files["routes"] == REPO_CASES / "routes.json"


def test_file_hashes_change_with_the_files(cases_dir):
    fixtures = load_fixtures(cases_dir / "cases.json", cases_dir / "prompt_versions.json")
    before = fixtures.file_hashes()
    assert before == real_fixtures().file_hashes()
    edit(cases_dir, "routes.json", lambda d: d.update(default_route="Prompt first "))
    after = fixtures.file_hashes()
    assert {role for role in before if before[role] != after[role]} == {"routes"}


def test_fixture_models_are_frozen():
    case = real_fixtures().cases[0]
    with pytest.raises(Exception, match="frozen"):
        case.id = "other"


# --- each kind of broken fixture ---------------------------------------------


def test_bad_json_syntax_names_line_and_column(cases_dir):
    path = cases_dir / "cases.json"
    path.write_text('{\n  "cases": [,]\n}\n', encoding="utf-8")
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert f"{path.as_posix()}: invalid JSON at line 2, column 13: Expecting value" in message


def test_missing_field(cases_dir):
    path = edit(cases_dir, "cases.json", lambda d: d["cases"][1].pop("user_input"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "cases[1] (id 'case_2')", "user_input")
    assert f"{path.as_posix()}: cases[1] (id 'case_2'): field 'user_input': Field required" in message


def test_unknown_field(cases_dir):
    path = edit(cases_dir, "cases.json", lambda d: d["cases"][1].update(expectd_intent="learning_plan"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "cases[1] (id 'case_2')", "expectd_intent")
    assert "Extra inputs are not permitted" in message


def test_unknown_top_level_field(cases_dir):
    path = edit(cases_dir, "routes.json", lambda d: d.update(default="Prompt first"))
    problem, _ = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, None, "default")


def test_wrong_type_string_temperature(cases_dir):
    path = edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][1].update(temperature="0.2"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "versions[1] (name 'v2_json_contract')", "temperature")
    assert "valid number" in message


def test_wrong_type_boolean_confidence(cases_dir):
    path = edit(cases_dir, "fake_model.json", lambda d: d.update(confidence=True))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.field) == (path, "confidence")
    assert f"{path.as_posix()}: field 'confidence': Input should be a valid number" in message


def test_wrong_type_nested_field(cases_dir):
    edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][0]["fake_model"].update(answer="poetry"))
    problem, message = only_problem(cases_dir)
    assert problem.item == "versions[0] (name 'v1_goal_only')"
    assert problem.field == "fake_model.answer"
    assert "'prose' or 'contract_json'" in message


def test_out_of_range_values(cases_dir):
    edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][2].update(temperature=2.5, max_output_tokens=0))
    error = load_error(cases_dir)
    assert {(p.item, p.field) for p in error.problems} == {
        ("versions[2] (name 'v3_json_with_boundary')", "temperature"),
        ("versions[2] (name 'v3_json_with_boundary')", "max_output_tokens"),
    }


def test_prose_version_without_text(cases_dir):
    edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][0]["fake_model"].pop("prose_text"))
    problem, message = only_problem(cases_dir)
    assert problem.item == "versions[0] (name 'v1_goal_only')"
    assert '"prose_text" is required when "answer" is "prose"' in message


def test_empty_cases_list(cases_dir):
    path = edit(cases_dir, "cases.json", lambda d: d.update(cases=[]))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.field) == (path, "cases")
    assert "at least 1 item" in message


def test_a_case_that_is_not_an_object(cases_dir):
    edit(cases_dir, "cases.json", lambda d: d["cases"].append("case_4"))
    problem, message = only_problem(cases_dir)
    assert problem.item == "cases[3]"
    assert "valid dictionary" in message


def test_a_file_that_is_not_an_object(cases_dir):
    path = cases_dir / "routes.json"
    path.write_text("[]", encoding="utf-8")
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert "valid dictionary" in message


def test_duplicate_case_id(cases_dir):
    path = edit(cases_dir, "cases.json", lambda d: d["cases"][2].update(id="case_1"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "cases[2]", "id")
    assert "duplicate id 'case_1' (first used by item 0)" in message


def test_duplicate_version_name(cases_dir):
    path = edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][2].update(name="v2_json_contract"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "versions[2]", "name")
    assert "duplicate name 'v2_json_contract' (first used by item 1)" in message


def test_expected_intent_not_allowed_by_the_contract(cases_dir):
    path = edit(cases_dir, "cases.json", lambda d: d["cases"][1].update(expected_intent="fine_tune"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "cases[1] (id 'case_2')", "expected_intent")
    assert "'fine_tune' is not an intent the contract allows (learning_plan, structured_output, solution_choice)" in (
        message
    )


def test_fake_model_intent_not_allowed_by_the_contract(cases_dir):
    path = edit(cases_dir, "fake_model.json", lambda d: d["intent_rules"][1].update(intent="fine_tune"))
    error = load_error(cases_dir)
    found = {(p.file, p.item, p.field) for p in error.problems}
    assert (path, "intent_rules[1]", "intent") in found
    assert "'fine_tune' is not an intent the contract allows" in str(error)


def test_fake_model_intent_without_an_action(cases_dir):
    path = edit(cases_dir, "fake_model.json", lambda d: d["actions"].pop("solution_choice"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.field) == (path, "actions")
    assert "no action for intent 'solution_choice'" in message


def test_expected_route_not_in_routes_file(cases_dir):
    path = edit(cases_dir, "cases.json", lambda d: d["cases"][0].update(expected_route="Fine-tune first"))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, "cases[0] (id 'case_1')", "expected_route")
    assert "'Fine-tune first' is not a route in routes.json" in message
    assert "Prompt first" in message


@pytest.mark.parametrize("bad_id", ["a/b", "a\\b", ".hidden", "..", "", "-x", "case 1"])
def test_case_id_must_be_a_safe_identifier(cases_dir, bad_id):
    path = edit(cases_dir, "cases.json", lambda d: d["cases"][1].update(id=bad_id))
    problem, message = only_problem(cases_dir)
    assert (problem.file, problem.item, problem.field) == (path, f"cases[1] (id {bad_id!r})", "id")
    assert "should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'" in message
    assert "keyword" not in message


def test_version_name_with_a_path_separator(cases_dir):
    edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][0].update(name="v1/goal"))
    problem, _ = only_problem(cases_dir)
    assert (problem.item, problem.field) == ("versions[0] (name 'v1/goal')", "name")


def test_keyword_with_capitals(cases_dir):
    path = edit(cases_dir, "routes.json", lambda d: d["rules"][2]["keywords"].append("JSON"))
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert problem.item == "rules[2].keywords[2]"
    assert f"{path.as_posix()}: rules[2].keywords[2]: keywords must be lowercase" in message


def test_missing_companion_file(cases_dir):
    path = cases_dir / "routes.json"
    path.unlink()
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert f"{path.as_posix()}: file not found" in message


def test_companion_file_names_come_from_the_fixtures(cases_dir):
    (cases_dir / "routes.json").rename(cases_dir / "my_routes.json")
    edit(cases_dir, "cases.json", lambda d: d.update(routes="my_routes.json"))
    fixtures = load_fixtures(cases_dir / "cases.json", cases_dir / "prompt_versions.json")
    assert fixtures.files["routes"] == cases_dir / "my_routes.json"


def test_missing_main_file(cases_dir):
    path = cases_dir / "prompt_versions.json"
    path.unlink()
    problem, _ = only_problem(cases_dir)
    assert (problem.file, problem.message) == (path, "file not found")


def test_non_utf8_bytes(cases_dir):
    path = cases_dir / "cases.json"
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"LoRA", b"Lo\xe9RA"))
    problem, message = only_problem(cases_dir)
    offset = raw.index(b"LoRA") + 2
    assert problem.file == path
    assert f"not UTF-8 text (byte 0xe9 at offset {offset})" in message


@pytest.mark.parametrize(("encoding", "says"), [("utf-16", "UTF-16"), ("utf-32", "UTF-32")])
def test_utf16_or_utf32_with_a_byte_order_mark_is_named(cases_dir, encoding, says):
    path = cases_dir / "cases.json"
    path.write_bytes(path.read_text(encoding="utf-8").encode(encoding))
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert f"{path.as_posix()}: not UTF-8 text: it starts with a {says} byte order mark; save it as UTF-8" in message


def test_utf16_without_a_byte_order_mark_is_not_utf8_rather_than_bad_json(cases_dir):
    # regression: it decoded as UTF-8 with a NUL after every character, then failed as "invalid JSON at line 1"
    path = cases_dir / "routes.json"
    path.write_bytes(path.read_text(encoding="utf-8").encode("utf-16-le"))
    problem, _ = only_problem(cases_dir)
    assert problem.file == path
    assert problem.message.startswith("not UTF-8 text: NUL byte at offset 1 (UTF-16 or UTF-32 text")


@pytest.mark.parametrize("content", [b"", b"  \n\t"])
def test_empty_file(cases_dir, content):
    path = cases_dir / "fake_model.json"
    path.write_bytes(content)
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert "file is empty" in message


def test_utf8_bom_is_accepted(cases_dir):
    for name in ("cases.json", "routes.json"):
        path = cases_dir / name
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    fixtures = load_fixtures(cases_dir / "cases.json", cases_dir / "prompt_versions.json")
    assert [case.id for case in fixtures.cases] == ["case_1", "case_2", "case_3"]
    assert fixtures.routes == real_fixtures().routes


def test_duplicate_key_in_a_fixture(cases_dir):
    path = cases_dir / "routes.json"
    path.write_text('{"rules": [], "default_route": "a", "default_route": "b"}', encoding="utf-8")
    problem, message = only_problem(cases_dir)
    assert problem.file == path
    assert "duplicate key 'default_route'" in message


def test_nan_in_a_fixture(cases_dir):
    path = cases_dir / "fake_model.json"
    path.write_text(path.read_text(encoding="utf-8").replace("0.86", "NaN"), encoding="utf-8")
    _, message = only_problem(cases_dir)
    assert "NaN is not valid JSON" in message


def test_deeply_nested_fixture_is_an_error_not_a_crash(cases_dir):
    (cases_dir / "cases.json").write_text("[" * 100_000, encoding="utf-8")
    problem, _ = only_problem(cases_dir)
    assert "nested too deeply" in problem.message


def test_a_contract_hundreds_of_levels_deep_is_an_error_not_a_crash(cases_dir):
    # regression: JSON parses 500 levels, but checking it as a JSON Schema raised RecursionError (a traceback)
    deep = "{}"
    for _ in range(500):
        deep = '{"not": ' + deep + "}"
    path = edit(cases_dir, "output_contract.schema.json", lambda d: d["properties"].update(extra=json.loads(deep)))
    problem, _ = only_problem(cases_dir)
    assert problem.file == path
    assert problem.message == "invalid JSON: nested too deeply (more than 64 levels of arrays and objects)"


def test_a_value_from_a_huge_file_is_cut_short_in_the_message(cases_dir):
    # regression: a bad id of megabytes was quoted whole, making an error of megabytes
    huge = "case 2" * 500_000
    edit(cases_dir, "cases.json", lambda d: d["cases"][1].update(id=huge))
    problem, message = only_problem(cases_dir)
    assert problem.item == f"cases[1] (id {huge[:59] + '…'!r})"
    assert message.endswith(f"{problem.item}: field 'id': String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$'")
    assert len(message) < 500


def test_an_unknown_field_named_with_megabytes_is_shown_cut_in_the_middle(cases_dir):
    path = edit(cases_dir, "routes.json", lambda d: d.update({"x" * 2_000_000: 1}))
    problem, message = only_problem(cases_dir)
    assert problem.field == "x" * 2_000_000, "the problem keeps it whole"
    shown = "x" * 59 + "…" + "x" * 60
    assert message.splitlines()[1] == f"  {path.as_posix()}: field {shown!r}: Extra inputs are not permitted"


def test_an_error_with_many_problems_lists_twenty_then_counts_the_rest(cases_dir):
    # regression: thousands of bad items made an error of thousands of lines
    path = edit(cases_dir, "cases.json", lambda d: d.update(cases=[1] * 35))
    error = load_error(cases_dir)
    assert len(error.problems) == 35
    lines = str(error).splitlines()
    assert lines[0] == "invalid fixtures (35 problems):"
    assert lines[1:21] == [f"  {path.as_posix()}: cases[{i}]: {error.problems[i].message}" for i in range(20)]
    assert lines[21:] == [f"  and 15 more in {path.as_posix()}"]


def test_two_broken_files_are_both_reported(cases_dir):
    cases = edit(cases_dir, "cases.json", lambda d: d["cases"][0].update(user_input=""))
    prompts = edit(cases_dir, "prompt_versions.json", lambda d: d["versions"][1].update(temperature="0.2"))
    error = load_error(cases_dir)
    assert {p.file for p in error.problems} == {cases, prompts}
    message = str(error)
    assert message.startswith("invalid fixtures (2 problems):\n")
    assert "cases[0] (id 'case_1'): field 'user_input'" in message
    assert "versions[1] (name 'v2_json_contract'): field 'temperature'" in message


def test_broken_companion_files_are_reported_with_a_broken_main_file(cases_dir):
    cases = cases_dir / "cases.json"
    cases.write_text("{", encoding="utf-8")
    fake = cases_dir / "fake_model.json"
    fake.unlink()
    contract = edit(cases_dir, "output_contract.schema.json", lambda d: d.update(type="array"))
    error = load_error(cases_dir)
    assert [p.file for p in error.problems] == [cases, contract, fake]


def test_every_problem_of_one_file_is_reported(cases_dir):
    def change(data):
        data["cases"][0].pop("expected_intent")
        data["cases"][2]["colour"] = "red"

    edit(cases_dir, "cases.json", change)
    error = load_error(cases_dir)
    assert [(p.item, p.field) for p in error.problems] == [
        ("cases[0] (id 'case_1')", "expected_intent"),
        ("cases[2] (id 'case_3')", "colour"),
    ]


def test_cross_file_problems_are_all_reported(cases_dir):
    def change(data):
        data["cases"][0]["expected_intent"] = "chat"
        data["cases"][2]["id"] = "case_2"

    edit(cases_dir, "cases.json", change)
    error = load_error(cases_dir)
    assert [(p.item, p.field) for p in error.problems] == [
        ("cases[2]", "id"),
        ("cases[0] (id 'case_1')", "expected_intent"),
    ]
