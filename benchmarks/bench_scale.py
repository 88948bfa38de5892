"""The suite against pytest's own floor, at 3,000 and 30,000 evaluations.

For N generated cases (x 3 versions), in temporary projects, each run several times:
  floor A: bare pytest, the same number of parametrized tests (same ids) that only ``assert True``
  floor B: floor A with pytest-html writing its self-contained report
  suite:   the suite with ``--no-baseline`` and the HTML report off
  suite+report: the suite as users run it (baseline recorded beforehand, HTML report on)
and the library alone (evaluations per second) against a plain loop doing the seed's checks.

Run: ``python -m benchmarks.bench_scale`` (about 8 minutes on 2 cores); results go to
``benchmarks/results/scale.{json,md}``.
"""

from __future__ import annotations

import argparse
import gc
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import markdown_table, median, save
from benchmarks.projects import floor_project, suite_project
from benchmarks.seed_checks import seed_loop
from workshop.evaluation import evaluate_all
from workshop.fake_model import FakeModel
from workshop.fixtures import load_fixtures

PYTEST = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]


def _measure(command: list[str], cwd: Path) -> dict[str, Any]:
    """Wall time and peak RSS of one run (GNU time), plus what it printed."""
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-f", "MAXRSS_KB %M", *command], cwd=cwd, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    rss = re.search(r"MAXRSS_KB (\d+)", done.stderr)
    pack = re.search(r"written in ([0-9.]+) s", done.stdout)
    return {
        "wall_s": wall,
        "rss_mb": int(rss.group(1)) / 1024 if rss else None,
        "pack_s": float(pack.group(1)) if pack else None,
        "exit": done.returncode,
        "tail": done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:],
    }


def _size_mb(path: Path) -> float | None:
    if path.is_file():
        return path.stat().st_size / 1e6
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6
    return None


def _series(label: str, command: list[str], cwd: Path, repeats: int) -> dict[str, Any]:
    runs = [_measure(command, cwd) for _ in range(repeats)]
    walls = [run["wall_s"] for run in runs]
    rss = [run["rss_mb"] for run in runs if run["rss_mb"] is not None]
    packs = [run["pack_s"] for run in runs if run["pack_s"] is not None]
    print(f"  {label}: median {median(walls)} s, exit {runs[-1]['exit']}: {runs[-1]['tail'][:90]}", flush=True)
    return {
        "wall_s": median(walls),
        "walls": [round(w, 3) for w in walls],
        "rss_mb": median(rss) if rss else None,
        "pack_s": median(packs) if packs else None,
        "exit": runs[-1]["exit"],
    }


def _library_rate(project: Path, repeats: int) -> dict[str, float]:
    """Evaluations per second of the library and of the seed's plain loop, measured turn about so that
    drift on a shared machine hits both alike; medians of ``2 * repeats + 1`` turns."""
    fixtures = load_fixtures(project / "cases" / "cases.json", project / "cases" / "prompt_versions.json")
    model = FakeModel(fixtures.fake_model, fixtures.versions)
    count = len(fixtures.cases) * len(fixtures.versions)
    library, seed = [], []
    for _ in range(2 * repeats + 1):
        gc.collect()
        started = time.perf_counter()
        evaluate_all(fixtures, model, environ={})
        library.append(count / (time.perf_counter() - started))
        gc.collect()
        started = time.perf_counter()
        seed_loop(fixtures)
        seed.append(count / (time.perf_counter() - started))
    rate, floor = median(library), median(seed)
    return {"library_per_s": round(rate), "seed_loop_per_s": round(floor), "ratio": round(rate / floor, 3)}


def bench(cases: int, repeats: int, base: Path) -> dict[str, Any]:
    """All measurements for one size."""
    print(f"{cases} cases x 3 versions = {3 * cases} evaluations", flush=True)
    floor = floor_project(base / f"floor-{cases}", cases)
    suite = suite_project(base / f"suite-{cases}", cases, html=True)
    # users run against a recorded baseline: record it once, untimed
    subprocess.run([*PYTEST, "--update-baseline", "-o", "html_report="], cwd=suite, capture_output=True, check=False)
    html_floor = ["--html=report.html", "--self-contained-html"]
    results = {
        "floor_a": _series("floor A", PYTEST, floor, repeats),
        "floor_b": _series("floor B", [*PYTEST, *html_floor], floor, repeats),
        "suite": _series("suite", [*PYTEST, "--no-baseline", "-o", "html_report="], suite, repeats),
        "suite_report": _series("suite+report", PYTEST, suite, repeats),
    }
    results["sizes_mb"] = {
        "floor_b_report": _size_mb(floor / "report.html"),
        "suite_report": _size_mb(suite / "reports" / "report.html"),
        "pack": _size_mb(suite / "reports" / "evidence"),
    }
    results["ratios"] = {
        "suite_over_floor_a": round(results["suite"]["wall_s"] / results["floor_a"]["wall_s"], 3),
        "report_over_floor_b": round(results["suite_report"]["wall_s"] / results["floor_b"]["wall_s"], 3),
        "rss_suite_over_floor_a": round(results["suite"]["rss_mb"] / results["floor_a"]["rss_mb"], 3),
        "rss_report_over_floor_b": round(results["suite_report"]["rss_mb"] / results["floor_b"]["rss_mb"], 3),
        "pack_share_of_wall": round(results["suite_report"]["pack_s"] / results["suite_report"]["wall_s"], 4),
    }
    results["library"] = _library_rate(suite, repeats)
    return results


def _table(by_size: dict[int, dict[str, Any]]) -> str:
    rows = []
    for cases, r in by_size.items():
        ratios, sizes = r["ratios"], r["sizes_mb"]
        rows.append(
            [
                3 * cases,
                r["floor_a"]["wall_s"],
                r["suite"]["wall_s"],
                ratios["suite_over_floor_a"],
                r["floor_b"]["wall_s"],
                r["suite_report"]["wall_s"],
                ratios["report_over_floor_b"],
                f"{ratios['rss_suite_over_floor_a']} / {ratios['rss_report_over_floor_b']}",
                f"{r['suite_report']['pack_s']} ({100 * ratios['pack_share_of_wall']:.1f}%)",
                f"{sizes['floor_b_report']:.1f} / {sizes['suite_report']:.1f} / {sizes['pack']:.1f}",
                f"{r['library']['library_per_s']} / {r['library']['seed_loop_per_s']} ({r['library']['ratio']})",
            ]
        )
    header = [
        "evaluations",
        "floor A s",
        "suite s",
        "suite / A",
        "floor B s",
        "suite+report s",
        "report / B",
        "peak RSS ratio (suite/A, report/B)",
        "pack s (share)",
        "MB: floor B report / suite report / pack",
        "library / seed loop evals per s (ratio)",
    ]
    table = markdown_table(header, rows)
    sizes = list(by_size)
    if len(sizes) == 2:
        small, big = by_size[sizes[0]], by_size[sizes[1]]
        growth = round(big["suite_report"]["wall_s"] / small["suite_report"]["wall_s"], 2)
        table += f"\n{sizes[1]} cases cost {growth}x {sizes[0]} cases (suite as users run it; target at most 11x).\n"
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000], help="numbers of cases")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; medians are reported")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="workshop-bench-") as tmp:
        by_size = {cases: bench(cases, args.repeats, Path(tmp)) for cases in args.sizes}
    table = _table(by_size)
    save("scale", {"sizes": {str(k): v for k, v in by_size.items()}, "repeats": args.repeats}, table)
    print(table)


if __name__ == "__main__":
    main()
