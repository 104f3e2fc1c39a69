"""The step tree: session rows, parent positions, depths, inclusive sums and leaf intervals."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.arrays import unique_sorted
from profiler.attribution.tree import (
    add_session_rows,
    depths,
    leaf_ranges,
    parent_positions,
    session_tree,
    subtree_sums,
    subtree_sums_of,
)
from profiler.model import SESSION_KIND
from tests.builders import ns, span, spans_frame


def tree_of(rows):
    steps = add_session_rows(spans_frame(rows))
    return steps, parent_positions(steps)


def parent_of(steps, parent, span_id: str) -> str | None:
    pos = int(np.flatnonzero(steps["span_id"] == span_id)[0])
    return None if parent[pos] < 0 else steps["span_id"].iat[parent[pos]]


def leaves(start, end, parent) -> dict[int, list[tuple[int, int]]]:
    owner, first, last = leaf_ranges(np.asarray(start), np.asarray(end), np.asarray(parent))
    found: dict[int, list[tuple[int, int]]] = {}
    for o, f, e in sorted(zip(owner.tolist(), first.tolist(), last.tolist(), strict=True)):
        found.setdefault(o, []).append((f, e))
    return found


# ----------------------------------------------------------------------------------------------
# Session rows


def test_a_session_without_a_root_span_gets_a_synthetic_row_over_its_whole_window() -> None:
    steps, parent = tree_of(
        [span("a", start=2, end=5), span("b", start=4, end=9), span("c", "a", start=3, end=4)]
    )
    session = steps[steps["kind"] == SESSION_KIND]
    assert len(session) == 1
    row = session.iloc[0]
    assert row["span_id"] == "session:t1" and row["name"] == "session t1"
    assert (row["start_ns"], row["end_ns"]) == (ns(2), ns(9))
    assert row["session_root"] and row["attributes"]["sessionprof.session.synthetic"] is True
    assert parent_of(steps, parent, "a") == "session:t1"
    assert parent_of(steps, parent, "b") == "session:t1"
    assert parent_of(steps, parent, "c") == "a"
    assert parent_of(steps, parent, "session:t1") is None


def test_a_declared_session_root_becomes_the_session_row() -> None:
    steps, parent = tree_of(
        [
            span("root", start=0, end=10, session_root=True, kind="invoke_agent", session="S", trace="A"),
            span("child", "root", start=1, end=2, session="S", trace="A"),
            span("other-trace", start=3, end=4, session="S", trace="B"),
            span("orphan", "never-recorded", start=5, end=6, session="S", trace="A"),
        ]
    )
    assert not steps["span_id"].str.startswith("session:").any()
    assert steps.set_index("span_id").loc["root", "kind"] == SESSION_KIND
    for span_id in ("child", "other-trace", "orphan"):
        assert parent_of(steps, parent, span_id) == "root", span_id


def test_every_session_gets_its_own_row() -> None:
    steps, parent = tree_of(
        [
            span("a", start=0, end=1, trace="A"),
            span("b", start=0, end=1, trace="B"),
            span("c", start=0, end=1, trace="B", session="conv"),
        ]
    )
    assert sorted(steps.loc[steps["kind"] == SESSION_KIND, "span_id"]) == [
        "session:A",
        "session:B",
        "session:conv",
    ]
    assert parent_of(steps, parent, "c") == "session:conv"


def test_a_span_enclosing_its_own_sessions_root_stays_a_root() -> None:
    steps, parent = tree_of(
        [
            span("request", start=0, end=10, session="S"),
            span("root", "request", start=1, end=9, session="S", session_root=True),
            span("step", "root", start=2, end=3, session="S"),
        ]
    )
    assert parent_of(steps, parent, "request") is None
    assert parent_of(steps, parent, "root") == "request"
    assert depths(parent).tolist() == [0, 1, 2]


def test_a_span_enclosing_another_sessions_root_hangs_under_its_own_session() -> None:
    steps, parent = tree_of(
        [
            span("request", start=0, end=10, session="web"),
            span("root", "request", start=1, end=9, session="S", session_root=True),
        ]
    )
    assert parent_of(steps, parent, "request") == "session:web"
    assert parent_of(steps, parent, "root") == "request"


def test_session_rows_leave_the_input_untouched() -> None:
    spans = spans_frame([span("a", start=0, end=1)])
    before = spans.copy()
    add_session_rows(spans)
    assert spans.equals(before)


@st.composite
def span_forests(draw: st.DrawFn) -> pd.DataFrame:
    """Small traces with repeated span ids across traces, lost and self-named parents, cycles,
    sessions spanning traces and declared session roots."""
    rows, seen = [], set()
    for _ in range(draw(st.integers(0, 10))):
        trace, span_id = draw(st.sampled_from("AB")), draw(st.sampled_from("abcdef"))
        if (trace, span_id) in seen:
            continue
        seen.add((trace, span_id))
        start = draw(st.integers(0, 8))
        rows.append(span(span_id, draw(st.sampled_from([None, "lost", *"abcdef"])), start=start,
                         end=start + draw(st.integers(0, 4)), trace=trace,
                         session=draw(st.sampled_from([None, "S", "T"])),
                         session_root=draw(st.integers(0, 3)) == 0))
    return spans_frame(rows)


@settings(max_examples=100, deadline=None)
@given(spans=span_forests())
def test_session_rows_come_with_the_parents_a_fresh_lookup_finds(spans: pd.DataFrame) -> None:
    steps, parent = session_tree(spans)
    assert parent.tolist() == parent_positions(steps).tolist()
    pd.testing.assert_frame_equal(add_session_rows(spans), steps)
    given_parents, again = session_tree(spans, parent_positions(spans))
    pd.testing.assert_frame_equal(given_parents, steps)
    assert again.tolist() == parent.tolist()


# ----------------------------------------------------------------------------------------------
# Parents, depths, sums


def test_parents_are_matched_within_a_trace_even_when_span_ids_repeat() -> None:
    steps = spans_frame(
        [
            span("x", start=0, end=1, trace="A"),
            span("y", "x", start=0, end=1, trace="A"),
            span("x", start=0, end=1, trace="B"),
            span("y", "x", start=0, end=1, trace="B"),
        ]
    )
    assert parent_positions(steps).tolist() == [-1, 0, -1, 2]


def test_a_span_naming_itself_as_parent_is_a_root() -> None:
    assert parent_positions(spans_frame([span("a", "a", start=0, end=1)])).tolist() == [-1]


def test_depths_of_a_forest_and_a_cycle_terminate() -> None:
    assert depths(np.array([-1, 0, 1, 0, -1, 4])).tolist() == [0, 1, 2, 1, 0, 1]
    cyclic = depths(np.array([1, 0, -1]))  # a cycle in malformed input: cut, never an endless loop
    assert cyclic[2] == 0


def test_subtree_sums_add_descendants_and_treat_nan_as_zero() -> None:
    parent = np.array([-1, 0, 1, 0])
    values = np.array([1.0, np.nan, 10.0, 100.0])
    assert subtree_sums(values, parent, depths(parent)).tolist() == [111.0, 10.0, 10.0, 100.0]


# ----------------------------------------------------------------------------------------------
# Leaf intervals (indices are slices of the time grid)


def test_a_parent_is_a_leaf_where_no_child_is_open() -> None:
    assert leaves([0, 2, 5], [10, 4, 7], [-1, 0, 0]) == {
        0: [(0, 2), (4, 5), (7, 10)],
        1: [(2, 4)],
        2: [(5, 7)],
    }


def test_overlapping_children_are_merged_for_their_parent() -> None:
    assert leaves([0, 2, 3, 8], [10, 5, 6, 8], [-1, 0, 0, 0])[0] == [
        (0, 2),
        (6, 10),
    ]  # the zero-length child: no gap


def test_a_child_outliving_its_parent_keeps_the_grandparent_from_being_a_leaf() -> None:
    # session [0, 12) > parent [0, 10) > child [5, 12)
    assert leaves([0, 0, 5], [12, 10, 12], [-1, 0, 1]) == {1: [(0, 5)], 2: [(5, 12)]}


def test_a_descendant_sticking_out_several_levels_up_is_seen_by_each_ancestor() -> None:
    # a [0, 20) > b [0, 10) > c [2, 8) > d [6, 15): d outlives c and b; a is never a leaf before 15.
    assert leaves([0, 0, 2, 6], [20, 10, 8, 15], [-1, 0, 1, 2]) == {
        0: [(15, 20)],
        1: [(0, 2)],
        2: [(2, 6)],
        3: [(6, 15)],
    }


def test_zero_length_rows_are_never_leaves() -> None:
    assert leaves([3, 3], [3, 3], [-1, 0]) == {}


def test_a_deep_chain_stays_fast() -> None:
    n = 5_000  # span k covers [k, 2n - k): each nested in the one above
    start = np.arange(n)
    end = 2 * n - np.arange(n)
    parent = np.arange(n) - 1
    began = time.perf_counter()
    found = leaves(start, end, parent)
    assert time.perf_counter() - began < 5.0
    assert found[0] == [(0, 1), (2 * n - 1, 2 * n)]
    assert found[n - 1] == [(n - 1, n + 1)]
    assert sum(e - f for ranges in found.values() for f, e in ranges) == 2 * n


@pytest.mark.parametrize("parent", [[1, 0], [1, 2, 0]])
def test_cycles_do_not_hang(parent: list[int]) -> None:
    n = len(parent)
    leaves([0] * n, [10] * n, parent)  # returns; who is a leaf in a cycle is unspecified


def test_subtree_sums_of_several_columns_match_one_at_a_time() -> None:
    parent = np.array([-1, 0, 0, 1, 3, -1])
    depth = depths(parent)
    columns = [np.array([1.0, 2.0, np.nan, 4.0, 8.0, 16.0]), np.array([0.1, 0.2, 0.3, np.nan, 0.5, 0.6])]
    for together, alone in zip(subtree_sums_of(columns, parent, depth), columns, strict=True):
        assert together.tolist() == subtree_sums(alone, parent, depth).tolist()


@pytest.mark.parametrize("values", [[], [5], [3, 1, 3, 2, 1], [2**62, -(2**62), 0, 2**62],
                                    [1.5, np.nan, 1.5, np.nan]])
def test_unique_sorted_is_np_unique(values: list[float]) -> None:
    array = np.array(values, dtype=np.int64 if all(isinstance(v, int) for v in values) else float)
    found, expected = unique_sorted(array), np.unique(array)
    assert found.dtype == expected.dtype and np.array_equal(found, expected, equal_nan=True)
