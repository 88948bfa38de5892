"""Run history: each run's pack also kept under ``<history dir>/<run id>/``, the newest few of them,
so a run can be compared with the one before it (`workshop.compare`).

Pruning deletes only what history itself wrote: folders named by a run id (`RUN_ID_PATTERN`) that
hold nothing but pack files, and the lock files `workshop.evidence.write_pack` left beside them.
Whatever else is in the history folder stays, so pointing it at the wrong folder cannot delete work.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

from workshop.errors import EvidenceError
from workshop.evidence import PACK_FILES, lock_path, write_pack
from workshop.packs import PackError, PackOutcomes, read_pack

RUN_ID_PATTERN = re.compile(r"[0-9]{8}T[0-9]{6}\.[0-9]{6}Z-[0-9a-f]{6}")
"""A run id as `workshop.summary.new_run_id` makes it (``20261204T180512.123456Z-3f9a1c``): sorts by time.
Use ``fullmatch``."""

SUITE_ROLES = ("cases", "prompts")
"""Fixture roles whose paths say two runs ran the same suite (their contents may differ)."""


def _is_run_pack(folder: Path) -> bool:
    """A folder history wrote: named by a run id, holding only pack files (no symlinked folder: never follow)."""
    if not RUN_ID_PATTERN.fullmatch(folder.name) or folder.is_symlink() or not folder.is_dir():
        return False
    try:
        return all(entry.is_file() and entry.name in PACK_FILES for entry in folder.iterdir())
    except OSError:
        return False


def _remove(folder: Path) -> None:
    # another run pruning the same history at the same time may get there first, and finishes the job
    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(folder)


def keep_run(history_dir: Path, run_id: str, files: Mapping[str, bytes], keep: int) -> Path | None:
    """Write the pack ``files`` as ``history_dir/run_id`` (atomically), then delete all but the newest
    ``keep`` run packs (by run id, i.e. by time; the run just written is never deleted). Returns the folder
    written, or None when ``keep`` is 0 (history off: nothing is written or deleted).

    Raises `EvidenceError` when the history cannot be written or pruned; the run's own pack is written
    elsewhere and is not affected. Raises `ValueError` for a negative ``keep`` or a ``run_id`` unlike
    `workshop.summary.new_run_id`'s (history could neither prune nor find it).
    """
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, not {keep}")
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ValueError(f"not a run id: {run_id!r}")
    if keep == 0:
        return None
    target = history_dir / run_id
    try:
        write_pack(target, files)
    except EvidenceError as exc:
        raise EvidenceError(f"cannot keep this run in the history folder {history_dir}: {exc}") from None
    _prune(history_dir, keep, run_id)
    return target


def _prune(history_dir: Path, keep: int, current: str) -> None:
    try:
        runs = sorted((entry for entry in history_dir.iterdir() if _is_run_pack(entry)), key=lambda p: p.name)
        for folder in runs[: max(len(runs) - keep, 0)]:
            if folder.name == current:
                # older than the kept runs (a clock set back?): still this run's pack, which the caller just got
                continue
            _remove(folder)
            # write_pack's lock file for this run: only that run's writer ever used it
            lock_path(folder).unlink(missing_ok=True)
        kept = [run.name for run in runs[max(len(runs) - keep, 0) :]]
        _remove_stale_staging(history_dir, oldest_kept=min([*kept, current]))
    except OSError as exc:
        raise EvidenceError(
            f"cannot remove old runs from the history folder {history_dir}: {exc.strerror or exc}"
        ) from None


_STAGING = re.compile(rf"\.({RUN_ID_PATTERN.pattern})\.(new|old)-[A-Za-z0-9_]+")


def _remove_stale_staging(history_dir: Path, oldest_kept: str) -> None:
    """Staging folders that `write_pack` left when a run was killed while keeping its history. Only
    those of runs older than every kept run: a run writing its history right now is newer."""
    for entry in history_dir.iterdir():
        match = _STAGING.fullmatch(entry.name)
        if match and match.group(1) < oldest_kept and entry.is_dir() and not entry.is_symlink():
            _remove(entry)


class PreviousRun(NamedTuple):
    """The run before this one of the same suite: its history folder and what it found."""

    folder: Path
    pack: PackOutcomes


def previous_run(history_dir: Path, roles_paths: Mapping[str, str], before: str) -> PreviousRun | None:
    """The newest run pack in ``history_dir`` older than the run id ``before`` that ran the same suite:
    its ``cases`` and ``prompts`` fixture paths equal those in ``roles_paths`` (their contents may differ;
    the diff shows which did). Folders that cannot be read as packs are skipped; None if none fits.
    The pack comes back as read, outcomes only, so the caller need not read it again."""
    wanted = {role: roles_paths.get(role) for role in SUITE_ROLES}
    try:
        names = sorted(
            (entry.name for entry in history_dir.iterdir() if RUN_ID_PATTERN.fullmatch(entry.name)), reverse=True
        )
    except OSError:
        # no history yet (or none readable): nothing to compare with
        return None
    for name in names:
        if name >= before:
            continue
        folder = history_dir / name
        try:
            pack = read_pack(folder, PackOutcomes)
        except PackError:  # read_pack turns every unreadable summary (I/O, JSON, format) into this
            continue
        found = {role: record.path if (record := pack.run.fixtures.get(role)) else None for role in SUITE_ROLES}
        if found == wanted:
            return PreviousRun(folder, pack)
    return None
