"""The output contract and the validator that turns any model output into a verdict.

The contract is a JSON Schema (draft 2020-12). Validation is done by `jsonschema`;
its errors are mapped to the seed's reasons by the contract's own ``x-reasons``
annotations, so the reason names live in the fixture next to the rule they explain.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from workshop.errors import FixtureError, Problem
from workshop.jsonfile import read_json_file, reject_constant, reject_duplicate_keys
from workshop.text import one_line, shorten

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 64
REASON_VALUE_LIMIT = 200
REASONS_KEYWORD = "x-reasons"

# Strings and brackets of a JSON text; used only to measure nesting without recursion.
_NESTING_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the validator decided about one raw output."""

    ok: bool
    reason: str
    data: Any = None


@dataclass(frozen=True)
class Contract:
    """A compiled output contract: the schema, its required fields and reason names."""

    schema: Mapping[str, Any]
    path: Path | None = None
    validator: Draft202012Validator = field(init=False, repr=False, compare=False)
    required: tuple[str, ...] = field(init=False)
    intents: tuple[str, ...] = field(init=False)
    # property -> (jsonschema keyword -> reason template), in contract order
    reasons: Mapping[str, Mapping[str, str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        properties = self.schema.get("properties", {})
        object.__setattr__(self, "validator", Draft202012Validator(self.schema))
        object.__setattr__(self, "required", tuple(self.schema.get("required", ())))
        object.__setattr__(self, "intents", tuple(properties.get("intent", {}).get("enum", ())))
        object.__setattr__(
            self,
            "reasons",
            {
                name: dict(spec.get(REASONS_KEYWORD, {})) if isinstance(spec, dict) else {}
                for name, spec in properties.items()
            },
        )


def contract_problems(schema: Any, path: Path) -> list[Problem]:
    """Everything that keeps ``schema`` from serving as an output contract."""
    if not isinstance(schema, dict):
        return [Problem(path, "the contract must be a JSON object (a JSON Schema)")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [Problem(path, f"not a valid JSON Schema at {exc.json_path}: {exc.message}")]
    problems = []
    if schema.get("type") != "object":
        problems.append(Problem(path, 'the contract must describe an object ("type": "object")', field="type"))
    intent = schema.get("properties", {}).get("intent", {})
    enum = intent.get("enum") if isinstance(intent, dict) else None
    if not enum or not all(isinstance(value, str) for value in enum):
        problems.append(
            Problem(path, "must list the allowed intents as strings in an enum", field="properties.intent.enum")
        )
    for name, spec in schema.get("properties", {}).items():
        reasons = spec.get(REASONS_KEYWORD, {}) if isinstance(spec, dict) else {}
        if not isinstance(reasons, dict) or not all(isinstance(v, str) for v in reasons.values()):
            problems.append(
                Problem(
                    path, "must map schema keywords to reason strings", field=f"properties.{name}.{REASONS_KEYWORD}"
                )
            )
    return problems


def load_contract(path: Path) -> Contract:
    """Load and check an output contract file."""
    schema = read_json_file(path)
    problems = contract_problems(schema, path)
    if problems:
        raise FixtureError(problems)
    return Contract(schema=schema, path=path)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {shorten(text, 40)} is out of range")
    return value


def _nesting_depth(raw: str) -> int:
    depth = deepest = 0
    for match in _NESTING_TOKENS.finditer(raw):
        token = match.group()
        if token in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif token in "]}":
            depth -= 1
    return deepest


def parse_output(raw: str, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse a model output as strict JSON; raise `ValueError` with a short message if it is not.

    Strict means: no NaN/Infinity, no number that overflows a float, no duplicate
    keys, at most ``max_bytes`` of UTF-8 and ``max_depth`` levels of nesting.
    """
    if len(raw) * 4 > max_bytes:  # cheap bound first: a character is at most 4 bytes
        size = len(raw.encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise ValueError(f"output is {size} bytes, over the {max_bytes}-byte limit")
    if raw.count("[") + raw.count("{") > max_depth and _nesting_depth(raw) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    try:
        return json.loads(
            raw,
            parse_float=_finite_float,
            parse_constant=reject_constant,
            object_pairs_hook=reject_duplicate_keys,
        )
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    except RecursionError:  # the depth check above should make this unreachable
        raise ValueError(f"nested deeper than {max_depth} levels") from None


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


def validate_output(
    raw: str,
    contract: Contract,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> Verdict:
    """Validate a raw model output against the contract. Never raises on any string.

    Reasons, first match wins: ``invalid_json: <message>``, ``not_an_object: got <type>``,
    ``missing_fields: [...]`` (contract order), then each property's ``x-reasons``
    in contract order (``bad_intent: <value>``, ``confidence_not_number``, ...),
    then ``schema_violation: <json path>: <message>`` for anything else.
    """
    try:
        data = parse_output(raw, max_bytes, max_depth)
    except ValueError as exc:
        return Verdict(False, f"invalid_json: {exc}")
    if not isinstance(data, dict):
        return Verdict(False, f"not_an_object: got {_json_type(data)}", data)
    errors = list(contract.validator.iter_errors(data))
    if not errors:
        return Verdict(True, "ok", data)
    missing = [name for name in contract.required if name not in data]
    if missing:
        return Verdict(False, f"missing_fields: {missing}", data)
    failed = {(error.path[0], error.validator) for error in errors if len(error.path) == 1}
    for name, reasons in contract.reasons.items():
        for keyword, template in reasons.items():
            if (name, keyword) in failed:
                value = one_line(shorten(str(data[name]), REASON_VALUE_LIMIT))
                return Verdict(False, template.replace("{value}", value), data)
    first = errors[0]
    return Verdict(
        False,
        f"schema_violation: {one_line(first.json_path)}: {one_line(shorten(first.message, REASON_VALUE_LIMIT))}",
        data,
    )
