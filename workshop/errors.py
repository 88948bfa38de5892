"""Errors meant to be shown to a user, each naming the file, the item and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class WorkshopError(Exception):
    """Base of the errors this package shows to users as a message, not a traceback."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one fixture file."""

    file: Path
    message: str
    item: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [self.file.as_posix()]
        if self.item:
            where.append(self.item)
        if self.field:
            where.append(f"field {self.field!r}")
        return f"{': '.join(where)}: {self.message}"


class FixtureError(WorkshopError):
    """A fixture file is missing, unreadable or invalid; lists every problem found."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        super().__init__(f"invalid fixtures ({head}):\n" + "\n".join(f"  {p}" for p in self.problems))


class EvidenceError(WorkshopError):
    """The evidence pack cannot be written where it was asked to go."""
