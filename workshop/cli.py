"""``python -m workshop``: the seed's four steps from the fixtures, and helper commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from workshop.console import route_line, token_line, version_line
from workshop.errors import WorkshopError
from workshop.evaluation import best_version, evaluate_all, score_versions
from workshop.evidence import ReadmeInfo, render_pack, write_pack
from workshop.fake_model import FakeModel
from workshop.fixtures import load_fixtures
from workshop.routes import decide_routes
from workshop.schemas import write_schemas
from workshop.tokens import trace_text

DEFAULT_CASES = Path("cases/cases.json")
DEFAULT_PROMPTS = Path("cases/prompt_versions.json")
DEFAULT_EVIDENCE_DIR = Path("reports/evidence")
DEFAULT_SCHEMA_DIR = Path("cases/schemas")
RUN_COMMAND = "python -m workshop"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m workshop",
        description="Run every prompt version against every case with the fake model and save the evidence pack.",
    )
    parser.add_argument("--cases", type=Path, default=DEFAULT_CASES, help="cases file (default: %(default)s)")
    parser.add_argument(
        "--prompts", type=Path, default=DEFAULT_PROMPTS, help="prompt versions file (default: %(default)s)"
    )
    parser.add_argument(
        "--evidence-dir", type=Path, default=DEFAULT_EVIDENCE_DIR, help="evidence pack folder (default: %(default)s)"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    schemas = commands.add_parser("schemas", help="write the JSON Schemas of the fixture files")
    schemas.add_argument("--dir", type=Path, default=DEFAULT_SCHEMA_DIR, help="output folder (default: %(default)s)")
    return parser


def run(cases: Path, prompts: Path, evidence_dir: Path) -> None:
    """Print the seed's STEP 1 to STEP 4 and write the evidence pack."""
    fixtures = load_fixtures(cases, prompts)
    traces = [trace_text(case.id, case.user_input) for case in fixtures.cases]
    print("STEP 1: Token and vector trace")
    for trace in traces:
        print(token_line(trace))

    results = evaluate_all(fixtures, FakeModel(fixtures.fake_model, fixtures.versions))
    scores = score_versions(results, [version.name for version in fixtures.versions])
    print("\nSTEP 2: Prompt version evaluation")
    for score in scores:
        print(version_line(score))

    decisions = decide_routes(fixtures.cases, fixtures.routes)
    print("\nSTEP 3: Solution route check")
    for decision in decisions:
        print(route_line(decision))

    files = render_pack(traces, results, decisions, ReadmeInfo(RUN_COMMAND), best_version(scores))
    write_pack(evidence_dir, files)
    print("\nSTEP 4: Evidence files")
    for name in files:
        print((evidence_dir / name).as_posix())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m workshop``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "schemas":
            for path in write_schemas(args.dir):
                print(path.as_posix())
        else:
            run(args.cases, args.prompts, args.evidence_dir)
    except WorkshopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
