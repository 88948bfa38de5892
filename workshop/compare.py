"""Comparing two runs' evidence packs: which cells changed, how each version's pass count moved, and
which fixture files differ (what may explain the changes).

Both sides are read from ``summary.json`` (`workshop.packs.read_pack`). A cell is one
(prompt version, case); a cell whose model calls failed (an ``errors`` entry) takes part with the
outcome ``error`` and its error as the reason, so a cell that stopped answering is shown, not dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from workshop.packs import PackOutcomes
from workshop.text import markdown_cell, one_line, shorten

ERROR_OUTCOME = "error"
"""The outcome shown for a cell whose model calls failed: it has no result, so it neither passed nor failed."""

SHORT_HASH = 12
"""Leading hex digits of a sha256 shown for a changed fixture file."""

TERMINAL_REASON_CHARS = 120
"""Longest reason a terminal line shows (a reason may quote a whole model answer); the Markdown has it whole."""

ABSENT = "not run"
"""What a side shows for a cell or version that is not in that run."""


class _Side(NamedTuple):
    outcome: str
    reason: str
    passed: bool | None


@dataclass(frozen=True, slots=True)
class CellChange:
    """One (prompt version, case) whose outcome or reason differs between the runs, or that only one run has.

    ``before_*`` are None when only the new run has the cell, ``after_*`` when only the old run has it.
    ``*_passed`` is also None for a cell whose model calls failed (outcome ``error``): it has no result.
    """

    prompt_version: str
    case_id: str
    before_outcome: str | None
    after_outcome: str | None
    before_reason: str | None
    after_reason: str | None
    before_passed: bool | None
    after_passed: bool | None

    @property
    def is_regression(self) -> bool:
        """Passed before, fails now (by ``passed``, whatever the gate called it)."""
        return self.before_passed is True and self.after_passed is False

    @property
    def is_improvement(self) -> bool:
        """Failed before, passes now."""
        return self.before_passed is False and self.after_passed is True

    @property
    def is_reason_change(self) -> bool:
        """Failed in both runs, for a different reason."""
        return self.before_passed is False and self.after_passed is False and self.before_reason != self.after_reason

    @property
    def kind(self) -> str:
        """``regression``, ``improvement``, ``changed reason``, ``added`` (only in the new run),
        ``removed`` (only in the old run) or ``changed`` (anything else, e.g. the gate's outcome
        moved because the baseline changed, or the model calls failed)."""
        if self.before_outcome is None:
            return "added"
        if self.after_outcome is None:
            return "removed"
        if self.is_regression:
            return "regression"
        if self.is_improvement:
            return "improvement"
        if self.is_reason_change:
            return "changed reason"
        return "changed"


@dataclass(frozen=True, slots=True)
class VersionCounts:
    """A prompt version's pass count in each run; None on the side whose run does not have the version."""

    version: str
    before_passed: int | None
    before_total: int | None
    after_passed: int | None
    after_total: int | None

    @property
    def delta(self) -> int | None:
        """Passes gained (negative: lost); None if one run does not have the version."""
        if self.before_passed is None or self.after_passed is None:
            return None
        return self.after_passed - self.before_passed


@dataclass(frozen=True, slots=True)
class FixtureChange:
    """A fixture file (by role) whose sha256 differs, or that only one run had; ``path`` is the new
    run's path for it when it has one, else the old run's."""

    role: str
    before_sha256: str | None
    after_sha256: str | None
    path: str


@dataclass(frozen=True, slots=True)
class PackDiff:
    """Everything that differs between an old and a new run's pack."""

    changes: tuple[CellChange, ...]
    versions: tuple[VersionCounts, ...]
    fixtures: tuple[FixtureChange, ...]
    old_id: str | None
    new_id: str | None

    @property
    def regressions(self) -> tuple[CellChange, ...]:
        """Cells that passed in the old run and fail in the new one."""
        return tuple(change for change in self.changes if change.is_regression)

    @property
    def improvements(self) -> tuple[CellChange, ...]:
        """Cells that failed in the old run and pass in the new one."""
        return tuple(change for change in self.changes if change.is_improvement)

    @property
    def reason_changes(self) -> tuple[CellChange, ...]:
        """Cells that fail in both runs, for a different reason."""
        return tuple(change for change in self.changes if change.is_reason_change)

    @property
    def is_empty(self) -> bool:
        """True if no cell changed (fixture files may still differ: a change with no effect)."""
        return not self.changes


def _sides(pack: PackOutcomes) -> dict[tuple[str, str], _Side]:
    sides = {cell.key: _Side(cell.outcome, cell.reason, cell.passed) for cell in pack.cells}
    for error in pack.errors:
        # a pack never holds a cell both as a result and as an error; if a hand-made one does, the result wins
        sides.setdefault(error.key, _Side(ERROR_OUTCOME, error.error, None))
    return sides


def compare_packs(old: PackOutcomes, new: PackOutcomes) -> PackDiff:
    """What changed from ``old`` to ``new``: cells whose outcome or reason changed or that only one run has
    (in the new run's cell order, then the old run's cells the new run lacks), every version's pass counts,
    and the fixture files whose sha256 differ or that only one run has."""
    before, after = _sides(old), _sides(new)
    changes = []
    for key in [*after, *(key for key in before if key not in after)]:
        was, now = before.get(key), after.get(key)
        if was is not None and now is not None and (was.outcome, was.reason) == (now.outcome, now.reason):
            continue
        changes.append(
            CellChange(
                prompt_version=key[0],
                case_id=key[1],
                before_outcome=was.outcome if was else None,
                after_outcome=now.outcome if now else None,
                before_reason=was.reason if was else None,
                after_reason=now.reason if now else None,
                before_passed=was.passed if was else None,
                after_passed=now.passed if now else None,
            )
        )

    old_versions = {record.version: record for record in old.versions}
    new_versions = {record.version: record for record in new.versions}
    versions = []
    for name in [*new_versions, *(name for name in old_versions if name not in new_versions)]:
        was_v, now_v = old_versions.get(name), new_versions.get(name)
        versions.append(
            VersionCounts(
                version=name,
                before_passed=was_v.passed if was_v else None,
                before_total=was_v.total if was_v else None,
                after_passed=now_v.passed if now_v else None,
                after_total=now_v.total if now_v else None,
            )
        )

    old_files, new_files = old.run.fixtures, new.run.fixtures
    fixtures = []
    for role in [*new_files, *(role for role in old_files if role not in new_files)]:
        was_f, now_f = old_files.get(role), new_files.get(role)
        before_sha = was_f.sha256 if was_f else None
        after_sha = now_f.sha256 if now_f else None
        if before_sha == after_sha:
            continue
        path = now_f.path if now_f else was_f.path if was_f else ""
        fixtures.append(FixtureChange(role, before_sha, after_sha, path))

    return PackDiff(tuple(changes), tuple(versions), tuple(fixtures), old.run.id, new.run.id)


# --------------------------------------------------------------------------- showing a diff


def _plural(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def verdict(diff: PackDiff) -> str:
    """The diff in one line: ``2 regressions, 1 improvement, 1 changed reason`` (then any other kinds of
    change that occurred), or ``No cell changed``."""
    if diff.is_empty:
        return "No cell changed"
    parts = [
        _plural(len(diff.regressions), "regression"),
        _plural(len(diff.improvements), "improvement"),
        _plural(len(diff.reason_changes), "changed reason"),
    ]
    kinds = [change.kind for change in diff.changes]
    for kind, word in (("added", "cell only in the new run"), ("removed", "cell only in the old run")):
        if kinds.count(kind):
            parts.append(_plural(kinds.count(kind), word, word.replace("cell", "cells", 1)))
    if kinds.count("changed"):
        parts.append(_plural(kinds.count("changed"), "other changed cell"))
    return ", ".join(parts)


def _visible(text: str) -> str:
    """``text`` on one line, with lone surrogates (a model may answer with them) as escapes: UTF-8 cannot
    hold them, and a terminal or file write would fail on them."""
    text = one_line(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _cell(text: str) -> str:
    """A pack's value in a Markdown table cell: as text, whatever it holds."""
    return markdown_cell(_visible(text))


def _side_markdown(outcome: str | None, reason: str | None) -> str:
    if outcome is None:
        return ABSENT
    return _cell(f"{outcome}: {reason}")


def _count(passed: int | None, total: int | None) -> str:
    return ABSENT if passed is None or total is None else f"{passed}/{total}"


def _short(sha256: str | None) -> str:
    return f"`{_cell(sha256[:SHORT_HASH])}`" if sha256 else "absent"


def _run_label(label: str, run_id: str | None) -> str:
    return _cell(label) + (f" (run {_cell(run_id)})" if run_id else "")


def render_diff_markdown(diff: PackDiff, old_label: str, new_label: str) -> str:
    """The diff as a Markdown document: a verdict line, pass counts by version, the changed cells and the
    fixture files that changed. Every value taken from a pack stays inside its table cell or list item."""
    lines = [
        "# Evidence diff",
        "",
        f"Before: {_run_label(old_label, diff.old_id)}  ",
        f"After: {_run_label(new_label, diff.new_id)}",
        "",
        f"**{verdict(diff)}**",
        "",
        "## Pass counts by version",
        "",
    ]
    if diff.versions:
        lines += ["| version | before | after | delta |", "|---|---|---|---|"]
        for counts in diff.versions:
            delta = "—" if counts.delta is None else f"{counts.delta:+d}" if counts.delta else "0"
            before = _count(counts.before_passed, counts.before_total)
            after = _count(counts.after_passed, counts.after_total)
            lines.append(f"| {_cell(counts.version)} | {before} | {after} | {delta} |")
    else:
        lines.append("Neither run evaluated a prompt version.")
    lines += ["", "## Changed cells", ""]
    if diff.changes:
        lines += ["| version | case | before | after |", "|---|---|---|---|"]
        for change in diff.changes:
            before = _side_markdown(change.before_outcome, change.before_reason)
            after = _side_markdown(change.after_outcome, change.after_reason)
            lines.append(f"| {_cell(change.prompt_version)} | {_cell(change.case_id)} | {before} | {after} |")
    else:
        lines.append("No cell changed.")
    lines += ["", "## Fixture changes that may explain them", ""]
    if diff.fixtures:
        for fixture in diff.fixtures:
            before, after = _short(fixture.before_sha256), _short(fixture.after_sha256)
            lines.append(f"- {_cell(fixture.role)} ({_cell(fixture.path)}): {before} -> {after}")
    else:
        # without a fixture change, what changed is the model's answers, the code or the environment
        lines.append(
            "No fixture file changed."
            if diff.is_empty
            else "No fixture file changed: the change came from the model, the code or the environment."
        )
    return "\n".join(lines) + "\n"


def _side_terminal(outcome: str | None, reason: str | None) -> str:
    if outcome is None or reason is None:
        return ABSENT
    text = f"{ERROR_OUTCOME}: {reason}" if outcome == ERROR_OUTCOME else reason
    return shorten(_visible(text), TERMINAL_REASON_CHARS)


_KIND_ORDER = ("regression", "improvement", "changed reason", "added", "removed", "changed")


def change_lines(diff: PackDiff, limit: int = 10) -> list[str]:
    """A few terminal lines for the run's summary: the verdict since the old run, then up to ``limit``
    changed cells (regressions first), then the changed fixture roles."""
    since = f"Since run {_visible(diff.old_id)}" if diff.old_id else "Since the previous run"
    if diff.is_empty:
        return [f"{since}: no cell changed"]
    lines = [f"{since}: {verdict(diff)}"]
    # the worst news first: a long list is cut, and a regression must not be what is cut
    ordered = sorted(diff.changes, key=lambda change: _KIND_ORDER.index(change.kind))
    for change in ordered[: max(limit, 0)]:
        before = _side_terminal(change.before_outcome, change.before_reason)
        after = _side_terminal(change.after_outcome, change.after_reason)
        where = f"{_visible(change.prompt_version)} / {_visible(change.case_id)}"
        lines.append(f"  {change.kind}: {where}: {before} -> {after}")
    if len(ordered) > limit:
        lines.append(f"  and {_plural(len(ordered) - max(limit, 0), 'more changed cell')}")
    if diff.fixtures:
        lines.append("  changed fixtures: " + ", ".join(_visible(fixture.role) for fixture in diff.fixtures))
    return lines
