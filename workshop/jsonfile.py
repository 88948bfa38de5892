"""Strict reading of hand-edited JSON files: UTF-8, no duplicate keys, no NaN, bounded nesting."""

from __future__ import annotations

import codecs
import json
from pathlib import Path
from typing import Any

from workshop.errors import FixtureError, Problem

MAX_DEPTH = 64
"""Levels of arrays and objects a fixture may nest. The real fixtures use five; loading a JSON Schema
(the output contract) recurses several Python frames per level, so a deeper file could exhaust the stack."""

NESTED_TOO_DEEPLY = f"invalid JSON: nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"

# UTF-32 first: its little-endian mark starts with UTF-16's
_OTHER_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)
SAVE_AS_UTF8 = "save it as UTF-8"


def reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for `json.loads` that refuses an object with a repeated key."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                shown = key if len(key) <= 60 else key[:59] + "…"
                raise ValueError(f"duplicate key {shown!r}")
            seen.add(key)
    return obj


def reject_constant(name: str) -> Any:
    """``parse_constant`` for `json.loads`: NaN and Infinity are not JSON."""
    raise ValueError(f"{name} is not valid JSON")


def _other_encoding(raw: bytes) -> str | None:
    """Why ``raw`` looks like UTF-16 or UTF-32 rather than UTF-8, or None."""
    for bom, name in _OTHER_BOMS:
        if raw.startswith(bom):
            return f"not UTF-8 text: it starts with a {name} byte order mark; {SAVE_AS_UTF8}"
    nul = raw.find(b"\x00")
    if nul >= 0:  # never in JSON text; UTF-16 without a byte order mark is full of them
        return f"not UTF-8 text: NUL byte at offset {nul} (UTF-16 or UTF-32 text, or a binary file?); {SAVE_AS_UTF8}"
    return None


def _deeper_than(value: Any, limit: int) -> bool:
    """True if ``value`` nests arrays and objects more than ``limit`` levels deep (no recursion)."""
    level: list[tuple[Any, int]] = [(value, 1)]
    while level:
        node, depth = level.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        if depth > limit:
            return True
        level.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def read_json_file(path: Path) -> Any:
    """Read and parse a JSON file, or raise a `FixtureError` naming it and the spot.

    A UTF-8 byte order mark is accepted (editors on Windows add one); any other
    encoding, a syntax error, a duplicate key, a NaN/Infinity literal or nesting
    deeper than `MAX_DEPTH` is not.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FixtureError([Problem(path, "file not found")]) from None
    except OSError as exc:
        raise FixtureError([Problem(path, f"cannot read file: {exc.strerror}")]) from None
    other_encoding = _other_encoding(raw)
    if other_encoding:
        raise FixtureError([Problem(path, other_encoding)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); {SAVE_AS_UTF8}"
        raise FixtureError([Problem(path, message)]) from None
    if not text.strip():
        raise FixtureError([Problem(path, "file is empty; expected a JSON object")])
    try:
        data = json.loads(text, object_pairs_hook=reject_duplicate_keys, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise FixtureError([Problem(path, message)]) from None
    except ValueError as exc:  # raised by the hooks above
        raise FixtureError([Problem(path, f"invalid JSON: {exc}")]) from None
    except RecursionError:
        raise FixtureError([Problem(path, NESTED_TOO_DEEPLY)]) from None
    if _deeper_than(data, MAX_DEPTH):
        raise FixtureError([Problem(path, NESTED_TOO_DEEPLY)])
    return data
