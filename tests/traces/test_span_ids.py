"""Span ids read as numbers: exactly OTLP's 16 lowercase hex digits, nothing else; and the parent
lookup and duplicate check that use them answer as the text comparison does."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.attribution import tree
from profiler.attribution.tree import parent_positions
from profiler.traces.load import _dedupe
from profiler.traces.span_ids import all_distinct, hex_span_ids, positions_of
from tests.builders import span, spans_frame


def objects(values: list) -> np.ndarray:
    return np.array(values, dtype=object)


def test_hex_ids_become_the_numbers_they_spell() -> None:
    ids = ["0000000000000001", "00f067aa0ba902b7", "ffffffffffffffff", "8000000000000000"]
    numbers = hex_span_ids(objects(ids))
    assert numbers is not None and numbers.dtype == np.uint64
    assert numbers.tolist() == [int(i, 16) for i in ids]
    assert hex_span_ids(objects([])).tolist() == []


@pytest.mark.parametrize("ids", [
    ["00F067AA0BA902B7"],                          # upper case: another text, so not the same id
    ["00f067aa0ba902b"],                           # 15 digits
    ["00f067aa0ba902b7a"],                         # 17 digits
    ["00f067aa0ba902b", "00f067aa0ba902b7a"],      # 15 + 17: the right total, in the wrong places
    ["00f067aa,ba902b7"],                          # a comma inside an id
    ["00f067aa ba902b7"],                          # a space inside an id: bytes.fromhex would skip it
    ["00f067aa ba902b7", "0123456789abcdef"],
    ["00f067aa\tba902b7"],                         # other whitespace
    ["00f067aa0ba902bg"],                          # not a hex digit
    ["00f067aa0ba902bé"],                          # not ASCII
    ["00f067aa0ba902b7", None],                    # no id
    ["a"],                                         # any other tool's ids
])
def test_ids_in_any_other_form_are_left_to_text_comparison(ids: list) -> None:
    assert hex_span_ids(objects(ids)) is None


def test_distinct_numbers() -> None:
    assert all_distinct(np.array([3, 1, 2], dtype=np.uint64))
    assert not all_distinct(np.array([3, 1, 3], dtype=np.uint64))
    assert all_distinct(np.array([], dtype=np.uint64))


_IDS = [f"{i:016x}" for i in (1, 2, 3, 0xABCDEF, 2**63, 2**64 - 1)]
_LOST = "00000000000000ff"  # a parent no span of the file has


@st.composite
def hex_forests(draw: st.DrawFn) -> pd.DataFrame:
    """Spans with OTLP ids: repeated across traces, parents lost, self-named, in another trace."""
    rows = []
    for _ in range(draw(st.integers(0, 12))):
        start = draw(st.integers(0, 8))
        parent = draw(st.sampled_from([None, _LOST, *_IDS]))
        rows.append(span(draw(st.sampled_from(_IDS)), parent, start=start, end=start + 1,
                         trace=draw(st.sampled_from(["A", "B"]))))
    return spans_frame(rows)


@settings(max_examples=200, deadline=None)
@given(spans=hex_forests())
def test_parents_found_by_number_are_those_found_by_text(spans: pd.DataFrame) -> None:
    by_number = parent_positions(spans)
    original = tree.hex_span_ids
    tree.hex_span_ids = lambda ids: None  # the text path
    try:
        by_text = parent_positions(spans)
    finally:
        tree.hex_span_ids = original
    assert by_number.tolist() == by_text.tolist()


def test_a_parent_in_otlp_form_is_found_by_number() -> None:
    spans = spans_frame([span(_IDS[0], start=0, end=3), span(_IDS[1], _IDS[0], start=1, end=2),
                         span(_IDS[2], _LOST, start=1, end=2), span(_IDS[3], _IDS[3], start=1, end=2)])
    assert parent_positions(spans).tolist() == [-1, 0, -1, -1]


def test_repeated_hex_ids_are_still_deduplicated_by_trace_and_span() -> None:
    spans = spans_frame([span(_IDS[0], start=0, end=1, trace="A"), span(_IDS[0], start=0, end=2, trace="A"),
                         span(_IDS[0], start=0, end=1, trace="B")])
    kept = _dedupe(spans)
    lengths = kept["end_ns"] - kept["start_ns"]
    assert sorted(zip(kept["trace_id"], lengths, strict=True)) == [("A", 2 * 10**9), ("B", 10**9)]


def test_positions_of_numbers() -> None:
    numbers = np.array([30, 10, 20], dtype=np.uint64)
    assert positions_of(np.array([20, 5, 30, 40], dtype=np.uint64), numbers).tolist() == [2, -1, 0, -1]
    assert positions_of(np.array([1], dtype=np.uint64), np.array([], dtype=np.uint64)).tolist() == [-1]
    assert positions_of(np.array([1], dtype=np.uint64), np.array([1, 1], dtype=np.uint64)) is None
