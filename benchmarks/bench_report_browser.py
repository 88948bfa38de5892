"""How long the HTML report takes to show in a real browser, at scale, against plain pytest-html.

Builds the suite's report and floor B's plain pytest-html report for the same number of
evaluations, opens each in headless Chromium (Debian's ``chromium``, driven by Playwright
with ``executable_path``; no browser download) and times from navigation until:
  suite:   the summary matrix and the first failure row are visible (100 planted regressions)
  floor B: the first results row is visible
Run: ``python -m benchmarks.bench_report_browser`` (about 3 minutes for 10,000 cases).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import CHROMIUM, CHROMIUM_ARGS, markdown_table, median, save
from benchmarks.projects import floor_project, suite_project

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


REGRESSIONS = 100
"""Baseline cells of v1 flipped to "passed", so the report has failure rows to show."""


def _plant_regressions(baseline: Path, count: int) -> None:
    data = json.loads(baseline.read_text(encoding="utf-8"))
    flipped = 0
    for cell in data["cells"]:
        if flipped < count and not cell["passed"] and cell["prompt_version"] == "v1_goal_only":
            cell["passed"] = True
            del cell["reason"]
            flipped += 1
    baseline.write_text(json.dumps(data), encoding="utf-8")


def _open(browser: object, report: Path, selectors: list[str], timeout_s: float) -> float:
    page = browser.new_page()  # type: ignore[attr-defined]
    started = time.perf_counter()
    page.goto(report.as_uri(), wait_until="commit", timeout=timeout_s * 1000)
    for selector in selectors:
        page.wait_for_selector(selector, state="visible", timeout=timeout_s * 1000)
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds before giving up on a page")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="workshop-browser-") as tmp:
        base = Path(tmp)
        suite = suite_project(base / "suite", args.cases, html=True)
        floor = floor_project(base / "floor", args.cases)
        subprocess.run(
            [*PYTEST, "--update-baseline", "-o", "html_report="], cwd=suite, capture_output=True, check=False
        )
        _plant_regressions(suite / "cases" / "baseline.json", REGRESSIONS)
        subprocess.run(PYTEST, cwd=suite, capture_output=True, check=False)
        subprocess.run(
            [*PYTEST, "--html=report.html", "--self-contained-html"], cwd=floor, capture_output=True, check=False
        )
        suite_report, floor_report = suite / "reports" / "report.html", floor / "report.html"
        suite_wait = [".workshop-matrix", "#results-table td.col-result"]
        floor_wait = ["#results-table td.col-result"]
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            suite_s = [_open(browser, suite_report, suite_wait, args.timeout) for _ in range(args.repeats)]
            floor_s = [_open(browser, floor_report, floor_wait, args.timeout) for _ in range(args.repeats)]
            browser.close()
        sizes = (suite_report.stat().st_size / 1e6, floor_report.stat().st_size / 1e6)
    rows = [
        ["suite report (matrix + failure rows)", 3 * args.cases, round(sizes[0], 1), median(suite_s)],
        ["floor B: plain pytest-html (first row)", 3 * args.cases, round(sizes[1], 1), median(floor_s)],
    ]
    table = markdown_table(["report", "evaluations", "MB", "median s to visible"], rows)
    table += "\nTarget: the suite's report shows its matrix and failure rows within 5 s.\n"
    save("report_browser", {"cases": args.cases, "suite_s": suite_s, "floor_b_s": floor_s, "mb": sizes}, table)
    print(table)


if __name__ == "__main__":
    main()
