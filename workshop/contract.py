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
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from workshop.errors import FixtureError, Problem
from workshop.jsonfile import read_json_file, reject_constant, reject_duplicate_keys
from workshop.text import one_line, shorten

DEFAULT_MAX_BYTES = 64 * 1024
DEFAULT_MAX_DEPTH = 64
REASON_VALUE_LIMIT = 200
REASONS_KEYWORD = "x-reasons"

# Strings and brackets of a JSON text; used only to measure nesting without recursion.
_NESTING_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


class Verdict(NamedTuple):
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
    # property -> a validator of its subschema, when the root is simple enough to check per property
    _property_validators: Mapping[str, Any] | None = field(init=False, repr=False, compare=False)
    _memo: dict[tuple[Any, ...], bool] = field(init=False, repr=False, compare=False)
    _required: frozenset[str] = field(init=False, repr=False, compare=False)
    # properties whose subschema says nothing but their type: a str, bool or null value's verdict is its type's
    _type_only: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        properties = self.schema.get("properties", {})
        validator = Draft202012Validator(self.schema)
        object.__setattr__(self, "validator", validator)
        simple_root = all(key in _PER_PROPERTY_ROOT_KEYWORDS or key.startswith("x-") for key in self.schema)
        by_property = (
            {name: validator.evolve(schema=spec) for name, spec in properties.items()} if simple_root else None
        )
        object.__setattr__(self, "_property_validators", by_property)
        type_only = {
            name
            for name, spec in properties.items()
            if isinstance(spec, dict) and all(key in _ANNOTATIONS or key.startswith("x-") for key in spec)
        }
        object.__setattr__(self, "_type_only", frozenset(type_only))
        object.__setattr__(self, "_memo", {})
        object.__setattr__(self, "required", tuple(self.schema.get("required", ())))
        object.__setattr__(self, "_required", frozenset(self.required))
        object.__setattr__(self, "intents", tuple(properties.get("intent", {}).get("enum", ())))
        object.__setattr__(
            self,
            "reasons",
            {
                name: dict(spec.get(REASONS_KEYWORD, {})) if isinstance(spec, dict) else {}
                for name, spec in properties.items()
            },
        )

    def conforms(self, data: dict[str, Any]) -> bool:
        """True if ``data`` (a parsed object) meets the contract; jsonschema decides.

        Where the root only says ``type``, ``required`` and ``properties``, an object is
        valid exactly when its required fields are there and each property's value is valid
        under that property's subschema. Those checks use validators compiled once, and a
        scalar value's verdict is remembered (by property, type and value: answers repeat the
        same intents, flags and confidences), which makes validation about ten times cheaper
        than walking the whole schema for every answer.
        """
        validators = self._property_validators
        if validators is None:
            return bool(self.validator.is_valid(data))
        if not self._required.issubset(data):
            return False
        memo = self._memo
        for name, value in data.items():
            check = validators.get(name)
            if check is None:
                continue  # the root sets no rule for other properties
            kind = type(value)
            if kind not in _SCALARS:
                if not check.is_valid(value):
                    return False
                continue
            key = (name, kind) if kind in _BY_TYPE and name in self._type_only else (name, kind, value)
            verdict = memo.get(key)
            if verdict is None:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                verdict = memo[key] = bool(check.is_valid(value))
            if not verdict:
                return False
        return True


# Root keywords `Contract.conforms` can check property by property; any other sends it the long way.
_PER_PROPERTY_ROOT_KEYWORDS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "type", "required", "properties"}
)
_SCALARS = frozenset({str, int, float, bool, type(None)})
# for these Python types the JSON type is the whole story (unlike int/float: 1.0 is an "integer")
_BY_TYPE = frozenset({str, bool, type(None)})
_ANNOTATIONS = frozenset({"type", "title", "description", "$comment", "examples", "default"})
_MEMO_LIMIT = 65_536


def contract_problems(schema: Any, path: Path) -> list[Problem]:
    """Everything that keeps ``schema`` from serving as an output contract."""
    if not isinstance(schema, dict):
        return [Problem(path, "the contract must be a JSON object (a JSON Schema)")]
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return [Problem(path, f"not a valid JSON Schema at {exc.json_path}: {exc.message}")]
    problems = _reference_problems(schema, path)
    if problems:
        return problems
    validator = Draft202012Validator(schema)
    properties = schema.get("properties")
    probes: list[Any] = [{}, [], "", 0, None]
    if isinstance(properties, dict):
        probes += [dict.fromkeys(properties, value) for value in ("", 0, None, True, [], {})]
    try:  # a reference cycle that never reaches a value ("$ref": "#") would recurse on every answer
        for probe in probes:
            for _ in validator.iter_errors(probe):  # every error: a lazy check stops before the cycle
                pass
    except RecursionError:
        return [Problem(path, "a $ref refers back to itself without end (a reference cycle)")]
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


def _references(schema: Any) -> list[tuple[str, str]]:
    """(JSON path, reference) of every ``$ref`` and ``$dynamicRef`` in the schema, without recursion."""
    found, pending = [], [("", schema)]
    while pending:
        where, node = pending.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("$ref", "$dynamicRef") and isinstance(value, str):
                    found.append((f"{where}.{key}".lstrip("."), value))
                else:
                    pending.append((f"{where}.{key}", value))
        elif isinstance(node, list):
            pending.extend((f"{where}[{index}]", value) for index, value in enumerate(node))
    return sorted(found)


def _reference_problems(schema: dict[str, Any], path: Path) -> list[Problem]:
    """References the validator could not follow: they would fail on every answer, not here."""
    resolver = Registry().with_resource("", Resource.from_contents(schema, DRAFT202012)).resolver()
    problems = []
    for where, reference in _references(schema):
        try:
            resolver.lookup(reference)
        except Unresolvable:
            problems.append(
                Problem(
                    path,
                    f"$ref {shorten(reference, 80)!r} cannot be followed (only references within this file work)",
                    field=where,
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
    if raw.startswith("\ufeff"):  # as json.loads says it; the decoder alone would say "Expecting value"
        raise ValueError("Unexpected UTF-8 BOM (decode using utf-8-sig)")
    try:
        return _STRICT_DECODER.decode(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(exc.msg) from None
    except RecursionError:  # the depth check above should make this unreachable
        raise ValueError(f"nested deeper than {max_depth} levels") from None


# one decoder for every output: json.loads with hooks would build a new one per call
_STRICT_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_constant=reject_constant, object_pairs_hook=reject_duplicate_keys
)


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
    try:
        if contract.conforms(data):
            return Verdict(True, "ok", data)
        errors = list(contract.validator.iter_errors(data))
    except (RecursionError, Unresolvable):  # a contract cycle only some answers reach: refused, never raised
        return Verdict(False, "contract_error: the output contract cannot be applied to this answer", data)
    if not errors:  # conforms() and the full walk always agree; this keeps the verdict safe if not
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
