"""Errors meant to be shown to a user, each naming the file, the item and the field."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from workshop.text import one_line

SHOWN_PROBLEMS = 20
"""A `FixtureError` message lists this many problems, then says how many more there are and in which files."""
SHOWN_CHARS = {"item": 120, "field": 120, "message": 400}
"""Longest item, field and message a problem line shows: values copied from a huge file stay readable."""


def clip(text: str, limit: int) -> str:
    """At most ``limit`` characters of ``text``, cut in the middle so both ends stay."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


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
            where.append(clip(one_line(self.item), SHOWN_CHARS["item"]))
        if self.field:
            where.append(f"field {clip(self.field, SHOWN_CHARS['field'])!r}")
        return f"{': '.join(where)}: {clip(one_line(self.message), SHOWN_CHARS['message'])}"


class FixtureError(WorkshopError):
    """A fixture file is missing, unreadable or invalid; lists every problem found.

    ``problems`` holds them all; the message shows the first `SHOWN_PROBLEMS`, so a
    file with thousands of bad items gives an error one can read.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = "1 problem" if count == 1 else f"{count} problems"
        lines = [f"  {p}" for p in self.problems[:SHOWN_PROBLEMS]]
        rest = self.problems[SHOWN_PROBLEMS:]
        if rest:
            files = ", ".join(dict.fromkeys(p.file.as_posix() for p in rest))
            lines.append(f"  and {len(rest)} more in {files}")
        super().__init__(f"invalid fixtures ({head}):\n" + "\n".join(lines))


class EvidenceError(WorkshopError):
    """The evidence pack cannot be written where it was asked to go."""
