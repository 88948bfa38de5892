"""What the evaluation needs of a model: a payload in, a completion out."""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol

from workshop.errors import WorkshopError
from workshop.fixtures import Case
from workshop.payload import Payload


class Completion(NamedTuple):
    """One model answer: its raw text and what the call cost."""

    text: str
    model: str | None = None
    """The model name the API answered with (may differ from the one asked for)."""
    input_tokens: int | None = None
    output_tokens: int | None = None
    latency_s: float | None = None
    refusal: str | None = None
    """The model's refusal message, when it refused instead of answering."""
    truncated: bool = False
    """True when the answer stopped at ``max_output_tokens``."""
    replayed: bool = False
    """True when the answer came from a recording, not from a call."""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data."""
        return self._asdict()


class ProviderError(WorkshopError):
    """A model call failed after its last attempt: not a prompt failure, the cell has no result."""


class Model(Protocol):
    """A model the suite can evaluate: the fake model, or a real provider."""

    def complete(self, payload: Payload, case: Case) -> Completion:
        """Answer one request; the text is returned unvalidated. Raises `ProviderError`."""
        ...
