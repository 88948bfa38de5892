"""``python -m workshop``: the seed's four steps from the fixtures, and helper commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from workshop.analysis import analyse
from workshop.compare import compare_packs, render_diff_markdown
from workshop.console import analysis_lines, route_line, token_line, version_line
from workshop.errors import EvidenceError, WorkshopError
from workshop.evaluation import best_version, evaluate_all, score_versions
from workshop.evidence import ReadmeInfo, render_pack, write_pack
from workshop.fake_model import FakeModel
from workshop.files import replace_file
from workshop.fixtures import load_fixtures
from workshop.github import write_step_summary
from workshop.merge import describe, merge_packs
from workshop.packs import PackOutcomes, read_pack
from workshop.report import standalone_report
from workshop.routes import decide_routes
from workshop.schemas import write_schemas
from workshop.tokens import trace_text

DEFAULT_CASES = Path("cases/cases.json")
DEFAULT_PROMPTS = Path("cases/prompt_versions.json")
DEFAULT_EVIDENCE_DIR = Path("reports/evidence")
DEFAULT_SCHEMA_DIR = Path("cases/schemas")
DEFAULT_DIFF = Path("reports/diff.md")
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
    parser.add_argument(
        "--explain",
        action="store_true",
        help="also explain the failures (why, what changed between versions, what to do next) in the terminal, "
        "failure_cases.md and next_steps.md; without it the output is exactly the seed workshop's",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    schemas = commands.add_parser("schemas", help="write the JSON Schemas of the fixture files")
    schemas.add_argument("--dir", type=Path, default=DEFAULT_SCHEMA_DIR, help="output folder (default: %(default)s)")
    merge = commands.add_parser(
        "merge",
        help="combine the packs of `pytest --shard K/N` runs into one; exit 1 if its gate fails or it is incomplete",
    )
    merge.add_argument("packs", nargs="+", type=Path, metavar="PACK", help="evidence pack folders of the shards")
    merge.add_argument("-o", "--output", type=Path, required=True, help="folder of the merged pack")
    merge.add_argument(
        "--root", type=Path, default=Path(), help="project folder the shards ran in (default: the current folder)"
    )
    merge.add_argument("--html", type=Path, help="also write a self-contained HTML report of the merged run here")
    diff = commands.add_parser(
        "diff",
        help="show what changed between two runs' packs (cells, pass counts, fixture files); "
        "it informs, it does not gate: exit 0 whatever changed (2 if a pack cannot be read)",
    )
    diff.add_argument("old", type=Path, metavar="OLD", help="evidence pack folder of the earlier run")
    diff.add_argument("new", type=Path, metavar="NEW", help="evidence pack folder of the later run")
    diff.add_argument(
        "-o", "--output", type=Path, default=DEFAULT_DIFF, help="Markdown file to write too (default: %(default)s)"
    )
    return parser


def run(cases: Path, prompts: Path, evidence_dir: Path, explain: bool = False) -> None:
    """Print the seed's STEP 1 to STEP 4 and write the evidence pack (with ``explain``, the analysis too)."""
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

    analysis = None
    if explain:
        routes = {decision.case_id: decision.first_route for decision in decisions}
        versions = [version.name for version in fixtures.versions]
        analysis = analyse(results, (), fixtures.cases, routes, fixtures.guide, versions)
        print("\nWhy, and what next")
        for line in analysis_lines(analysis):
            print(line)
    readme = ReadmeInfo(RUN_COMMAND + (" --explain" if explain else ""))
    files = render_pack(traces, results, decisions, readme, best_version(scores), analysis=analysis)
    write_pack(evidence_dir, files)
    print("\nSTEP 4: Evidence files")
    for name in files:
        print((evidence_dir / name).as_posix())


def _merge(packs: list[Path], output: Path, root: Path, command: list[str], html: Path | None) -> int:
    merged = merge_packs(packs, output, root, command)
    for line in describe(merged):
        print(line)
    report = merged.report
    fixtures = merged.suite.fixtures
    title = f"Prompt evaluation (merged from {len(packs)} packs)"
    versions, cases = [v.name for v in fixtures.versions], [c.id for c in fixtures.cases]
    if html is not None:
        page = standalone_report(report, versions, cases, title)
        try:
            replace_file(html, page.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            print(f"error: cannot write the HTML report {html}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"HTML report: {html.as_posix()}")
    problem = write_step_summary(report, fixtures, title)
    if problem:
        print(problem, file=sys.stderr)
    return 0 if report.verdict.passed and report.complete else 1


def _diff(old: Path, new: Path, output: Path) -> int:
    diff = compare_packs(read_pack(old, PackOutcomes), read_pack(new, PackOutcomes))
    markdown = render_diff_markdown(diff, old.as_posix(), new.as_posix())
    print(markdown, end="")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(markdown, encoding="utf-8")
    except OSError as exc:
        raise EvidenceError(f"cannot write the diff to {output}: {exc.strerror or exc}") from None
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m workshop``; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "schemas":
            for path in write_schemas(args.dir):
                print(path.as_posix())
        elif args.command == "merge":
            command = ["python", "-m", "workshop", *(argv or sys.argv[1:])]
            return _merge(args.packs, args.output, args.root, command, args.html)
        elif args.command == "diff":
            return _diff(args.old, args.new, args.output)
        else:
            run(args.cases, args.prompts, args.evidence_dir, args.explain)
    except WorkshopError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
