"""GitHub Actions' job summary: the run's matrix, the gate's verdict and its regressions in Markdown.

When ``GITHUB_STEP_SUMMARY`` names a file, a run (and a merge of shard packs) appends its
summary there, and GitHub shows it on the workflow run's page. Everything from a fixture or a
model goes through `markdown_cell`: GitHub renders HTML in job summaries.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from workshop.fixtures import Fixtures
from workshop.gate import Outcome
from workshop.report import OUTCOME_LABELS, outcome_counts
from workshop.suite import RunReport
from workshop.text import markdown_cell, some

STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
MATRIX_MAX_CASES = 20
"""Above this many cases, a row of counts per version instead of a column per case."""
CELLS_LISTED = 50
"""Regressions, new failures and errors listed by name; the rest are counted (the pack has all)."""

# the HTML report's names; the outcomes that fail the gate in bold
LABELS = {
    outcome: f"**{label}**" if outcome in (Outcome.REGRESSION, Outcome.NEW_FAILURE) else label
    for outcome, label in OUTCOME_LABELS.items()
}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _matrix(report: RunReport, versions: Sequence[str], cases: Sequence[str]) -> list[str]:
    scores = {score.version: score for score in report.scores}
    by_cell = {(o.prompt_version, o.case_id): LABELS[o.outcome] for o in report.outcomes}
    by_cell.update({(version, case): "**ERROR**" for version, case, _ in report.errors})
    shown = [version for version in versions if version in scores or any(v == version for v, _, _ in report.errors)]
    if len(cases) <= MATRIX_MAX_CASES:
        lines = [_row(["Prompt version", "Passed", *map(markdown_cell, cases)]), _row(["---"] * (len(cases) + 2))]
        for version in shown:
            score = scores.get(version)
            passed = f"{score.passed}/{score.total}" if score else "0/0"
            lines.append(_row([markdown_cell(version), passed, *(by_cell.get((version, c), "") for c in cases)]))
        return lines
    counts = outcome_counts(report, shown)
    kinds = [kind for kind in LABELS if any(counts[version][kind] for version in shown)]
    lines = [_row(["Prompt version", "Passed", *(LABELS[k] for k in kinds)]), _row(["---"] * (len(kinds) + 2))]
    for version in shown:
        score = scores.get(version)
        passed = f"{score.passed}/{score.total}" if score else "0/0"
        lines.append(_row([markdown_cell(version), passed, *(str(counts[version][kind]) for kind in kinds)]))
    return lines


def step_summary_markdown(report: RunReport, versions: Sequence[str], cases: Sequence[str], title: str) -> str:
    """The job summary of one run (or merge): verdict, matrix, and the cells that need a look."""
    verdict = report.verdict
    mark = "✅" if verdict.passed else "❌"
    lines = [f"## {markdown_cell(title)}", "", f"{mark} {markdown_cell(verdict.summary_line())}", ""]
    lines += _matrix(report, versions, cases)
    listed = [
        ("Regressions", [(c.prompt_version, c.case_id, c.reason) for c in verdict.regressions]),
        ("New failures", [(c.prompt_version, c.case_id, c.reason) for c in verdict.new_failures]),
        ("Improvements to record", [(c.prompt_version, c.case_id, c.reason) for c in verdict.improvements]),
        ("No result (provider errors)", list(report.errors)),
    ]
    for heading, cells in listed:
        if not cells:
            continue
        lines += ["", f"### {heading}: {len(cells)}", ""]
        lines += [
            f"- {markdown_cell(version)} / {markdown_cell(case)}: {markdown_cell(reason)}"
            for version, case, reason in cells[:CELLS_LISTED]
        ]
        if len(cells) > CELLS_LISTED:
            lines.append(f"- … and {len(cells) - CELLS_LISTED} more (all in the evidence pack)")
    if not report.complete:
        missing = some([markdown_cell(cell) for cell in report.missing], 10)
        lines += ["", f"**INCOMPLETE**: {len(report.missing)} selected evaluations have no result: {missing}"]
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str, environ: Mapping[str, str] = os.environ) -> Path | None:
    """Append ``markdown`` to the file ``GITHUB_STEP_SUMMARY`` names; None when it names none.

    Raises `OSError` when the file cannot be written: the caller reports it.
    """
    target = environ.get(STEP_SUMMARY)
    if not target:
        return None
    path = Path(target)
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as handle:
        handle.write(markdown + "\n")
    return path


def write_step_summary(
    report: RunReport, fixtures: Fixtures, title: str, environ: Mapping[str, str] = os.environ
) -> str | None:
    """Append the run's job summary when GitHub asks for one; the reason it could not, or None."""
    if not environ.get(STEP_SUMMARY):  # outside GitHub Actions: not even the Markdown is built
        return None
    versions, cases = [v.name for v in fixtures.versions], [c.id for c in fixtures.cases]
    try:
        append_step_summary(step_summary_markdown(report, versions, cases, title), environ)
    except OSError as exc:
        return f"GitHub step summary NOT written: {exc}"
    return None
