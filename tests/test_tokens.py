"""Tokens, token ids and the tiny vector: the seed's STEP 1, exactly."""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workshop.tokens import pad_batch, tiny_embedding, token_id, tokenize, trace_text

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = json.loads((GOLDEN.parents[1] / "cases" / "cases.json").read_text(encoding="utf-8"))["cases"]

# any str at all, lone surrogates included
ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()))


def seed_tokenize(text: str) -> list[str]:
    cleaned = "".join(ch.lower() if ch.isalnum() else " " for ch in text)
    return [token for token in cleaned.split() if token]


def golden_step1() -> dict[str, dict[str, list]]:
    """The seed's printed STEP 1 lines: first 8 tokens and ids, and the whole vector."""
    lines = (GOLDEN / "console.txt").read_text(encoding="utf-8").splitlines()
    pattern = re.compile(r"^(\w+) tokens=(\[.*?\]) ids=(\[.*?\]) vector=(\[.*?\])$")
    rows = {}
    for line in lines[1:4]:
        match = pattern.match(line)
        assert match, line
        rows[match[1]] = {key: ast.literal_eval(match[i]) for i, key in enumerate(("tokens", "ids", "vector"), 2)}
    return rows


def test_step1_matches_the_seeds_printed_values():
    printed = golden_step1()
    assert list(printed) == [case["id"] for case in CASES]
    for case in CASES:
        tokens = tokenize(case["user_input"])
        assert tokens[:8] == printed[case["id"]]["tokens"]
        assert [token_id(t) for t in tokens[:8]] == printed[case["id"]]["ids"]
        assert tiny_embedding(tokens) == printed[case["id"]]["vector"]


def test_trace_text_matches_the_seeds_token_trace_file():
    golden = json.loads((GOLDEN / "token_trace.json").read_text(encoding="utf-8"))
    traces = [trace_text(case["id"], case["user_input"]).model_dump() for case in CASES]
    assert traces == golden


def test_case_1_in_full():
    tokens = tokenize(CASES[0]["user_input"])
    assert tokens == [
        "i",
        "understand",
        "tokens",
        "but",
        "not",
        "attention",
        "give",
        "me",
        "a",
        "short",
        "study",
        "plan",
    ]
    assert [token_id(t) for t in tokens] == [3860, 5684, 9523, 2631, 3109, 1613, 4738, 9496, 5284, 8458, 4708, 7505]


def test_tokenize_splits_on_punctuation_and_lowercases():
    assert tokenize("topic=LoRA, risk=overfitting.") == ["topic", "lora", "risk", "overfitting"]
    assert tokenize("fine-tune") == ["fine", "tune"]
    assert tokenize("") == []
    assert tokenize(" \t\n!?") == []


def test_lowercasing_happens_per_character_like_the_seed():
    # "İ".lower() is two characters (i + combining dot); the seed keeps them in one token
    assert tokenize("İstanbul") == ["i\u0307stanbul"]
    assert tokenize("İstanbul") == seed_tokenize("İstanbul")


def test_token_id_accepts_a_lone_surrogate():
    assert 0 <= token_id("\ud800") < 10_000


def test_empty_embedding_is_all_zero():
    assert tiny_embedding([]) == [0.0] * 6
    assert tiny_embedding([], width=3) == [0.0] * 3


def test_embedding_counts_tokens_into_buckets_by_id():
    token = "attention"
    vector = tiny_embedding([token, token])
    expected = [0.0] * 6
    expected[token_id(token) % 6] = 1.0
    assert vector == expected


@given(ANY_TEXT)
def test_tokenize_equals_the_seed_expression_for_any_text(text):
    assert tokenize(text) == seed_tokenize(text)


@given(ANY_TEXT)
def test_ids_and_embedding_are_well_formed_for_any_text(text):
    tokens = tokenize(text)
    ids = [token_id(token) for token in tokens]
    assert all(isinstance(i, int) and 0 <= i < 10_000 for i in ids)
    vector = tiny_embedding(tokens)
    assert len(vector) == 6
    if tokens:
        # each component is rounded to 3 places: the norm is 1 up to sqrt(6) * 0.0005
        assert math.sqrt(sum(v * v for v in vector)) == pytest.approx(1.0, abs=0.002)
        assert all(v >= 0 for v in vector)
    else:
        assert vector == [0.0] * 6


@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=20))
def test_token_id_is_in_range_for_any_token(token):
    assert 0 <= token_id(token) < 10_000


# --- pad_batch ---------------------------------------------------------------


def test_pad_batch_pads_to_the_longest_row_with_an_attention_mask():
    batch = pad_batch(["a b c", "d", ""], pad_id=-1)
    ids = [[token_id(t) for t in tokenize(text)] for text in ["a b c", "d"]]
    assert batch.input_ids == [ids[0], ids[1] + [-1, -1], [-1, -1, -1]]
    assert batch.attention_mask == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert batch.pad_id == -1


def test_pad_batch_default_pad_id_is_zero():
    batch = pad_batch(["one two", "three"])
    assert batch.input_ids[1][1] == 0
    assert batch.attention_mask == [[1, 1], [1, 0]]


def test_pad_batch_truncates_to_max_length():
    batch = pad_batch(["a b c d", "e"], max_length=2)
    assert batch.input_ids == [[token_id("a"), token_id("b")], [token_id("e"), 0]]
    assert batch.attention_mask == [[1, 1], [1, 0]]


def test_pad_batch_pads_up_to_a_max_length_longer_than_every_row():
    batch = pad_batch(["a"], max_length=3)
    assert batch.input_ids == [[token_id("a"), 0, 0]]
    assert batch.attention_mask == [[1, 0, 0]]


def test_pad_batch_max_length_zero_gives_empty_rows():
    batch = pad_batch(["a b", "c"], max_length=0)
    assert batch.input_ids == [[], []]
    assert batch.attention_mask == [[], []]


def test_pad_batch_of_no_texts_is_empty():
    batch = pad_batch([])
    assert batch.input_ids == []
    assert batch.attention_mask == []


def test_pad_batch_rejects_a_negative_max_length():
    with pytest.raises(ValueError, match="max_length must be >= 0, got -1"):
        pad_batch(["a"], max_length=-1)


@given(st.lists(ANY_TEXT, max_size=5), st.one_of(st.none(), st.integers(0, 8)))
def test_pad_batch_shape_and_mask_for_any_texts(texts, max_length):
    batch = pad_batch(texts, pad_id=-7, max_length=max_length)
    rows = [[token_id(t) for t in tokenize(text)] for text in texts]
    if max_length is not None:
        rows = [row[:max_length] for row in rows]
    width = max((len(r) for r in rows), default=0) if max_length is None else max_length
    assert len(batch.input_ids) == len(batch.attention_mask) == len(texts)
    for row, ids, mask in zip(rows, batch.input_ids, batch.attention_mask, strict=True):
        assert len(ids) == len(mask) == width
        assert mask == [1] * len(row) + [0] * (width - len(row))
        assert ids[: len(row)] == row
        assert ids[len(row) :] == [-7] * (width - len(row))


@given(st.text(alphabet=st.characters(max_codepoint=127)))
def test_the_ascii_fast_path_matches_the_seed(text):
    assert text.isascii()
    assert tokenize(text) == "".join(ch.lower() if ch.isalnum() else " " for ch in text).split()
