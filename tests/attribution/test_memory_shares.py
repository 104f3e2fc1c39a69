"""The memory policy's shares, against a slice-by-slice reference, and its reading of the samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.attribution.memory_shares import PidMemory, memory_shares, pid_memory_by_gpu, resolve_pids
from profiler.model import SAMPLE_COLUMNS, conform, format_pid_memory, parse_pid_memory
from tests.builders import samples_frame, span, spans_frame

PIDS = (math.nan, 100.0, 200.0, 300.0)


@st.composite
def cases(draw: st.DrawFn) -> dict:
    n_slices = draw(st.integers(1, 10))
    grid = np.cumsum([0] + draw(st.lists(st.integers(1, 5), min_size=n_slices, max_size=n_slices)))
    n_leaves = draw(st.integers(0, 8))
    first, last = [], []
    for _ in range(n_leaves):
        a, b = sorted(draw(st.lists(st.integers(0, n_slices), min_size=2, max_size=2, unique=True)))
        first.append(a)
        last.append(b)
    memory = None
    if draw(st.booleans()):
        moments = st.integers(-2, int(grid[-1]) + 2)
        times = sorted(draw(st.lists(moments, min_size=1, max_size=5, unique=True)))
        reading = st.dictionaries(st.sampled_from([100, 200, 300]), st.sampled_from([0, 1, 3, 7]))
        readings = [draw(reading) for _ in times]
        pids = np.array(sorted({p for r in readings for p in r}), dtype=float)
        held = np.array([[r.get(int(p), 0) for p in pids] for r in readings], dtype=float)
        held = held.reshape(len(times), len(pids))
        memory = PidMemory(np.array(times, dtype=np.int64), pids, held)
    return {
        "grid": grid.astype(np.int64),
        "first": np.array(first, dtype=np.int64),
        "last": np.array(last, dtype=np.int64),
        "remote": np.array(draw(st.lists(st.booleans(), min_size=n_leaves, max_size=n_leaves)), dtype=bool),
        "pid": np.array(draw(st.lists(st.sampled_from(PIDS), min_size=n_leaves, max_size=n_leaves))),
        "memory": memory,
        "per_slice": np.array(draw(st.lists(st.floats(0, 100), min_size=n_slices, max_size=n_slices))),
    }


def reference(case: dict) -> tuple[np.ndarray, float]:
    """Slice by slice, the rule as docs/attribution.md#the-memory-policy states it."""
    grid, first, last, memory = case["grid"], case["first"], case["last"], case["memory"]
    received = np.zeros(len(first))
    unattributed = 0.0
    for k, amount in enumerate(case["per_slice"]):
        open_ = (first <= k) & (k < last)
        local = open_ & ~case["remote"]
        group = np.flatnonzero(local if local.any() else open_)
        if not len(group):
            unattributed += amount
            continue
        pids = case["pid"][group]
        held = None
        if memory is not None and not np.isnan(pids).any():
            row = max(int(np.searchsorted(memory.t_ns, grid[k], side="right")) - 1, 0)
            by_pid = dict(zip(memory.pids.tolist(), memory.bytes[row].tolist(), strict=True))
            held = {p: by_pid.get(p, 0.0) for p in set(pids.tolist())}
        if held is None or sum(held.values()) <= 0:
            received[group] += amount / len(group)
            continue
        total = sum(held.values())
        for leaf, p in zip(group, pids.tolist(), strict=True):
            received[leaf] += amount * held[p] / total / (pids == p).sum()
    return received, unattributed


@settings(max_examples=300, deadline=None)
@given(case=cases())
def test_memory_shares_match_the_slice_by_slice_rule(case: dict) -> None:
    n = len(case["first"])
    window = (int(case["grid"][0]), int(case["grid"][-1]))
    shares = memory_shares(case["grid"], np.arange(n), case["first"], case["last"], case["remote"],
                           case["pid"], case["memory"], window)
    received, unattributed = shares.distribute(case["per_slice"], n)
    expected, expected_unattributed = reference(case)
    np.testing.assert_allclose(received, expected, rtol=1e-9, atol=1e-9)
    assert math.isclose(unattributed, expected_unattributed, rel_tol=1e-9, abs_tol=1e-9)
    assert math.isclose(received.sum() + unattributed, case["per_slice"].sum(), rel_tol=1e-9, abs_tol=1e-9)
    assert 0.0 <= shares.equal_s <= shares.concurrent_s + 1e-12


def test_per_process_memory_cells_round_trip() -> None:
    assert format_pid_memory({42: 3 * 2**30, 7: 1}) == "7:1;42:3221225472"
    assert parse_pid_memory("7:1;42:3221225472") == {7: 1.0, 42: 3 * 2**30}
    assert format_pid_memory(None) is None and format_pid_memory({}) is None
    assert parse_pid_memory(None) is None and parse_pid_memory(math.nan, math.nan) is None
    assert parse_pid_memory(None, 0.0) == {}  # the list was read: none of the run's processes held memory
    assert parse_pid_memory("7:1;7:2") == {7: 3.0}
    for bad in ("7", "7:", "x:1", "7:-1", "7:nan", "7:1,8:2"):
        assert parse_pid_memory(bad) is None, bad


def test_readings_of_per_process_memory_skip_unread_rows_and_hold_between_reads() -> None:
    samples = conform(pd.concat([
        samples_frame([0, 1, 2, 3], gpu="G0", proc_mem_bytes=[3.0, math.nan, 0.0, 5.0],
                      proc_mem_bytes_by_pid=[{100: 3}, None, None, {200: 5}]),
        samples_frame([0, 1], gpu="G1"),
    ], ignore_index=True), SAMPLE_COLUMNS)
    memory = pid_memory_by_gpu(samples)
    assert list(memory) == ["G0"]  # G1 has no per-process reading at all
    g0 = memory["G0"]
    assert g0.pids.tolist() == [100.0, 200.0]
    assert g0.bytes.tolist() == [[3.0, 0.0], [0.0, 0.0], [0.0, 5.0]]  # the fast row at 1 s is skipped
    t0 = int(samples["t_ns"].iloc[0])
    at = g0.at(np.array([t0 - 5, t0 + 1_500_000_000, t0 + 10**12]))
    assert at.tolist() == [[3.0, 0.0], [3.0, 0.0], [0.0, 5.0]]
    assert len(g0.change_times()) == 3


def test_a_step_without_a_process_takes_its_sessions_only_process() -> None:
    spans = spans_frame([
        span("a", start=0, end=1, session="one", pid=100),
        span("b", start=0, end=1, session="one"),
        span("c", start=0, end=1, session="two", pid=100),
        span("d", start=0, end=1, session="two", pid=200),
        span("e", start=0, end=1, session="two"),
        span("f", start=0, end=1, session="three"),
    ])
    pids = resolve_pids(spans)
    assert pids[:4].tolist() == [100.0, 100.0, 100.0, 200.0]
    assert np.isnan(pids[4:]).all()  # two processes in the session, or none: unknown
