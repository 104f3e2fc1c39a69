"""The attribution rules of docs/attribution.md, one scenario each, on hand-built span rows and samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from profiler import attribute
from profiler.attribution.ledger import INCLUSIVE_COLUMNS
from profiler.energy.timeline import GIB, QUANTITIES
from profiler.model import format_pid_memory
from profiler.pricing.prices import Prices
from tests.builders import (
    assert_inclusive_is_self_plus_descendants,
    chat,
    concat_samples,
    device_totals,
    make_run,
    ns,
    row,
    span,
    steady_gpu,
    value,
)


def assert_conserved(ledger, samples: pd.DataFrame) -> None:
    """Self values over every row (steps, sessions, unattributed) equal the devices' totals."""
    totals = device_totals(samples)
    assert ledger.checks["conservation_held"] is True
    for quantity in QUANTITIES:
        measured = sum(per_gpu[quantity] for per_gpu in totals.values() if quantity in per_gpu)
        attributed = ledger.steps[f"self_{quantity}"].sum()
        assert attributed == pytest.approx(measured, rel=1e-9, abs=1e-9), quantity


# ----------------------------------------------------------------------------------------------
# Nesting: self is leaf time, inclusive is self plus descendants


def test_nested_spans_charge_each_step_its_leaf_time() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True),
            span("a", "s", start=1, end=9, kind="invoke_agent"),
            chat("c", "a", start=2, end=5, provider="vllm"),
            span("t", "a", start=5, end=8, kind="execute_tool"),
        ],
        samples,
    )
    ledger = attribute(run)

    assert value(ledger, "s", "self_energy_j") == pytest.approx(200.0)
    assert value(ledger, "a", "self_energy_j") == pytest.approx(200.0)
    assert value(ledger, "c", "self_energy_j") == pytest.approx(300.0)
    assert value(ledger, "t", "self_energy_j") == pytest.approx(300.0)
    assert value(ledger, "a", "energy_j") == pytest.approx(800.0)
    assert value(ledger, "s", "energy_j") == pytest.approx(1000.0)
    for span_id, seconds in {"s": 2.0, "a": 2.0, "c": 3.0, "t": 3.0}.items():
        assert value(ledger, span_id, "self_gpu_s") == pytest.approx(seconds)
        assert value(ledger, span_id, "self_wall_s") == pytest.approx(seconds)
        assert value(ledger, span_id, "self_gpu_busy_s") == pytest.approx(seconds / 2)  # 50 % utilization
    assert value(ledger, "c", "self_gpu_mem_gib_s") == pytest.approx(6.0)  # 2 GiB held for 3 s
    assert value(ledger, "c", "self_idle_hold_gib_s") == pytest.approx(3.0)  # ... half of it idle
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(0.0)
    assert_conserved(ledger, samples)


def test_inclusive_is_self_plus_descendants_for_every_column() -> None:
    samples = steady_gpu(0, 10)
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True),
            span("a", "s", start=1, end=9, kind="invoke_agent"),
            chat("c1", "a", start=2, end=4),
            chat("c2", "a", start=3, end=6, input_tokens=1000, output_tokens=50, cache_read_tokens=200),
            span("t", "a", start=6, end=8, kind="execute_tool"),
            span("u", "t", start=6.5, end=7.5),
        ],
        samples,
        meta={"gpus": [{"uuid": "GPU-0", "name": "NVIDIA H100 80GB HBM3"}]},
    )
    ledger = attribute(run)
    assert_inclusive_is_self_plus_descendants(ledger, [c for c in INCLUSIVE_COLUMNS if c != "wall_s"])
    assert value(ledger, "a", "input_tokens") == 1100
    assert value(ledger, "s", "api_cost_usd") == pytest.approx(
        value(ledger, "c1", "api_cost_usd") + value(ledger, "c2", "api_cost_usd")
    )
    assert value(ledger, "a", "total_cost_usd") == pytest.approx(
        ledger.steps.set_index("span_id").loc[["a", "c1", "c2", "t", "u"], "self_total_cost_usd"].sum()
    )


# ----------------------------------------------------------------------------------------------
# Concurrency


def test_overlapping_siblings_split_the_overlap_equally_and_conserve_exactly() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("a", start=0, end=10, kind="invoke_agent"),
            span("x", "a", start=2, end=6, kind="execute_tool"),
            span("y", "a", start=4, end=8, kind="execute_tool"),
            span("z1", "a", start=8.5, end=9.5, kind="execute_tool"),
            span("z2", "a", start=8.5, end=9.5, kind="execute_tool"),
            span("z3", "a", start=8.5, end=9.5, kind="execute_tool"),
        ],
        samples,
    )
    ledger = attribute(run)
    assert value(ledger, "x", "self_energy_j") == pytest.approx(200.0 + 100.0)
    assert value(ledger, "y", "self_energy_j") == pytest.approx(100.0 + 200.0)
    assert value(ledger, "a", "self_energy_j") == pytest.approx(200.0 + 50.0 + 50.0)
    for z in ("z1", "z2", "z3"):
        assert value(ledger, z, "self_energy_j") == pytest.approx(100.0 / 3)
    # Exact: the parts add up to the counter's difference, not merely approximately.
    assert ledger.steps["self_energy_j"].sum() == pytest.approx(1000.0, rel=1e-12)
    assert_conserved(ledger, samples)


def test_a_child_that_outlives_its_parent_stays_the_only_leaf() -> None:
    samples = steady_gpu(0, 12, power_w=100.0)
    run = make_run([span("p", start=0, end=10), span("c", "p", start=5, end=12)], samples)
    ledger = attribute(run)
    assert value(ledger, "c", "self_energy_j") == pytest.approx(700.0)
    assert value(ledger, "p", "self_energy_j") == pytest.approx(500.0)
    # After the parent ends the child is still the innermost open step: the session is not idle.
    assert value(ledger, "session:t1", "self_energy_j") == pytest.approx(0.0)
    assert value(ledger, "session:t1", "self_gpu_s") == pytest.approx(0.0)
    assert_conserved(ledger, samples)


def test_a_child_that_starts_before_its_parent_is_the_leaf_until_the_parent_opens() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run([span("p", start=2, end=10), span("c", "p", start=0, end=4)], samples)
    ledger = attribute(run)
    assert value(ledger, "c", "self_energy_j") == pytest.approx(400.0)
    assert value(ledger, "p", "self_energy_j") == pytest.approx(600.0)
    assert value(ledger, "session:t1", "self_energy_j") == pytest.approx(0.0)
    assert_conserved(ledger, samples)


def test_two_concurrent_sessions_share_one_gpu() -> None:
    samples = steady_gpu(0, 15, power_w=100.0)
    run = make_run(
        [
            span("a", start=0, end=10, trace="A"),
            span("b", start=5, end=15, trace="B"),
        ],
        samples,
    )
    ledger = attribute(run)
    assert value(ledger, "a", "self_energy_j") == pytest.approx(500.0 + 250.0)
    assert value(ledger, "b", "self_energy_j") == pytest.approx(250.0 + 500.0)
    assert value(ledger, "session:A", "energy_j") == pytest.approx(750.0)
    assert value(ledger, "session:B", "energy_j") == pytest.approx(750.0)
    assert row(ledger, "a")["session_id"] == "A"
    assert ledger.totals["sessions"] == 2
    assert_conserved(ledger, samples)


# ----------------------------------------------------------------------------------------------
# Edges of time


def test_zero_duration_spans_receive_nothing_but_keep_their_tokens() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True),
            chat("z", "s", start=3, end=3, input_tokens=100, output_tokens=10),
            span("o", "s", start=5, end=6),
        ],
        samples,
    )
    ledger = attribute(run)
    for quantity in QUANTITIES:
        assert value(ledger, "z", f"self_{quantity}") == 0.0
    assert value(ledger, "z", "self_wall_s") == 0.0
    assert bool(row(ledger, "z")["energy_estimated"]) is True  # never a silent, "measured" 0 J
    assert value(ledger, "z", "input_tokens") == 100
    assert value(ledger, "o", "self_energy_j") == pytest.approx(100.0)
    assert value(ledger, "s", "self_energy_j") == pytest.approx(900.0)
    assert_conserved(ledger, samples)


def test_a_run_of_only_zero_duration_steps_still_conserves() -> None:
    samples = steady_gpu(0, 2)
    run = make_run([span("a", start=1, end=1), span("b", "a", start=1, end=1)], samples)
    ledger = attribute(run)
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(200.0)
    assert_conserved(ledger, samples)


def test_steps_outside_the_sampled_window_are_not_measured_and_the_window_is_shared_by_what_was_open() -> None:
    samples = steady_gpu(3, 7, power_w=100.0)  # the GPU was sampled only from 3 s to 7 s
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True),
            span("early", "s", start=0, end=2),
            span("mid", "s", start=4, end=6),
            span("late", "s", start=8, end=10),
        ],
        samples,
    )
    ledger = attribute(run)
    # No GPU sample covers these steps: their figures are missing, never a "measured" 0 J.
    assert math.isnan(value(ledger, "early", "self_energy_j"))
    assert math.isnan(value(ledger, "late", "self_gpu_s"))
    assert math.isnan(value(ledger, "late", "gpu_cost_usd"))
    assert row(ledger, "early")["energy_source"].startswith("none: outside")
    assert value(ledger, "early", "gpu_coverage") == 0.0
    # Half of the session was sampled: its figures stand, flagged as estimated.
    assert value(ledger, "s", "gpu_coverage") == pytest.approx(0.4)
    assert bool(row(ledger, "s")["energy_estimated"]) is True
    assert bool(row(ledger, "mid")["energy_estimated"]) is False
    assert value(ledger, "mid", "self_energy_j") == pytest.approx(200.0)
    assert value(ledger, "s", "self_energy_j") == pytest.approx(200.0)
    assert value(ledger, "s", "energy_j") == pytest.approx(400.0)
    assert_conserved(ledger, samples)


def test_gpu_time_outside_every_session_goes_to_the_unattributed_row() -> None:
    samples = steady_gpu(-2, 12, power_w=100.0)
    run = make_run(
        [
            span("a", start=0, end=3, trace="A"),
            span("b", start=6, end=9, trace="B"),
        ],
        samples,
    )
    ledger = attribute(run)
    unattributed = row(ledger, "unattributed")
    assert unattributed["kind"] == "unattributed"
    assert unattributed["self_energy_j"] == pytest.approx(200.0 + 300.0 + 300.0)
    assert unattributed["self_gpu_s"] == pytest.approx(8.0)
    assert unattributed["start_ns"] == ns(-2) and unattributed["end_ns"] == ns(12)
    assert ledger.tree_order()["span_id"].iloc[-1] == "unattributed"
    assert_conserved(ledger, samples)


def test_samples_without_spans_are_all_unattributed() -> None:
    samples = steady_gpu(0, 5)
    ledger = attribute(make_run([], samples))
    assert list(ledger.steps["span_id"]) == ["unattributed"]
    assert value(ledger, "unattributed", "energy_j") == pytest.approx(500.0)
    assert_conserved(ledger, samples)


# ----------------------------------------------------------------------------------------------
# Sessions


def test_a_session_without_a_root_span_gets_a_synthetic_row_that_holds_its_overhead() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run([span("r1", start=1, end=3), span("r2", start=5, end=8)], samples)
    ledger = attribute(run)
    session = row(ledger, "session:t1")
    assert session["kind"] == "session"
    assert (session["start_ns"], session["end_ns"]) == (ns(1), ns(8))
    assert session["self_energy_j"] == pytest.approx(200.0)  # the gap 3..5: the session's overhead
    assert session["energy_j"] == pytest.approx(700.0)
    assert row(ledger, "r1")["parent_span_id"] == "session:t1"
    assert row(ledger, "r1")["depth"] == 1
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(300.0)
    assert ledger.totals["sessions"] == 1 and ledger.totals["steps"] == 2
    assert_conserved(ledger, samples)


def test_a_declared_session_root_is_the_session_row() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True, kind="invoke_agent", session="S1", trace="A"),
            span("r1", "s", start=1, end=3, session="S1", trace="A"),
            span("r2", "s", start=5, end=8, session="S1", trace="A"),
            # A root in another trace of the same session (a child process) hangs under the session row.
            span("q", start=8, end=9, session="S1", trace="B"),
        ],
        samples,
    )
    ledger = attribute(run)
    assert not ledger.steps["span_id"].str.startswith("session:").any()
    session = row(ledger, "s")
    assert session["kind"] == "session"
    assert session["self_energy_j"] == pytest.approx(100.0 + 200.0 + 100.0)
    assert row(ledger, "q")["parent_span_id"] == "s"
    assert row(ledger, "q")["depth"] == 1
    assert session["energy_j"] == pytest.approx(1000.0)
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(0.0)
    assert_conserved(ledger, samples)


def test_an_orphan_whose_parent_was_never_recorded_hangs_under_its_session() -> None:
    samples = steady_gpu(0, 10)
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True),
            span("orphan", "missing-parent", start=2, end=4),
        ],
        samples,
    )
    ledger = attribute(run)
    assert row(ledger, "orphan")["parent_span_id"] == "s"
    assert value(ledger, "s", "self_energy_j") == pytest.approx(800.0)
    assert_conserved(ledger, samples)


# ----------------------------------------------------------------------------------------------
# Remote calls


def test_a_remote_call_takes_no_share_beside_a_local_step_but_the_whole_slice_alone() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True),
            chat("r", "s", start=1, end=6, remote=True),
            span("t", "s", start=4, end=8, kind="execute_tool"),
        ],
        samples,
    )
    ledger = attribute(run)
    assert value(ledger, "r", "self_energy_j") == pytest.approx(300.0)  # alone 1..4, nothing 4..6
    assert value(ledger, "r", "self_gpu_s") == pytest.approx(3.0)
    assert value(ledger, "t", "self_energy_j") == pytest.approx(400.0)  # all of 4..8
    assert value(ledger, "s", "self_energy_j") == pytest.approx(300.0)
    assert value(ledger, "r", "self_wall_s") == pytest.approx(5.0)  # still a leaf for 5 s of wall time
    assert_conserved(ledger, samples)


def test_concurrent_remote_calls_alone_share_equally() -> None:
    samples = steady_gpu(0, 4, power_w=100.0)
    run = make_run(
        [
            span("s", start=0, end=4, session_root=True),
            chat("r1", "s", start=1, end=3, remote=True),
            chat("r2", "s", start=2, end=3, remote=True),
        ],
        samples,
    )
    ledger = attribute(run)
    assert value(ledger, "r1", "self_energy_j") == pytest.approx(150.0)
    assert value(ledger, "r2", "self_energy_j") == pytest.approx(50.0)
    assert_conserved(ledger, samples)


# ----------------------------------------------------------------------------------------------
# Policies


def test_policy_tokens_splits_by_billed_tokens() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("a", start=0, end=10, kind="invoke_agent"),
            chat("c1", "a", start=0, end=10, input_tokens=100, output_tokens=0),
            chat("c2", "a", start=0, end=10, input_tokens=250, output_tokens=50),
            span("t", "a", start=0, end=10, kind="execute_tool"),
        ],
        samples,
    )
    ledger = attribute(run, policy="tokens")
    assert value(ledger, "c1", "self_energy_j") == pytest.approx(250.0)
    assert value(ledger, "c2", "self_energy_j") == pytest.approx(750.0)
    assert value(ledger, "t", "self_energy_j") == pytest.approx(0.0)
    assert ledger.run["policy"] == "tokens"
    equal = attribute(run)
    for span_id in ("c1", "c2", "t"):
        assert value(equal, span_id, "self_energy_j") == pytest.approx(1000.0 / 3)
    assert_conserved(ledger, samples)


def test_policy_tokens_falls_back_to_equal_shares_where_no_step_has_tokens() -> None:
    samples = steady_gpu(0, 4, power_w=100.0)
    run = make_run(
        [
            span("a", start=0, end=4),
            span("t1", "a", start=0, end=4, kind="execute_tool"),
            span("t2", "a", start=0, end=4, kind="execute_tool"),
        ],
        samples,
    )
    ledger = attribute(run, policy="tokens")
    assert value(ledger, "t1", "self_energy_j") == pytest.approx(200.0)
    assert value(ledger, "t2", "self_energy_j") == pytest.approx(200.0)


def test_policy_tokens_still_gives_a_remote_call_nothing_beside_a_local_step() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("a", start=0, end=10),
            chat("r", "a", start=0, end=10, remote=True, input_tokens=10_000),
            span("t", "a", start=0, end=10, kind="execute_tool"),
        ],
        samples,
    )
    ledger = attribute(run, policy="tokens")
    assert value(ledger, "r", "self_energy_j") == pytest.approx(0.0)
    assert value(ledger, "t", "self_energy_j") == pytest.approx(1000.0)


def test_an_unknown_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown policy 'bytes'"):
        attribute(make_run(), policy="bytes")  # type: ignore[arg-type]


def two_processes(by_pid, *, start: float = 0, end: float = 10, **kwargs) -> pd.DataFrame:
    """A GPU at 100 W whose per-process memory is `by_pid` ({pid: GiB}, or one such dict per sample)."""
    samples = steady_gpu(start, end, power_w=100.0, **kwargs)
    readings = [by_pid] * len(samples) if isinstance(by_pid, dict) else by_pid
    cells = [{pid: round(gib * GIB) for pid, gib in reading.items()} for reading in readings]
    samples["proc_mem_bytes"] = [float(sum(reading.values())) for reading in cells]
    samples["proc_mem_bytes_by_pid"] = [format_pid_memory(reading) for reading in cells]
    return samples


def test_policy_memory_splits_a_shared_slice_by_each_process_memory() -> None:
    samples = two_processes({100: 3.0, 200: 1.0})
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True, pid=100),
            span("a", "s", start=0, end=10, kind="execute_tool", pid=100),
            span("b", "s", start=0, end=10, kind="execute_tool", pid=200),  # a worker process
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "a", "self_energy_j") == pytest.approx(750.0)
    assert value(ledger, "b", "self_energy_j") == pytest.approx(250.0)
    assert value(ledger, "a", "self_gpu_s") == pytest.approx(7.5)
    assert value(ledger, "b", "self_gpu_mem_gib_s") == pytest.approx(10.0)  # a quarter of 4 GiB x 10 s
    assert ledger.run["policy"] == "memory" and ledger.run["policy_fallback"] == {}
    assert_conserved(ledger, samples)
    equal = attribute(run)
    assert value(equal, "a", "self_energy_j") == pytest.approx(500.0)
    assert "policy_fallback" not in equal.run


def test_policy_memory_splits_a_process_share_equally_among_its_leaves() -> None:
    samples = two_processes({100: 3.0, 200: 1.0})
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True, pid=100),
            span("a1", "s", start=0, end=10, kind="execute_tool", pid=100),
            span("a2", "s", start=0, end=10, kind="execute_tool", pid=100),
            span("b", "s", start=0, end=10, kind="execute_tool", pid=200),
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "a1", "self_energy_j") == pytest.approx(375.0)
    assert value(ledger, "a2", "self_energy_j") == pytest.approx(375.0)
    assert value(ledger, "b", "self_energy_j") == pytest.approx(250.0)
    assert_conserved(ledger, samples)


def test_policy_memory_holds_each_reading_until_the_next() -> None:
    # Slow readings at 0 s and 5 s: 1 GiB each, then process 100 grows to 3 GiB.
    times = np.round(np.arange(0, 10.05, 0.1), 9)
    readings = [{100: 1.0, 200: 1.0} if t < 5 else {100: 3.0, 200: 1.0} for t in times]
    samples = two_processes(readings)
    run = make_run(
        [
            span("a", start=0, end=10, kind="execute_tool", pid=100, session="s"),
            span("b", start=0, end=10, kind="execute_tool", pid=200, session="s"),
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "a", "self_energy_j") == pytest.approx(250.0 + 375.0)
    assert value(ledger, "b", "self_energy_j") == pytest.approx(250.0 + 125.0)
    assert_conserved(ledger, samples)


def test_policy_memory_splits_concurrent_sessions_of_two_processes() -> None:
    # Two sessions read from a trace without session spans: each session's own row (its overhead)
    # takes its process from the session's steps.
    samples = two_processes({100: 3.0, 200: 1.0})
    run = make_run(
        [
            span("a", start=0, end=10, kind="invoke_agent", trace="t1", pid=100),
            span("b", start=0, end=2, kind="invoke_agent", trace="t2", pid=200),
            span("b2", start=8, end=10, kind="invoke_agent", trace="t2", pid=200),
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    session_b = ledger.steps[ledger.steps["session_id"] == "t2"]
    overhead_b = float(session_b.loc[session_b["kind"] == "session", "self_energy_j"].iloc[0])
    assert value(ledger, "a", "self_energy_j") == pytest.approx(750.0)
    assert value(ledger, "b", "self_energy_j") + value(ledger, "b2", "self_energy_j") == pytest.approx(100.0)
    assert overhead_b == pytest.approx(150.0)  # its 6 s between steps, at a quarter
    assert ledger.run["policy_fallback"] == {}
    assert_conserved(ledger, samples)


def test_policy_memory_falls_back_to_equal_shares_without_per_process_memory() -> None:
    samples = steady_gpu(0, 10, power_w=100.0)  # device memory only, as in a container
    run = make_run(
        [
            span("a", start=0, end=10, kind="execute_tool", pid=100, session="s"),
            span("b", start=0, end=10, kind="execute_tool", pid=200, session="s"),
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "a", "self_energy_j") == pytest.approx(500.0)
    assert value(ledger, "b", "self_energy_j") == pytest.approx(500.0)
    (note,) = ledger.run["policy_fallback"].values()
    assert note["equal_s"] == pytest.approx(10.0) and note["concurrent_s"] == pytest.approx(10.0)
    assert note["reasons"] == ["no per-process memory in this GPU's samples"]
    assert_conserved(ledger, samples)


def test_policy_memory_falls_back_where_a_step_has_no_process_or_none_holds_memory() -> None:
    times = np.round(np.arange(0, 10.05, 0.1), 9)
    readings = [{100: 3.0, 200: 1.0} if t < 6 else {} for t in times]  # both free their memory at 6 s
    samples = two_processes(readings)
    run = make_run(
        [
            span("a", start=0, end=10, kind="execute_tool", pid=100, session="s"),
            span("b", start=0, end=4, kind="execute_tool", pid=200, session="s"),
            span("x", start=4, end=10, kind="execute_tool", session="s"),  # another tool's span: no pid
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "a", "self_energy_j") == pytest.approx(300.0 + 300.0)
    assert value(ledger, "b", "self_energy_j") == pytest.approx(100.0)
    assert value(ledger, "x", "self_energy_j") == pytest.approx(300.0)
    (note,) = ledger.run["policy_fallback"].values()
    assert note["equal_s"] == pytest.approx(6.0) and note["concurrent_s"] == pytest.approx(10.0)
    assert note["reasons"] == ["steps without a process id"]
    assert_conserved(ledger, samples)


def test_policy_memory_falls_back_where_no_active_process_holds_memory() -> None:
    samples = two_processes({100: 0.0, 300: 2.0})  # process 300 holds the GPU but runs no step
    run = make_run(
        [
            span("a", start=0, end=10, kind="execute_tool", pid=100, session="s"),
            span("b", start=0, end=10, kind="execute_tool", pid=200, session="s"),
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "a", "self_energy_j") == pytest.approx(500.0)
    (note,) = ledger.run["policy_fallback"].values()
    assert note["reasons"] == ["no active step's process held memory on this GPU"]
    assert_conserved(ledger, samples)


def test_policy_memory_gives_a_remote_call_nothing_beside_a_local_step() -> None:
    samples = two_processes({100: 1.0, 200: 3.0})
    run = make_run(
        [
            span("s", start=0, end=10, session_root=True, pid=100),
            chat("r", "s", start=0, end=10, remote=True, pid=200),
            span("t", "s", start=0, end=6, kind="execute_tool", pid=100),
            chat("r2", "s", start=6, end=10, remote=True, pid=100),
        ],
        samples,
    )
    ledger = attribute(run, policy="memory")
    assert value(ledger, "t", "self_energy_j") == pytest.approx(600.0)
    # With only remote calls open, the GPU the session holds goes to them, split by memory.
    assert value(ledger, "r", "self_energy_j") == pytest.approx(300.0)
    assert value(ledger, "r2", "self_energy_j") == pytest.approx(100.0)
    assert_conserved(ledger, samples)


# ----------------------------------------------------------------------------------------------
# Several GPUs, no GPU


def test_several_gpus_conserve_each_device_separately() -> None:
    g0 = steady_gpu(0, 10, gpu="G0", power_w=100.0)
    g1 = steady_gpu(-1, 11, gpu="G1", power_w=300.0, counter=False, util_pct=80.0)
    samples = concat_samples(g0, g1)
    spans = [span("a", start=0, end=10), span("x", "a", start=2, end=4)]
    meta = {
        "gpus": [
            {"uuid": "G0", "name": "NVIDIA H100 80GB HBM3"},
            {"uuid": "G1", "name": "NVIDIA A100-SXM4-80GB"},
        ]
    }
    ledger = attribute(make_run(spans, samples, meta))

    assert set(ledger.checks["conservation"]) == {"G0", "G1"}
    for gpu, per_quantity in ledger.checks["conservation"].items():
        assert set(per_quantity) == set(QUANTITIES), gpu
        assert all(entry["held"] for entry in per_quantity.values()), gpu
    # The two-GPU ledger is the sum of the one-GPU ledgers, row by row.
    alone = [attribute(make_run(spans, g, meta)) for g in (g0, g1)]
    for quantity in QUANTITIES:
        np.testing.assert_allclose(
            ledger.steps[f"self_{quantity}"].to_numpy(),
            alone[0].steps[f"self_{quantity}"].to_numpy() + alone[1].steps[f"self_{quantity}"].to_numpy(),
            rtol=1e-12,
            atol=1e-9,
        )
    assert value(ledger, "x", "self_energy_j") == pytest.approx(200.0 + 600.0)
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(600.0)  # G1 outside the session
    # GPU dollars: each device's seconds at its own default rate.
    assert value(ledger, "x", "self_gpu_cost_usd") == pytest.approx(2 * (2.49 + 1.19) / 3600)
    assert_conserved(ledger, samples)


def test_without_samples_every_measured_column_is_nan_not_zero() -> None:
    run = make_run([span("a", start=0, end=10), chat("c", "a", start=1, end=2)])
    ledger = attribute(run)
    for quantity in QUANTITIES:
        assert ledger.steps[quantity].isna().all(), quantity
        assert ledger.steps[f"self_{quantity}"].isna().all(), quantity
        assert ledger.totals[quantity] is None
    for column in ("gpu_cost_usd", "energy_cost_usd", "co2_g"):
        assert ledger.steps[column].isna().all(), column
    assert ledger.checks["conservation"] == {}
    assert ledger.checks["conservation_held"] is True
    assert value(ledger, "c", "api_cost_usd") > 0  # tokens are still billed
    assert value(ledger, "c", "total_cost_usd") == value(ledger, "c", "api_cost_usd")
    assert (ledger.steps["energy_source"] == "none: no GPU samples").all()


def test_a_gpu_without_a_default_rate_is_unpriced_until_a_rate_is_set() -> None:
    samples = steady_gpu(0, 10)
    run = make_run(
        [span("a", start=0, end=10)], samples, {"gpus": [{"uuid": "GPU-0", "name": "Mystery GPU"}]}
    )
    ledger = attribute(run)
    assert ledger.steps["gpu_cost_usd"].isna().all()
    assert "no rate for Mystery GPU" in row(ledger, "a")["gpu_cost_source"]
    priced = attribute(run, prices=Prices(gpu_usd_per_hour=3.6))
    assert value(priced, "a", "gpu_cost_usd") == pytest.approx(0.01)


def test_energy_dollars_and_carbon_follow_the_prices() -> None:
    samples = steady_gpu(0, 36, step=1.0, power_w=100_000.0)  # 3.6 MJ = 1 kWh
    run = make_run([span("a", start=0, end=36)], samples)
    ledger = attribute(run, prices=Prices(energy_usd_per_kwh=0.2, pue=1.5, carbon_g_per_kwh=100.0))
    assert value(ledger, "a", "energy_j") == pytest.approx(3.6e6)
    assert value(ledger, "a", "energy_cost_usd") == pytest.approx(1.0 * 1.5 * 0.2)
    assert value(ledger, "a", "co2_g") == pytest.approx(1.0 * 1.5 * 100.0)
    assert ledger.totals["energy_kwh"] == pytest.approx(1.0)


def test_short_steps_and_integrated_power_are_marked_estimated() -> None:
    samples = steady_gpu(0, 10, step=0.1)  # the counter changes every 0.1 s
    run = make_run([span("long", start=0, end=5), span("short", start=6, end=6.15)], samples)
    ledger = attribute(run)
    assert not bool(row(ledger, "long")["energy_estimated"])
    assert bool(row(ledger, "short")["energy_estimated"])
    integrated = attribute(make_run([span("long", start=0, end=5)], steady_gpu(0, 10, counter=False)))
    assert bool(row(integrated, "long")["energy_estimated"])
    assert "integrated-power" in row(integrated, "long")["energy_source"]


# ----------------------------------------------------------------------------------------------
# Tokens and API dollars


def test_an_unknown_model_is_unpriced_never_zero() -> None:
    run = make_run(
        [
            span("a", start=0, end=10),
            chat("c", "a", start=1, end=2, model="no-such-model-xyz", provider=None),
            chat("n", "a", start=3, end=4, model=None, provider=None),  # type: ignore[arg-type]
        ]
    )
    ledger = attribute(run)
    c = row(ledger, "c")
    assert math.isnan(c["api_cost_usd"])
    assert c["api_cost_source"] == "unpriced"
    assert "no-such-model-xyz" in c["api_price_detail"]
    assert ledger.checks["unpriced_models"] == ["(no model name)", "no-such-model-xyz"]
    assert ledger.checks["unpriced_calls"] == 2
    assert value(ledger, "a", "unpriced_calls") == 2


def test_an_unknown_model_with_a_cost_in_the_trace_uses_that_cost() -> None:
    run = make_run(
        [chat("c", start=1, end=2, model="no-such-model-xyz", provider=None, reported_cost_usd=0.25)]
    )
    ledger = attribute(run)
    assert value(ledger, "c", "api_cost_usd") == 0.25
    assert row(ledger, "c")["api_cost_source"] == "provider"
    assert ledger.checks["unpriced_models"] == []


def test_a_self_hosted_call_costs_nothing_in_api_dollars() -> None:
    run = make_run(
        [chat("v", start=0, end=2, model="meta-llama/Llama-3.1-8B-Instruct", provider="vllm")],
        steady_gpu(0, 2),
        {"gpus": [{"uuid": "GPU-0", "name": "NVIDIA H100 80GB HBM3"}]},
    )
    ledger = attribute(run)
    v = row(ledger, "v")
    assert v["api_cost_usd"] == 0.0
    assert v["api_cost_source"] == "self-hosted"
    assert v["gpu_cost_usd"] == pytest.approx(2 * 2.49 / 3600)
    assert v["total_cost_usd"] == pytest.approx(v["gpu_cost_usd"] + v["energy_cost_usd"])
    assert ledger.checks["unpriced_models"] == []


def test_usage_repeated_on_an_agent_span_is_not_billed_twice() -> None:
    run = make_run(
        [
            span(
                "agent",
                start=0,
                end=10,
                kind="invoke_agent",
                model="gpt-4o",
                provider="openai",
                input_tokens=300,
                output_tokens=30,
            ),
            chat("c1", "agent", start=1, end=2, input_tokens=100, output_tokens=10),
            chat("c2", "agent", start=3, end=4, input_tokens=200, output_tokens=20),
        ]
    )
    ledger = attribute(run)
    assert not bool(row(ledger, "agent")["bills_usage"])
    assert value(ledger, "agent", "self_input_tokens") == 0
    assert value(ledger, "agent", "input_tokens") == 300
    assert math.isnan(value(ledger, "agent", "self_api_cost_usd"))
    assert ledger.totals["input_tokens"] == 300
    assert ledger.totals["output_tokens"] == 30
    assert ledger.totals["model_calls"] == 2
    assert ledger.totals["api_cost_usd"] == pytest.approx(
        value(ledger, "c1", "api_cost_usd") + value(ledger, "c2", "api_cost_usd")
    )


def test_a_lone_aggregate_without_inference_children_counts_once() -> None:
    run = make_run(
        [
            span(
                "wf",
                start=0,
                end=10,
                kind="invoke_workflow",
                model="gpt-4o",
                provider="openai",
                input_tokens=50,
                output_tokens=5,
            ),
            span(
                "agent",
                "wf",
                start=1,
                end=9,
                kind="invoke_agent",
                model="gpt-4o",
                provider="openai",
                input_tokens=50,
                output_tokens=5,
            ),
            span("tool", "agent", start=2, end=3, kind="execute_tool"),
        ]
    )
    ledger = attribute(run)
    assert bool(row(ledger, "wf")["bills_usage"]) and not bool(row(ledger, "agent")["bills_usage"])
    assert ledger.totals["input_tokens"] == 50
    assert ledger.totals["model_calls"] == 1
    assert row(ledger, "wf")["api_cost_source"] == "computed:genai-prices"


def test_a_session_opened_inside_a_span_of_the_same_session_does_not_close_a_cycle() -> None:
    # A request handler's span carries the conversation id, and the handler opens the session inside it.
    samples = steady_gpu(0, 10, power_w=100.0)
    run = make_run(
        [
            span("request", start=0, end=10, session="S"),
            span("s", "request", start=1, end=9, session="S", session_root=True),
            span("c", "s", start=2, end=4, session="S"),
        ],
        samples,
    )
    ledger = attribute(run)
    assert row(ledger, "request")["parent_span_id"] is None
    assert [row(ledger, r)["depth"] for r in ("request", "s", "c")] == [0, 1, 2]
    assert value(ledger, "request", "self_energy_j") == pytest.approx(200.0)
    assert value(ledger, "s", "self_energy_j") == pytest.approx(600.0)
    assert value(ledger, "request", "energy_j") == pytest.approx(1000.0)
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(0.0)
    assert_conserved(ledger, samples)
