"""JSON Schemas of the fixture files, generated from their models, for editors to validate with."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from workshop.fixtures import CaseFile, FailureGuide, FakeModelRules, PromptFile, RouteRules
from workshop.gate import Baseline
from workshop.recordings import RecordingFile

SCHEMA_MODELS: dict[str, type[BaseModel]] = {
    "cases.schema.json": CaseFile,
    "prompt_versions.schema.json": PromptFile,
    "fake_model.schema.json": FakeModelRules,
    "routes.schema.json": RouteRules,
    "failure_guide.schema.json": FailureGuide,
    "baseline.schema.json": Baseline,
    "recordings.schema.json": RecordingFile,
}


def render_schemas() -> dict[str, str]:
    """Each schema file's text, by file name."""
    rendered = {}
    for name, model in SCHEMA_MODELS.items():
        schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
        rendered[name] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return rendered


def write_schemas(directory: Path) -> list[Path]:
    """Write every schema file into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
