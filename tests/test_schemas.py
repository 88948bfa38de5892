"""The committed JSON Schemas of the fixture files: current, and matching the fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from workshop.recordings import Recording, RecordingStore
from workshop.schemas import SCHEMA_MODELS, render_schemas, write_schemas

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_DIR = ROOT / "cases" / "schemas"
# recordings are many files (one per provider and model), checked on their own below
FIXTURE_FOR_SCHEMA = {
    name: name.replace(".schema.json", ".json") for name in SCHEMA_MODELS if name != "recordings.schema.json"
}


def stale_schemas(directory: Path) -> list[str]:
    """Schema files in ``directory`` that differ from (or are missing against) the models."""
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def stale_message(stale: list[str]) -> str:
    return f"stale fixture schemas {stale}: run `python -m workshop schemas` to regenerate cases/schemas/"


def test_committed_schemas_are_current():
    stale = stale_schemas(SCHEMA_DIR)
    assert not stale, stale_message(stale)
    assert sorted(p.name for p in SCHEMA_DIR.glob("*.json")) == sorted(render_schemas())


def test_a_stale_schema_is_reported_with_the_command_to_fix_it(tmp_path):
    write_schemas(tmp_path)
    assert stale_schemas(tmp_path) == []
    path = tmp_path / "routes.schema.json"
    path.write_text(path.read_text(encoding="utf-8").replace('"minItems": 1', '"minItems": 2'), encoding="utf-8")
    (tmp_path / "cases.schema.json").unlink()
    stale = stale_schemas(tmp_path)
    assert stale == ["cases.schema.json", "routes.schema.json"]
    assert "run `python -m workshop schemas`" in stale_message(stale)


def committed_schema(name: str) -> dict:
    path = SCHEMA_DIR / name
    assert path.is_file(), stale_message([name])
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("schema_name", sorted(SCHEMA_MODELS))
def test_each_schema_is_a_valid_json_schema(schema_name):
    jsonschema.Draft202012Validator.check_schema(committed_schema(schema_name))


@pytest.mark.parametrize("schema_name", sorted(FIXTURE_FOR_SCHEMA))
def test_each_real_fixture_validates_against_its_committed_schema(schema_name):
    schema = committed_schema(schema_name)
    fixture = json.loads((ROOT / "cases" / FIXTURE_FOR_SCHEMA[schema_name]).read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(fixture)
    assert fixture["$schema"] == f"schemas/{schema_name}"


def test_the_contract_is_a_valid_json_schema():
    contract = json.loads((ROOT / "cases" / "output_contract.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(contract)


@pytest.mark.parametrize(
    ("schema_name", "change"),
    [
        ("prompt_versions.schema.json", lambda d: d["versions"][0].update(temperature="0.2")),
        ("cases.schema.json", lambda d: d["cases"][0].update(id="a/b")),
        ("cases.schema.json", lambda d: d["cases"][0].update(colour="red")),
        ("routes.schema.json", lambda d: d["rules"][0]["keywords"].append("Latest")),
        ("fake_model.schema.json", lambda d: d.update(confidence=True)),
    ],
)
def test_schemas_reject_what_the_loader_rejects(schema_name, change):
    schema = committed_schema(schema_name)
    fixture = json.loads((ROOT / "cases" / FIXTURE_FOR_SCHEMA[schema_name]).read_text(encoding="utf-8"))
    change(fixture)
    assert not jsonschema.Draft202012Validator(schema).is_valid(fixture)


def test_written_recordings_validate_against_the_committed_schema(tmp_path):
    store = RecordingStore(tmp_path / "recordings")
    recording = Recording(
        key="0" * 64, prompt_version="v3", case_id="case_1", trial=0, output_text="{}", model="m-1", input_tokens=3
    )
    store.put("openai", "gpt/5.5", recording)
    (path,) = store.save()
    assert path.name == "openai--gpt_5.5.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(committed_schema("recordings.schema.json")).validate(document)
    assert document["$schema"] == "../schemas/recordings.schema.json"
    for committed in sorted((ROOT / "cases" / "recordings").glob("*.json")):
        jsonschema.Draft202012Validator(committed_schema("recordings.schema.json")).validate(
            json.loads(committed.read_text(encoding="utf-8"))
        )
