"""What the evaluation needs of a model: text in (a payload), text out."""

from __future__ import annotations

from typing import Protocol

from workshop.fixtures import Case
from workshop.payload import Payload


class Model(Protocol):
    """A model the suite can evaluate: the fake model, or a real provider."""

    def complete(self, payload: Payload, case: Case) -> str:
        """Answer one request; return the raw output text, unvalidated."""
        ...
