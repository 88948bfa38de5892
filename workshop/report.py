"""HTML pieces for the pytest-html report: extra columns, row extras and the summary matrix.

pytest-html inserts all of these as raw HTML, so every piece of text that came from
a fixture or a model goes through `html.escape` here, and nowhere is skipped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from workshop.analysis import Analysis
from workshop.evaluation import EvalResult, VersionScore
from workshop.gate import CellOutcome, Outcome
from workshop.suite import RunReport
from workshop.text import one_line, some

EXTRA_TEXT_LIMIT = 4000
COLUMNS = (("version", "Prompt version"), ("case", "Case"), ("reason", "Reason"))

_CELL_STYLE = {
    Outcome.PASSED: ("pass", "#1a7f37"),
    Outcome.NEW: ("new: pass", "#1a7f37"),
    Outcome.KNOWN_FAILURE: ("known failure", "#9a6700"),
    Outcome.REGRESSION: ("REGRESSION", "#cf222e"),
    Outcome.IMPROVEMENT: ("improvement", "#0969da"),
    Outcome.NEW_FAILURE: ("new: FAIL", "#cf222e"),
    Outcome.FAILED: ("FAIL", "#cf222e"),
}


OUTCOME_LABELS = {outcome: label for outcome, (label, _) in _CELL_STYLE.items()}
"""How each outcome is named wherever a run is shown (this report, the job summary)."""


def header_cells() -> list[str]:
    """Header cells of the extra sortable columns."""
    return [f'<th class="sortable" data-column-type="{key}">{title}</th>' for key, title in COLUMNS]


def row_cells(result: Mapping[str, Any] | None) -> list[str]:
    """Row cells of the extra columns; empty for tests that are not prompt evaluations."""
    values = ("", "", "") if result is None else (result["prompt_version"], result["case_id"], result["reason"])
    # one line each: pytest-html reads sortable cells with a single-line regex
    return [
        f'<td class="col-{key}">{escape(one_line(value))}</td>' for (key, _), value in zip(COLUMNS, values, strict=True)
    ]


def _shorten(text: str, limit: int = EXTRA_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"\n… ({len(text) - limit} more characters)"


def result_extra_html(result: EvalResult, with_payload: bool = True) -> str:
    """The request payload and raw model output of one evaluation, shown as text.

    At scale the payload is left out (``with_payload=False``): it is the fixtures' text, the
    same for every case of a version, and it doubles the report's size.
    """
    payload = json.dumps(result.payload.as_dict(), indent=2, ensure_ascii=False) if with_payload else ""
    answered = result.shown_trial.completion
    facts = [f"expected intent: {result.expected_intent}"]
    if len(result.trials) > 1:
        facts.append(f"trials passed: {sum(t.passed for t in result.trials)}/{len(result.trials)}")
    if answered.model and answered.model != result.payload.model:
        facts.append(f"model answered: {answered.model}")
    if result.input_tokens is not None:
        facts.append(f"tokens in/out: {result.input_tokens}/{result.output_tokens}")
    if answered.replayed:
        facts.append("replayed from a recording")
    shown_payload = f"<p><strong>Request payload</strong></p><pre>{escape(_shorten(payload))}</pre>" if payload else ""
    return (
        f'<div class="workshop-extra"><p>{escape("; ".join(facts))}</p>{shown_payload}'
        f"<p><strong>Raw model output</strong></p><pre>{escape(_shorten(result.raw_output))}</pre></div>"
    )


def _matrix_cell(outcome: CellOutcome | None, error: str | None) -> str:
    if error is not None:
        return f'<td style="color:#cf222e;font-weight:600" title="{escape(error, quote=True)}">ERROR</td>'
    if outcome is None:
        return '<td style="color:#6e7781">not run</td>'
    label, color = _CELL_STYLE[outcome.outcome]
    title = escape(outcome.reason, quote=True)
    return f'<td style="color:{color};font-weight:600" title="{title}">{escape(label)}</td>'


def _usage_cells(score: VersionScore | None, repeats: bool, usage: bool) -> str:
    cells = ""
    if repeats:
        shown = f"{score.pass_at_1:.2f} / {score.pass_all:.2f}" if score else ""
        cells += f"<td>{escape(shown)}</td>"
    if usage:
        tokens = f"{score.input_tokens or 0} / {score.output_tokens or 0}" if score else ""
        latency = f"{score.latency_s:.2f} s" if score and score.latency_s is not None else ""
        cells += f"<td>{escape(tokens)}</td><td>{escape(latency)}</td>"
    return cells


MATRIX_MAX_CASES = 40
"""Above this many cases the matrix counts outcomes per version instead of showing a column per case."""


def summary_matrix(report: RunReport, versions: Sequence[str], cases: Sequence[str], folded: int = 0) -> str:
    """A versions-by-cases table of outcomes with pass counts (and, for real models, pass rates over
    repeated trials, tokens and latency per version), and the gate's verdict.

    ``folded`` passing evaluations have no row in the results table; the matrix says so.
    """
    if len(cases) > MATRIX_MAX_CASES:
        return _outcome_counts(report, versions, folded)
    by_cell = {(o.prompt_version, o.case_id): o for o in report.outcomes}
    errors = {(version, case): error for version, case, error in report.errors}
    scores = {score.version: score for score in report.scores}
    repeats = any(len(result.trials) > 1 for result in report.results)
    usage = any(score.input_tokens is not None or score.latency_s is not None for score in report.scores)
    head = "<th>pass@1 / pass^N</th>" if repeats else ""
    head += "<th>tokens in / out</th><th>latency</th>" if usage else ""
    head += "".join(f"<th>{escape(case)}</th>" for case in cases)
    rows = []
    for version in versions:
        score = scores.get(version)
        count = f"{score.passed}/{score.total}" if score else "not run"
        cells = "".join(_matrix_cell(by_cell.get((version, case)), errors.get((version, case))) for case in cases)
        extra = _usage_cells(score, repeats, usage)
        rows.append(f"<tr><th>{escape(version)}</th><td>{escape(count)}</td>{extra}{cells}</tr>")
    verdict = report.verdict
    color = "#1a7f37" if verdict.passed else "#cf222e"
    analysis = analysis_html(report.analysis) if report.analysis else ""
    return (
        '<div class="workshop-matrix"><h2>Prompt evaluation</h2>'
        f'<p style="color:{color};font-weight:600">{escape(verdict.summary_line())}</p>'
        '<table style="border-collapse:collapse" border="1" cellpadding="4">'
        f"<tr><th>Prompt version</th><th>Passed</th>{head}</tr>{''.join(rows)}</table>"
        f"{_folded_note(folded)}{analysis}</div>"
    )


def _folded_note(folded: int) -> str:
    if not folded:
        return ""
    return (
        f"<p>{folded} evaluations that passed or failed as the baseline expects are counted here and kept in "
        "the evidence pack (<code>prompt_eval.csv</code>, <code>failure_cases.md</code>), not listed as rows "
        "below; every regression, improvement, new failure and error has its row.</p>"
    )


def outcome_counts(report: RunReport, versions: Sequence[str]) -> dict[str, dict[Outcome, int]]:
    """How many cells of each version had each outcome (every outcome, in `OUTCOME_LABELS` order)."""
    counts: dict[str, dict[Outcome, int]] = {version: dict.fromkeys(OUTCOME_LABELS, 0) for version in versions}
    for outcome in report.outcomes:
        counts.setdefault(outcome.prompt_version, dict.fromkeys(OUTCOME_LABELS, 0))[outcome.outcome] += 1
    return counts


def _outcome_counts(report: RunReport, versions: Sequence[str], folded: int) -> str:
    kinds = list(OUTCOME_LABELS)
    counts = outcome_counts(report, versions)
    errors: dict[str, int] = {}
    for version, _, _ in report.errors:
        errors[version] = errors.get(version, 0) + 1
    shown = [kind for kind in kinds if any(counts[v][kind] for v in counts)]
    scores = {score.version: score for score in report.scores}
    rows = []
    for version in versions:
        score = scores.get(version)
        cells = [version, f"{score.passed}/{score.total}" if score else "not run"]
        cells += [str(counts[version][kind]) for kind in shown]
        rows.append([*cells, str(errors.get(version, 0))] if errors else cells)
    header = ["Prompt version", "Passed", *(_CELL_STYLE[kind][0] for kind in shown)]
    header += ["ERROR"] if errors else []
    verdict = report.verdict
    color = "#1a7f37" if verdict.passed else "#cf222e"
    note = _folded_note(folded)
    analysis = analysis_html(report.analysis) if report.analysis else ""
    return (
        '<div class="workshop-matrix"><h2>Prompt evaluation</h2>'
        f'<p style="color:{color};font-weight:600">{escape(verdict.summary_line())}</p>'
        f"{_table('Outcomes per version', header, rows)}{note}{analysis}</div>"
    )


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return (
        f"<h3>{escape(title)}</h3>"
        f'<table style="border-collapse:collapse" border="1" cellpadding="4"><tr>{head}</tr>{body}</table>'
    )


def analysis_html(analysis: Analysis) -> str:
    """The failure analysis, version diff, review boundary and next steps as escaped tables."""
    parts = []
    if analysis.groups:
        rows = [
            [g.type, str(len(g.cells)), ", ".join(f"{v}: {n}" for v, n in g.by_version.items()), g.meaning,
             f"{g.route or 'not a prompt change'}: {g.next_change}"]
            for g in analysis.groups
        ]  # fmt: skip
        parts.append(_table("Failures by reason", ["reason", "count", "by version", "means", "next change"], rows))
    if analysis.diffs:
        rows = [
            [d.version, d.previous, some([c for c, _ in d.fixed], 20) or "none",
             some([c for c, _ in d.broken], 20) or "none", some([c for c, _, _ in d.changed], 20) or "none"]
            for d in analysis.diffs
        ]  # fmt: skip
        parts.append(
            _table("Version to version", ["version", "compared with", "fixed", "broke", "reason changed"], rows)
        )
    if analysis.review:
        header = ["version", "flagged correctly", "missed", "over-flagged", "correctly not flagged", "not judged"]
        rows = [
            [r.version, str(r.flagged), str(r.missed), str(r.over_flagged), str(r.cleared), str(r.unjudged)]
            for r in analysis.review
        ]
        parts.append(_table("Human-review boundary", header, rows))
    if analysis.next_steps:
        rows = [
            [s.version, f"{s.passed}/{s.total}", s.route or "fix the run",
             " | ".join(f"{a.topic} ({len(a.cases)} cases): {a.next_change}" for a in s.advice)]
            for s in analysis.next_steps
        ]  # fmt: skip
        parts.append(_table("Next steps", ["version", "passed", "next route", "why"], rows))
    return "".join(parts)


STANDALONE_ROWS = 2000
"""Cells a standalone report lists row by row (those that need a look first); the pack has every one."""

_NEEDS_A_LOOK = (Outcome.REGRESSION, Outcome.NEW_FAILURE, Outcome.FAILED, Outcome.IMPROVEMENT, Outcome.KNOWN_FAILURE)


def standalone_report(report: RunReport, versions: Sequence[str], cases: Sequence[str], title: str) -> str:
    """A self-contained HTML page of a run without pytest-html (a merge of shard packs): the matrix,
    the analysis, and a row per cell that did not simply pass, with its reason and raw output as text.

    Its Content-Security-Policy allows no script and no request at all, on top of the escaping.
    """
    order = {outcome: rank for rank, outcome in enumerate(_NEEDS_A_LOOK)}
    by_key = {(r.prompt_version, r.case_id): r for r in report.results}
    listed = sorted((o for o in report.outcomes if o.outcome in order), key=lambda o: order[o.outcome])[
        :STANDALONE_ROWS
    ]
    rows = "".join(
        f"<tr><td>{escape(o.prompt_version)}</td><td>{escape(o.case_id)}</td>"
        f"<td>{escape(OUTCOME_LABELS[o.outcome])}</td><td>{escape(one_line(o.reason))}</td>"
        f"<td><pre>{escape(_shorten(by_key[(o.prompt_version, o.case_id)].raw_output))}</pre></td></tr>"
        for o in listed
    )
    errors = "".join(
        f"<tr><td>{escape(v)}</td><td>{escape(c)}</td><td>ERROR</td><td>{escape(one_line(e))}</td><td></td></tr>"
        for v, c, e in report.errors
    )
    more = sum(o.outcome in order for o in report.outcomes) - len(listed)
    note = f"<p>{more} more cells are listed in the evidence pack (prompt_eval.csv).</p>" if more > 0 else ""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f'<title>{escape(title)}</title></head><body style="font-family:sans-serif">'
        f"<h1>{escape(title)}</h1>{summary_matrix(report, versions, cases)}"
        '<h2>Cells to look at</h2><table class="workshop-cells" style="border-collapse:collapse" border="1" '
        'cellpadding="4"><tr><th>Prompt version</th><th>Case</th><th>Outcome</th><th>Reason</th>'
        f"<th>Raw model output</th></tr>{errors}{rows}</table>{note}</body></html>\n"
    )
