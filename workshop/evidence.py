"""The evidence pack: render its files from the results, and write them atomically.

A pack is rendered to bytes first, written into a fresh folder beside the target,
and only then swapped in, so a crash or Ctrl-C while writing leaves the previous
pack whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from workshop.analysis import Analysis
from workshop.errors import EvidenceError
from workshop.evaluation import EvalResult, VersionScore
from workshop.routes import RouteDecision
from workshop.text import markdown_cell, markdown_text, some
from workshop.tokens import TokenTrace

TOKEN_TRACE = "token_trace.json"
PROMPT_EVAL = "prompt_eval.csv"
ROUTE_DECISIONS = "route_decisions.json"
FAILURE_CASES = "failure_cases.md"
README = "README.md"
SUMMARY = "summary.json"
NEXT_STEPS = "next_steps.md"
SEED_FILES = (TOKEN_TRACE, PROMPT_EVAL, ROUTE_DECISIONS, FAILURE_CASES, README)
PACK_FILES = frozenset((*SEED_FILES, NEXT_STEPS, SUMMARY))
"""Every file name a pack may hold: a folder holding anything else is not replaced."""

CELLS_SHOWN = 50
"""Cells named in the analysis before "and N more"; every row is in prompt_eval.csv."""

CSV_FIELDS = ("prompt_version", "case_id", "passed", "reason", "raw_output")

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0")
"""First characters that make a spreadsheet read a CSV cell as a formula (OWASP's CSV injection list,
plus line feed and NUL as in ASVS 1.2.10)."""


def _encode(text: str) -> bytes:
    # A model may answer with lone surrogates, which UTF-8 cannot hold; keep them visible.
    return text.encode("utf-8", "backslashreplace")


def _json_text(rows: Iterable[Any]) -> str:
    return json.dumps(list(rows), indent=2, ensure_ascii=False)


def render_token_trace(traces: Sequence[TokenTrace]) -> bytes:
    """``token_trace.json``, byte-identical to the seed's for the same traces."""
    return _encode(_json_text(trace.model_dump() for trace in traces))


def render_route_decisions(decisions: Sequence[RouteDecision]) -> bytes:
    """``route_decisions.json``, byte-identical to the seed's for the same decisions."""
    return _encode(_json_text(decision.model_dump() for decision in decisions))


def spreadsheet_safe(text: str) -> str:
    """``text`` as a CSV cell that no spreadsheet runs as a formula: a leading ``'`` where
    it starts with a formula trigger (OWASP's advice). Other text is unchanged."""
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def render_prompt_eval(results: Sequence[EvalResult]) -> bytes:
    """``prompt_eval.csv`` as the seed's `csv.DictWriter` writes it (CRLF rows).

    Model output and reasons quoting it are made spreadsheet-safe (`spreadsheet_safe`);
    ``summary.json`` keeps the exact text.
    """
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    safe = spreadsheet_safe
    writer.writerows(
        (safe(r.prompt_version), safe(r.case_id), r.passed, safe(r.reason), safe(r.raw_output)) for r in results
    )
    return _encode(buffer.getvalue())


def render_failure_cases(
    results: Sequence[EvalResult], errors: Sequence[tuple[str, str, str]] = (), analysis: Analysis | None = None
) -> bytes:
    """``failure_cases.md``: the seed's list (one item per failing evaluation) first, then cells
    whose calls failed, then the analysis under its own headings."""
    lines = ["# Failure Cases", ""]
    # a reason quotes model output: it must not start a new list item nor become HTML
    lines += [f"- {r.prompt_version} / {r.case_id}: {markdown_text(r.reason)}" for r in results if not r.passed]
    if errors:
        lines += ["", "## Provider errors", "", "No result: these cells are not prompt failures.", ""]
        lines += [f"- {version} / {case_id}: {markdown_text(error)}" for version, case_id, error in errors]
    if analysis is not None:
        lines += _analysis_lines(analysis)
    return _encode("\n".join(lines) + "\n")


def _analysis_lines(analysis: Analysis) -> list[str]:
    lines = []
    if analysis.groups:
        lines += ["", "## Failures by reason"]
        for group in analysis.groups:
            counts = ", ".join(f"{version}: {count}" for version, count in group.by_version.items())
            lines += ["", f"### {group.type}: {len(group.cells)} ({counts})", ""]
            lines.append(f"What it means: {group.meaning}  ")
            if group.why:
                lines.append(f"Why it happens: {group.why}  ")
            lines.append(f"Next change ({group.route or 'not a prompt change'}): {group.next_change}  ")
            cells = [f"{markdown_cell(v)} / {markdown_cell(c)}" for v, c, _ in group.cells]
            lines.append(
                "Cells: " + some(cells, CELLS_SHOWN) + (" (all in prompt_eval.csv)" if len(cells) > CELLS_SHOWN else "")
            )
    if analysis.diffs:
        lines += ["", "## Version to version", "", "| version | compared with | fixed | broke | reason changed |"]
        lines.append("|---|---|---|---|---|")
        for diff in analysis.diffs:
            cell = markdown_cell
            fixed = some([cell(case) for case, _ in diff.fixed], CELLS_SHOWN) or "none"
            broken = some([f"{cell(case)} ({cell(reason)})" for case, reason in diff.broken], CELLS_SHOWN) or "none"
            changed = some([f"{cell(c)} ({cell(a)} -> {cell(b)})" for c, a, b in diff.changed], CELLS_SHOWN) or "none"
            lines.append(f"| {diff.version} | {diff.previous} | {fixed} | {broken} | {changed} |")
    if analysis.review:
        lines += ["", "## Human-review boundary", ""]
        lines.append("| version | flagged correctly | missed (should have been flagged) | over-flagged | "
                     "correctly not flagged | not judged |")  # fmt: skip
        lines.append("|---|---|---|---|---|---|")
        for r in analysis.review:
            lines.append(f"| {r.version} | {r.flagged} | {r.missed} | {r.over_flagged} | {r.cleared} | {r.unjudged} |")
    return lines


def render_next_steps(analysis: Analysis) -> bytes:
    """``next_steps.md``: the recommended route for each failing version, cheapest first."""
    ladder = ", then ".join(analysis.ladder)
    lines = ["# Next Steps", "", f"Cheapest reliable route first: {ladder}."]
    if not analysis.next_steps:
        lines += ["", "Every version passed every case that ran: nothing to change."]
    for step in analysis.next_steps:
        lines += ["", f"## {step.version}: {step.passed}/{step.total} passed", ""]
        lines.append(f"Recommended next route: {step.route or 'fix the run first (no prompt change)'}")
        lines.append("")
        for advice in step.advice:
            cases = some([markdown_cell(case) for case in advice.cases], CELLS_SHOWN)
            lines.append(f"- {markdown_cell(advice.topic)} ({cases}): {advice.next_change}")
    return _encode("\n".join(lines) + "\n")


@dataclass(frozen=True)
class ReadmeInfo:
    """What the pack's README says beyond the results: how it was made and what ran."""

    run_command: str
    notes: Sequence[str] = field(default_factory=tuple)
    """Paragraphs added after the best-version line (selection, completeness, ...)."""


def render_readme(info: ReadmeInfo, best: VersionScore | None) -> bytes:
    """The pack's ``README.md``, naming the best version computed from the results."""
    if best is None:
        best_line = "Best prompt version: none (no prompt evaluations ran)"
    else:
        best_line = f"Best prompt version: {best.version} ({best.passed}/{best.total} passed)"
    paragraphs = [
        "# Chapter 7 LLM Workshop Evidence",
        f"Run command: `{info.run_command}`",
        best_line,
        *info.notes,
        "Review `failure_cases.md` before deciding whether to change Prompt, add RAG, or plan fine-tuning.",
    ]
    return _encode("\n\n".join(paragraphs) + "\n")


def render_pack(
    traces: Sequence[TokenTrace],
    results: Sequence[EvalResult],
    routes: Sequence[RouteDecision],
    readme: ReadmeInfo,
    best: VersionScore | None,
    errors: Sequence[tuple[str, str, str]] = (),
    analysis: Analysis | None = None,
) -> dict[str, bytes]:
    """Every file of the pack, by name, in the seed's order; with an analysis, also ``next_steps.md``."""
    files = {
        TOKEN_TRACE: render_token_trace(traces),
        PROMPT_EVAL: render_prompt_eval(results),
        ROUTE_DECISIONS: render_route_decisions(routes),
        FAILURE_CASES: render_failure_cases(results, errors, analysis),
        README: render_readme(readme, best),
    }
    if analysis is not None:
        files[NEXT_STEPS] = render_next_steps(analysis)
    return files


LOCK_TIMEOUT_S = 120.0
"""How long a run waits for another run to finish writing the same evidence folder."""


def _is_replaceable(target: Path) -> bool:
    """A folder may be replaced if it is empty or holds only pack files."""
    return all(entry.is_file() and entry.name in PACK_FILES for entry in target.iterdir())


def _restore_interrupted_swap(target: Path) -> None:
    """If a swap was killed between its two renames, put the previous pack back."""
    if target.exists():
        return
    retired = sorted(target.parent.glob(f".{target.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if retired:
        os.rename(retired[-1], target)


def _remove_leftovers(target: Path) -> None:
    """Staging and retired folders of writers that were killed; only called under the lock,
    when no other writer can be using them."""
    for pattern in (f".{target.name}.new-*", f".{target.name}.old-*"):
        for leftover in target.parent.glob(pattern):
            shutil.rmtree(leftover, ignore_errors=True)


def lock_path(target: Path) -> Path:
    """The lock file that serialises writers of the evidence folder ``target``."""
    return target.parent / f".{target.name}.lock"


def write_pack(target: Path, files: Mapping[str, bytes], lock_timeout_s: float = LOCK_TIMEOUT_S) -> list[Path]:
    """Write ``files`` as the folder ``target``, replacing a previous pack atomically.

    Writers of the same folder take turns (a lock file beside it), so two runs sharing it
    leave one run's whole pack, never a mix. Returns the written paths, in ``files`` order.
    Refuses to replace a folder that holds anything but pack files, so a mistyped
    ``--evidence-dir`` cannot delete work.
    """
    unknown = sorted(set(files) - PACK_FILES)
    if unknown:
        raise ValueError(f"not pack file names: {unknown}")
    if target.exists() and not target.is_dir():
        raise EvidenceError(f"cannot write the evidence pack to {target}: it is a file, not a folder")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(lock_path(target), timeout=lock_timeout_s)
        lock.acquire()
    except Timeout:
        raise EvidenceError(
            f"cannot write the evidence pack to {target}: another run held {lock_path(target).name} "
            f"for {lock_timeout_s:.0f} s"
        ) from None
    except OSError as exc:
        raise EvidenceError(f"cannot write the evidence pack to {target}: {exc.strerror or exc}") from None
    try:
        _write_locked(target, files)
    finally:
        lock.release()
    return [target / name for name in files]


def _write_locked(target: Path, files: Mapping[str, bytes]) -> None:
    try:
        _restore_interrupted_swap(target)
        _remove_leftovers(target)
        if target.exists() and not _is_replaceable(target):
            raise EvidenceError(
                f"refusing to replace {target}: it holds files that are not part of an evidence pack; "
                "choose an empty or new folder for the evidence"
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.new-", dir=target.parent))
        os.chmod(staging, 0o755)  # mkdtemp's 0o700 would hide the pack from the rest of the team
    except OSError as exc:
        raise EvidenceError(f"cannot write the evidence pack to {target}: {exc.strerror or exc}") from None
    try:
        for name, content in files.items():
            with open(staging / name, "wb") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        _swap_in(staging, target)
    except BaseException as exc:  # Ctrl-C included: never leave a half pack behind
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise EvidenceError(f"cannot write the evidence pack to {target}: {exc.strerror or exc}") from None
        raise


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        os.rename(staging, target)
        return
    retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(target, retired)
    try:
        os.rename(staging, target)
    except BaseException:
        os.rename(retired, target)
        raise
    shutil.rmtree(retired, ignore_errors=True)
