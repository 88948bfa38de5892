"""Shared bits of the benchmarks (and the browser tests): medians, result files, a markdown table, Chromium."""

from __future__ import annotations

import json
import platform
import statistics
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

CHROMIUM = "/usr/bin/chromium"
"""Debian's chromium, driven through Playwright with ``executable_path`` (never a browser download);
tests/test_report_browser.py uses the same browser and flags."""
# Quiet, offline Chromium: without these it keeps trying to reach Google's services.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def median(values: Sequence[float]) -> float:
    """The median, rounded for reports."""
    return round(statistics.median(values), 4)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A small GitHub-flavoured table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save(name: str, data: dict[str, Any], table: str) -> tuple[Path, Path]:
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns both paths."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "python": platform.python_version()}
    json_path = RESULTS / f"{name}.json"
    md_path = RESULTS / f"{name}.md"
    json_path.write_text(json.dumps({**stamp, **data}, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(f"# {name}\n\n{stamp['time']}, Python {stamp['python']}\n\n{table}", encoding="utf-8")
    return json_path, md_path
