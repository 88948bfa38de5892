"""Tokens, token ids and the tiny teaching vector: the chapter's first picture in code."""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from functools import lru_cache

from pydantic import BaseModel, ConfigDict

TOKEN_ID_SPACE = 10_000
EMBEDDING_WIDTH = 6


_NOT_ASCII_ALNUM = re.compile(r"[^A-Za-z0-9]")


def tokenize(text: str) -> list[str]:
    """Split text into lowercase alphanumeric tokens, exactly as the seed does.

    Lowercasing happens per character, before splitting, so multi-character
    lowercase forms (for example ``"İ"``) stay in one token as in the seed.
    """
    if text.isascii():
        # ASCII lowercasing has no context, and the ASCII alphanumerics are [A-Za-z0-9]:
        # the same result as the seed's loop, without a Python step per character
        return _NOT_ASCII_ALNUM.sub(" ", text).lower().split()
    cleaned = "".join(ch.lower() if ch.isalnum() else " " for ch in text)
    return cleaned.split()


@lru_cache(maxsize=65_536)  # tokens repeat across cases: hashing each once is most of a big trace's cost
def token_id(token: str) -> int:
    """Map a token to a stable id in ``[0, 10000)`` from its SHA-1 digest."""
    # surrogatepass: tokens come from any str; isalnum() drops lone surrogates,
    # but a direct caller may pass one and must get an id, not a crash.
    digest = hashlib.sha1(token.encode("utf-8", "surrogatepass")).hexdigest()
    return int(digest[:6], 16) % TOKEN_ID_SPACE


def tiny_embedding(tokens: Sequence[str], width: int = EMBEDDING_WIDTH) -> list[float]:
    """Count tokens into ``width`` buckets by id and L2-normalise, rounded to 3 places."""
    vector = [0.0] * width
    for token in tokens:
        vector[token_id(token) % width] += 1.0
    norm = math.sqrt(sum(value * value for value in vector)) or 1.0
    return [round(value / norm, 3) for value in vector]


class TokenTrace(BaseModel):
    """One case's text as tokens, ids and tiny vector (a row of ``token_trace.json``)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    tokens: list[str]
    token_ids: list[int]
    tiny_embedding: list[float]


def trace_text(case_id: str, text: str) -> TokenTrace:
    """Build the token trace of one text."""
    tokens = tokenize(text)
    # built from values this module computed, so pydantic's validation would only cost time
    return TokenTrace.model_construct(
        case_id=case_id,
        tokens=tokens,
        token_ids=[token_id(token) for token in tokens],
        tiny_embedding=tiny_embedding(tokens),
    )


class PaddedBatch(BaseModel):
    """A batch of ``input_ids`` padded to one length, with its ``attention_mask``.

    ``attention_mask[i][j]`` is 1 where ``input_ids[i][j]`` is a real token and 0
    where it is padding, as in the chapter's tokenizer picture.
    """

    model_config = ConfigDict(frozen=True)

    input_ids: list[list[int]]
    attention_mask: list[list[int]]
    pad_id: int


def pad_batch(texts: Sequence[str], pad_id: int = 0, max_length: int | None = None) -> PaddedBatch:
    """Tokenize texts and right-pad (or truncate to ``max_length``) into one batch."""
    if max_length is not None and max_length < 0:
        raise ValueError(f"max_length must be >= 0, got {max_length}")
    rows = [[token_id(token) for token in tokenize(text)] for text in texts]
    if max_length is not None:
        rows = [row[:max_length] for row in rows]
    length = max((len(row) for row in rows), default=0) if max_length is None else max_length
    return PaddedBatch(
        input_ids=[row + [pad_id] * (length - len(row)) for row in rows],
        attention_mask=[[1] * len(row) + [0] * (length - len(row)) for row in rows],
        pad_id=pad_id,
    )
