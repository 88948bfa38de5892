"""Reading evidence packs back: a pack's ``summary.json`` as typed data, for merging and comparing runs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar, overload

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.dataclasses import dataclass

from workshop.errors import WorkshopError
from workshop.evidence import SUMMARY
from workshop.summary import SUMMARY_FORMAT
from workshop.text import shorten


class PackError(WorkshopError):
    """A folder is not an evidence pack this version can read, or packs cannot be combined."""


# a newer pack may hold more than this version reads: ignored, and never turned into objects
_RECORD_CONFIG = ConfigDict(extra="ignore")


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, **_RECORD_CONFIG)


class FixtureFileRecord(_Record):
    """One fixture file of a run, by its role: where it was and its sha256."""

    path: str
    sha256: str


# Cells are slotted dataclasses, not models: a pack holds tens of thousands, and each model instance
# costs about ten times the memory (30 MB against 3 MB for 30,000 cells, measured).
@dataclass(frozen=True, slots=True, config=_RECORD_CONFIG)
class CellOutcomeRecord:
    """One (prompt version, case) result's outcome: what comparing two runs needs."""

    prompt_version: str
    case_id: str
    passed: bool
    reason: str
    outcome: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.prompt_version, self.case_id)

    @property
    def cell_id(self) -> str:
        return f"{self.prompt_version}-{self.case_id}"


@dataclass(frozen=True, slots=True, config=_RECORD_CONFIG)
class CellRecord(CellOutcomeRecord):
    """One (prompt version, case) result, as ``summary.json`` holds it: what a merge needs."""

    pass_rate: float
    trials: int
    review_flag: bool | None
    input_tokens: int | None
    output_tokens: int | None
    raw_output: str


class ErrorRecord(_Record):
    """A cell whose model calls failed: no result."""

    prompt_version: str
    case_id: str
    error: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.prompt_version, self.case_id)


class VersionRecord(_Record):
    """One version's pass counts and token use."""

    version: str
    passed: int
    total: int
    pass_at_1: float
    pass_all: float
    input_tokens: int | None
    output_tokens: int | None


class SelectionRecord(_Record):
    """What the run set out to evaluate."""

    ran: int
    selected: int
    total: int
    keyword: str | None
    shard: str | None = None


class GateRecord(_Record):
    """The gate's verdict."""

    mode: str
    verdict: str
    regressions: list[str]
    improvements: list[str]
    new_failures: list[str]
    known_failures: int
    errors: int


class RunRecord(_Record):
    """Facts of the run itself (they differ between runs of the same fixtures)."""

    id: str | None = None
    time: str | None = None
    git_commit: str | None = None
    command: list[str] = []
    fixtures: dict[str, FixtureFileRecord]
    latency_s: dict[str, float | None] = {}


class PackOutcomes(_Record):
    """A pack's ``summary.json`` without what only a merge needs (raw outputs, analysis): light to read
    for comparing runs, even at tens of thousands of cells."""

    format: int
    complete: bool
    selection: SelectionRecord
    gate: GateRecord
    versions: list[VersionRecord]
    cells: Sequence[CellOutcomeRecord]
    errors: list[ErrorRecord]
    missing: list[str]
    run: RunRecord

    @property
    def fixture_hashes(self) -> dict[str, str]:
        """sha256 of each fixture file, by role."""
        return {role: record.sha256 for role, record in self.run.fixtures.items()}


class PackSummary(PackOutcomes):
    """A pack's whole ``summary.json``."""

    cells: Sequence[CellRecord]
    analysis: Any = None


P = TypeVar("P", bound=PackOutcomes)


@overload
def read_pack(folder: Path) -> PackSummary: ...
@overload
def read_pack(folder: Path, kind: type[P]) -> P: ...
def read_pack(folder: Path, kind: type[PackOutcomes] = PackSummary) -> PackOutcomes:
    """Read the ``summary.json`` of the pack in ``folder`` as ``kind`` (all of it by default);
    raise `PackError` naming the folder."""
    path = folder / SUMMARY
    if not folder.is_dir():
        raise PackError(f"{folder}: not a folder (expected an evidence pack such as reports/evidence)")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PackError(f"{folder}: no {SUMMARY}; is this an evidence pack written by pytest?") from None
    except OSError as exc:
        raise PackError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    try:
        # straight from JSON: fields ``kind`` does not hold (raw outputs, for one) never become objects
        summary = kind.model_validate_json(raw)
    except ValidationError as exc:
        _check_format(path, raw)
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PackError(f"{path}: {where}: {shorten(first['msg'], 200)} ({exc.error_count()} problem(s))") from None
    if summary.format != SUMMARY_FORMAT:
        raise PackError(_format_message(path, summary.format))
    return summary


def _format_message(path: Path, found: object) -> str:
    return (
        f"{path}: summary format {found!r}, this version reads format {SUMMARY_FORMAT}; "
        "run the suite again with this version to get a pack it can read"
    )


def _check_format(path: Path, raw: bytes) -> None:
    """Raise the clearest `PackError` for a summary that did not validate: not JSON, or another format."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, an integer too long, too deep
        message = "nested too deeply" if isinstance(exc, RecursionError) else shorten(str(exc), 200)
        raise PackError(f"{path}: cannot read it: {message}") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != SUMMARY_FORMAT:
        raise PackError(_format_message(path, found))
