"""Merging shard packs: the packs of ``pytest --shard K/N`` runs combined into one run's pack.

The merged pack is rendered by the same code as a run's, from the shards' results, so it is
byte-identical to an unsharded run's pack apart from ``summary.json``'s ``run``. Packs are
combined only when they ran the same fixtures (their sha256 in ``summary.json``) and no cell
was run by two of them.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workshop.errors import WorkshopError
from workshop.evaluation import EvalResult, Trial
from workshop.evidence import write_pack
from workshop.files import file_sha256
from workshop.model import Completion
from workshop.packs import CellRecord, PackError, PackSummary, read_pack
from workshop.payload import build_payload
from workshop.settings import SuiteSettings
from workshop.shard import Shard
from workshop.suite import EvalSuite, RunReport, analyse_report, judge_results, render_run_pack
from workshop.summary import new_run_id, package_version
from workshop.text import some

FIXTURE_ROLES_NEEDED = ("cases", "prompts")


@dataclass(frozen=True)
class MergeResult:
    """The merged run and where its pack went."""

    report: RunReport
    pack: list[Path]
    sources: tuple[Path, ...]
    suite: EvalSuite


def _same(values: dict[Path, Any], what: str) -> Any:
    """The one value all packs share, or a `PackError` naming the packs that differ."""
    distinct = {repr(value): pack for pack, value in values.items()}
    if len(distinct) > 1:
        shown = "; ".join(f"{pack}: {value}" for pack, value in values.items())
        raise PackError(f"cannot merge packs with different {what}: {shown}")
    return next(iter(values.values()))


def check_mergeable(summaries: dict[Path, PackSummary]) -> None:
    """Refuse packs of different fixtures, gate modes or selections, and packs that overlap."""
    _same({pack: s.gate.mode for pack, s in summaries.items()}, "gate modes (--no-baseline on some shards only?)")
    _same({pack: s.selection.keyword for pack, s in summaries.items()}, "-k selections")
    shards = {pack: Shard.parse(s.selection.shard) if s.selection.shard else None for pack, s in summaries.items()}
    if any(shard is not None for shard in shards.values()):
        _same({pack: shard.count if shard else None for pack, shard in shards.items()}, "shard counts")
        seen: dict[int, Path] = {}
        for pack, shard in shards.items():
            if shard is None:  # unreachable: the counts above would differ
                continue
            if shard.index in seen:
                raise PackError(f"overlapping shards: {seen[shard.index]} and {pack} are both shard {shard}")
            seen[shard.index] = pack
    hashes = {pack: summary.fixture_hashes for pack, summary in summaries.items()}
    first_pack, first = next(iter(hashes.items()))
    for pack, other in hashes.items():
        differing = sorted(role for role in first.keys() | other.keys() if first.get(role) != other.get(role))
        if differing:
            detail = ", ".join(
                f"{role} ({(first.get(role) or 'absent')[:12]} in {first_pack}, {(other.get(role) or 'absent')[:12]} "
                f"in {pack})"
                for role in differing
            )
            raise PackError(f"cannot merge packs of different fixtures: {detail}; run every shard on the same commit")
    owners: dict[tuple[str, str], Path] = {}
    for pack, summary in summaries.items():
        for key in [cell.key for cell in summary.cells] + [error.key for error in summary.errors]:
            if key in owners:
                raise PackError(f"overlapping packs: {owners[key]} and {pack} both ran {key[0]} / {key[1]}")
            owners[key] = pack


def _fixture_path(root: Path, recorded: str) -> Path:
    path = Path(recorded)
    return path if path.is_absolute() else root / path


def _check_fixtures_on_disk(summary: PackSummary, root: Path) -> dict[str, Path]:
    """The fixture files the shards ran, found under ``root`` and unchanged since."""
    paths = {}
    for role, record in summary.run.fixtures.items():
        path = _fixture_path(root, record.path)
        try:
            digest = file_sha256(path)
        except OSError:
            raise PackError(
                f"{role} fixture {record.path} not found under {root}: run the merge from the project folder "
                "the shards ran in (or pass --root)"
            ) from None
        if digest != record.sha256:
            raise PackError(f"{path} changed since the shards ran (sha256 {digest[:12]}, not {record.sha256[:12]})")
        paths[role] = path
    missing = [role for role in FIXTURE_ROLES_NEEDED if role not in paths]
    if missing:
        raise PackError(f"the packs name no {' or '.join(missing)} fixture file")
    return paths


def result_of(record: CellRecord, suite: EvalSuite) -> EvalResult:
    """An `EvalResult` equal, for every file of a pack, to the one the shard judged.

    ``summary.json`` keeps the shown trial's answer and flag, the number of trials that
    passed (via the pass rate) and the token totals: all a pack is rendered from.
    """
    cell = suite.cells_by_id.get(record.cell_id)
    if cell is None:
        raise PackError(f"cell {record.prompt_version} / {record.case_id} is not in the fixtures")
    passes = round(record.pass_rate * record.trials)
    # a failed cell shows a failing trial; a passed one its first, taken as passing if any trial passed
    # (with --min-pass-rate 0 a cell can pass with none: then its shown trial failed)
    shown_passed = record.passed and passes > 0
    shown = Trial(
        shown_passed,
        record.reason,
        Completion(record.raw_output, input_tokens=record.input_tokens, output_tokens=record.output_tokens),
        record.review_flag,
    )
    rest_passing = passes - shown_passed
    others = [True] * rest_passing + [False] * (record.trials - 1 - rest_passing)
    trials = (shown, *(Trial(passed, record.reason, Completion("")) for passed in others))
    payload = build_payload(cell.case, cell.version, {})
    return EvalResult(
        record.prompt_version, record.case_id, record.passed, record.reason, cell.case.expected_intent, payload, trials
    )


def _missing_shards(summaries: dict[Path, PackSummary], suite: EvalSuite) -> list[str]:
    """Cells of shards that no pack holds: they count as missing."""
    shards = [Shard.parse(s.selection.shard) for s in summaries.values() if s.selection.shard]
    if not shards:
        return []
    present = {shard.index for shard in shards}
    absent = [Shard(index, shards[0].count) for index in range(1, shards[0].count + 1) if index not in present]
    return [cell.id for shard in absent for cell in shard.part(suite.cells)]


def merge_packs(packs: Sequence[Path], out: Path, root: Path, command: Sequence[str] = ()) -> MergeResult:
    """Combine the packs in ``packs`` into one pack written to ``out``; raise `PackError` if they don't fit."""
    if not packs:
        raise PackError("no packs to merge")
    if len(set(map(Path.resolve, packs))) != len(packs):
        raise PackError("the same pack is named twice")
    summaries = {pack: read_pack(pack) for pack in packs}
    check_mergeable(summaries)
    first = next(iter(summaries.values()))
    paths = _check_fixtures_on_disk(first, root)
    settings = SuiteSettings(
        cases=paths["cases"],
        prompts=paths["prompts"],
        evidence_dir=out,
        baseline=paths.get("baseline", root / "cases" / "baseline.json"),
        update_baseline=False,
        use_baseline=first.gate.mode == "gate",
        html_report=None,
        recordings_dir=root / "cases" / "recordings",
    )
    try:
        suite = EvalSuite.load(settings)
    except WorkshopError as exc:
        raise PackError(str(exc)) from None

    results = {}
    errors = {}
    selected: list[str] = []
    for summary in summaries.values():
        for record in summary.cells:
            results[record.key] = result_of(record, suite)
            selected.append(record.cell_id)
        for error in summary.errors:
            errors[error.key] = error.error
            selected.append(f"{error.prompt_version}-{error.case_id}")
        selected += summary.missing
    selected += _missing_shards(summaries, suite)
    order = {cell.id: position for position, cell in enumerate(suite.cells)}
    selected.sort(key=lambda cell_id: order.get(cell_id, len(order)))

    report = judge_results(suite, results, errors, selected, interrupted=False, keyword=first.selection.keyword)
    report = replace(report, analysis=analyse_report(suite, report))
    files = render_run_pack(suite, report, _merged_run(summaries, command))
    written = write_pack(out, files)
    return MergeResult(replace(report, pack=written), written, tuple(packs), suite)


def _common(values: set[Any]) -> Any:
    """The value every shard had, or None when they differ."""
    return next(iter(values)) if len(values) == 1 else None


def _merged_run(summaries: dict[Path, PackSummary], command: Sequence[str]) -> dict[str, Any]:
    first = next(iter(summaries.values()))
    latency: dict[str, float | None] = {}
    for summary in summaries.values():
        for version, seconds in summary.run.latency_s.items():
            if seconds is not None:
                latency[version] = (latency.get(version) or 0.0) + seconds
            else:
                latency.setdefault(version, None)
    return {
        "id": new_run_id(),
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": list(command),
        "python": platform.python_version(),
        "workshop": package_version("workshop"),
        "platform": sys.platform,
        "git_commit": _common({s.run.git_commit for s in summaries.values()}),
        "merged_from": [
            {"pack": str(pack), "id": s.run.id, "shard": s.selection.shard} for pack, s in summaries.items()
        ],
        "fixtures": {role: record.model_dump() for role, record in first.run.fixtures.items()},
        "latency_s": latency,
    }


def describe(result: MergeResult) -> list[str]:
    """Lines for the terminal: what was merged, the versions, the gate's verdict, where the pack went."""
    report = result.report
    lines = [f"Merged {len(result.sources)} packs: {some([str(p) for p in result.sources], 10)}"]
    lines += [f"{s.version}: {s.passed}/{s.total} passed" for s in report.scores]
    lines.append(report.verdict.summary_line())
    for kind, cells in (("regression", report.verdict.regressions), ("new failure", report.verdict.new_failures)):
        lines += [f"  {kind}: {c.prompt_version} / {c.case_id}: {c.reason}" for c in cells]
    state = "complete" if report.complete else f"INCOMPLETE: {len(report.missing) + len(report.errors)} without result"
    where = result.pack[0].parent if result.pack else "nowhere"
    lines.append(f"Evidence pack: {where} ({len(report.results)} of {report.total} evaluations; {state})")
    return lines
