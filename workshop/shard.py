"""Shards: a deterministic, balanced part of a suite's cells, for spreading a run over CI machines."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple, TypeVar

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")

T = TypeVar("T")


class Shard(NamedTuple):
    """Shard ``index`` of ``count`` (1-based, as CI matrices count: ``--shard 2/3``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        """Read ``K/N``; raise `ValueError` saying what is wrong."""
        match = _SHARD.fullmatch(text)
        if match is None:
            raise ValueError(f"expected K/N such as 2/3, got {text!r}")
        index, count = int(match.group(1)), int(match.group(2))
        if count < 1 or not 1 <= index <= count:
            raise ValueError(f"K/N needs 1 <= K <= N, got {text!r}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def takes(self, position: int) -> bool:
        """Whether the item at ``position`` (0-based, in a fixed order) belongs to this shard.

        Round-robin: shard sizes differ by at most one, and each shard gets every version's
        cells in turn, so a slow version's calls are spread over all shards.
        """
        return position % self.count == self.index - 1

    def part(self, items: Sequence[T]) -> list[T]:
        """This shard's items of ``items``."""
        return list(items[self.index - 1 :: self.count])
