"""``summary.json``: the run's results as data, for CI and for comparing runs."""

from __future__ import annotations

import io
import json
import platform
import secrets
import subprocess
import sys
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workshop.files import file_sha256
from workshop.fixtures import Fixtures

if TYPE_CHECKING:
    from workshop.suite import RunReport

SUMMARY_FORMAT = 2
"""2: cells hold their exact raw output and review flag, and the selection its shard (what a merge needs)."""


def _git_commit(directory: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def package_version(package: str) -> str | None:
    """The installed version of ``package``, or None."""
    try:
        return importlib_metadata.version(package)
    except importlib_metadata.PackageNotFoundError:
        return None


def _portable(path: Path, root: Path) -> str:
    """A path relative to the project's root when inside it (shards run in different checkouts), else absolute."""
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_posix()


def fixture_files(fixtures: Fixtures, root: Path, baseline: Path | None) -> dict[str, dict[str, str]]:
    """Each fixture file by role, with its sha256: what makes two runs' results comparable.

    The baseline counts when the gate uses it: it decides which failures are known.
    """
    hashes = fixtures.file_hashes()
    files = {role: {"path": _portable(path, root), "sha256": hashes[role]} for role, path in fixtures.files.items()}
    if baseline is not None and baseline.is_file():
        files["baseline"] = {"path": _portable(baseline, root), "sha256": file_sha256(baseline)}
    return files


def run_metadata(fixtures: Fixtures, root: Path, args: Sequence[str], baseline: Path | None = None) -> dict[str, Any]:
    """Facts about this run that differ between runs of the same fixtures: kept under ``run``."""
    return {
        "id": new_run_id(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": ["pytest", *args],
        "python": platform.python_version(),
        "pytest": package_version("pytest"),
        "workshop": package_version("workshop"),
        "platform": sys.platform,
        "git_commit": _git_commit(root),
        "fixtures": fixture_files(fixtures, root, baseline),
    }


def new_run_id() -> str:
    """A run id that sorts by time, to the microsecond (runs a second apart are common in CI and
    in tests): ``20261204T180512.123456Z-3f9a1c``."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


_CELLS_TOKEN = "\u0000cells\u0000"


def cell_records(report: RunReport) -> Iterator[dict[str, Any]]:
    """Each evaluated cell as ``summary.json`` holds it, in the run's order."""
    for c, r in zip(report.outcomes, report.results, strict=True):
        yield {
            "prompt_version": c.prompt_version,
            "case_id": c.case_id,
            "passed": c.passed,
            "reason": c.reason,
            "outcome": c.outcome.value,
            "pass_rate": round(r.pass_rate, 6),
            "trials": len(r.trials),
            "review_flag": r.shown_trial.review_flag,
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            # exact, where prompt_eval.csv guards spreadsheet formulas
            "raw_output": r.raw_output,
        }


def summary_data(report: RunReport, run: Mapping[str, Any], *, cells: bool = True) -> dict[str, Any]:
    """The summary as JSON data; everything outside ``run`` is the same for the same results.

    ``cells=False`` leaves a placeholder where the cells go (`render_summary` streams them)."""
    verdict = report.verdict
    return {
        "format": SUMMARY_FORMAT,
        "complete": report.complete,
        "selection": {
            "ran": len(report.results),
            "selected": report.selected,
            "total": report.total,
            "keyword": report.keyword,
            "shard": str(report.shard) if report.shard else None,
        },
        "gate": {
            "mode": verdict.mode,
            "verdict": verdict.state,
            "regressions": [f"{c.prompt_version}-{c.case_id}" for c in verdict.regressions],
            "improvements": [f"{c.prompt_version}-{c.case_id}" for c in verdict.improvements],
            "new_failures": [f"{c.prompt_version}-{c.case_id}" for c in verdict.new_failures],
            "known_failures": verdict.known_failures,
            "errors": verdict.errors,
        },
        "versions": [
            {
                "version": s.version,
                "passed": s.passed,
                "total": s.total,
                "pass_at_1": round(s.pass_at_1, 6),
                "pass_all": round(s.pass_all, 6),
                "input_tokens": s.input_tokens,
                "output_tokens": s.output_tokens,
            }
            for s in report.scores
        ],
        "cells": [*cell_records(report)] if cells else _CELLS_TOKEN,
        "errors": [{"prompt_version": v, "case_id": c, "error": e} for v, c, e in report.errors],
        "missing": list(report.missing),
        "analysis": report.analysis.to_json() if report.analysis else None,
        # latency differs run to run, so it sits with the other run facts
        # (a merge of shard packs brings the shards' summed latency)
        "run": {**run, "latency_s": run.get("latency_s", {s.version: s.latency_s for s in report.scores})},
    }


def render_summary(report: RunReport, run: Mapping[str, Any]) -> bytes:
    """``summary.json`` as bytes: indented, with one line per cell.

    Compact, and quick and light at scale: an indented dump of tens of thousands of cells goes
    through json's slow pure-Python path, and the cells (with their raw outputs) are encoded one
    line at a time instead of held as dicts, text and bytes at once.
    """
    text = json.dumps(summary_data(report, run, cells=False), indent=2, ensure_ascii=False)
    head, tail = text.split(json.dumps(_CELLS_TOKEN), 1)
    out = io.BytesIO()
    out.write(_encoded(head))
    separator = b"[\n    "
    for cell in cell_records(report):
        out.write(separator)
        out.write(_encoded(json.dumps(cell, ensure_ascii=False)))
        separator = b",\n    "
    out.write(b"[]" if separator == b"[\n    " else b"\n  ]")
    out.write(_encoded(tail + "\n"))
    return out.getvalue()


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "backslashreplace")
