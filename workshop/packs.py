"""Reading evidence packs back: a pack's ``summary.json`` as typed data, for merging and comparing runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from workshop.errors import WorkshopError
from workshop.evidence import SUMMARY
from workshop.summary import SUMMARY_FORMAT
from workshop.text import shorten


class PackError(WorkshopError):
    """A folder is not an evidence pack this version can read, or packs cannot be combined."""


class _Record(BaseModel):
    # extra fields are allowed: a newer pack may hold more than this version reads
    model_config = ConfigDict(frozen=True, extra="allow")


class FixtureFileRecord(_Record):
    """One fixture file of a run, by its role: where it was and its sha256."""

    path: str
    sha256: str


class CellRecord(_Record):
    """One (prompt version, case) result, as ``summary.json`` holds it."""

    prompt_version: str
    case_id: str
    passed: bool
    reason: str
    outcome: str
    pass_rate: float
    trials: int
    review_flag: bool | None
    input_tokens: int | None
    output_tokens: int | None
    raw_output: str

    @property
    def key(self) -> tuple[str, str]:
        return (self.prompt_version, self.case_id)

    @property
    def cell_id(self) -> str:
        return f"{self.prompt_version}-{self.case_id}"


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
    command: list[str] = []
    fixtures: dict[str, FixtureFileRecord]
    latency_s: dict[str, float | None] = {}


class PackSummary(_Record):
    """A pack's ``summary.json``."""

    format: int
    complete: bool
    selection: SelectionRecord
    gate: GateRecord
    versions: list[VersionRecord]
    cells: list[CellRecord]
    errors: list[ErrorRecord]
    missing: list[str]
    analysis: Any = None
    run: RunRecord

    @property
    def fixture_hashes(self) -> dict[str, str]:
        """sha256 of each fixture file, by role."""
        return {role: record.sha256 for role, record in self.run.fixtures.items()}


def read_pack(folder: Path) -> PackSummary:
    """Read the ``summary.json`` of the pack in ``folder``; raise `PackError` naming the folder."""
    path = folder / SUMMARY
    if not folder.is_dir():
        raise PackError(f"{folder}: not a folder (expected an evidence pack such as reports/evidence)")
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise PackError(f"{folder}: no {SUMMARY}; is this an evidence pack written by pytest?") from None
    except (OSError, ValueError) as exc:  # JSONDecodeError, UnicodeDecodeError, an integer too long to read
        raise PackError(f"{path}: cannot read it: {shorten(str(exc), 200)}") from None
    except RecursionError:
        raise PackError(f"{path}: cannot read it: nested too deeply") from None
    found = data.get("format") if isinstance(data, dict) else None
    if found != SUMMARY_FORMAT:
        raise PackError(
            f"{path}: summary format {found!r}, this version reads format {SUMMARY_FORMAT}; "
            "run the suite again with this version to get a pack it can read"
        )
    try:
        return PackSummary.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PackError(f"{path}: {where}: {first['msg']} ({exc.error_count()} problem(s))") from None
