"""Strict reading of hand-edited JSON files: UTF-8, no duplicate keys, no NaN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from workshop.errors import FixtureError, Problem


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


def read_json_file(path: Path) -> Any:
    """Read and parse a JSON file, or raise a `FixtureError` naming it and the spot.

    A UTF-8 byte order mark is accepted (editors on Windows add one); any other
    encoding, a syntax error, a duplicate key or a NaN/Infinity literal is not.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FixtureError([Problem(path, "file not found")]) from None
    except OSError as exc:
        raise FixtureError([Problem(path, f"cannot read file: {exc.strerror}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        message = f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
        raise FixtureError([Problem(path, message)]) from None
    if not text.strip():
        raise FixtureError([Problem(path, "file is empty; expected a JSON object")])
    try:
        return json.loads(text, object_pairs_hook=reject_duplicate_keys, parse_constant=reject_constant)
    except json.JSONDecodeError as exc:
        message = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        raise FixtureError([Problem(path, message)]) from None
    except ValueError as exc:  # raised by the hooks above
        raise FixtureError([Problem(path, f"invalid JSON: {exc}")]) from None
    except RecursionError:
        raise FixtureError([Problem(path, "invalid JSON: nested too deeply")]) from None
