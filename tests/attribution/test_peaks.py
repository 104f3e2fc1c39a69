"""Peak GPU memory per step: the most the run held while the step was open."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler import attribute
from profiler.arrays import range_max
from profiler.energy.timeline import GIB
from tests.builders import chat, concat_samples, make_run, samples_frame, span, value

TIMES = [float(t) for t in range(11)]
# GiB the run's processes hold from each whole second to the next.
HELD_GIB = [0, 1, 2, 5, 3, 3, 8, 2, 2, 2, 2]


def _gpu(held_gib: list[float], gpu: str = "GPU-0"):
    return samples_frame(TIMES, gpu=gpu, power_w=100.0, util_pct=50.0,
                         proc_mem_bytes=[g * GIB for g in held_gib])


def _tree() -> list[dict]:
    return [
        span("s", start=0, end=10, session_root=True),
        span("a", "s", start=0.5, end=9.5, kind="invoke_agent"),
        chat("c", "a", start=2.5, end=4.5, provider="vllm"),
        span("t", "a", start=5.0, end=6.0, kind="execute_tool"),
        span("i", "a", start=6.0, end=6.0),
    ]


def test_peak_is_the_largest_reading_in_force_while_the_step_was_open() -> None:
    ledger = attribute(make_run(_tree(), _gpu(HELD_GIB)))

    # c: 2 GiB held from 2 s (read before it started), 5 from 3 s, 3 from 4 s.
    assert value(ledger, "c", "gpu_mem_peak_gib") == pytest.approx(5.0)
    # t: 3 GiB from 5 s; the 8 GiB read at 6 s, as it ends, was not held during it.
    assert value(ledger, "t", "gpu_mem_peak_gib") == pytest.approx(3.0)
    # An instant takes the reading in force at it.
    assert value(ledger, "i", "gpu_mem_peak_gib") == pytest.approx(8.0)
    # A parent's peak covers its children's.
    assert value(ledger, "a", "gpu_mem_peak_gib") == pytest.approx(8.0)
    assert ledger.totals["gpu_mem_peak_gib"] == pytest.approx(8.0)
    assert ledger.totals["gpus"][0]["mem_peak_gib"] == pytest.approx(8.0)
    assert "self_gpu_mem_peak_gib" not in ledger.steps  # a peak is not split among steps


def test_peak_uses_device_memory_above_its_baseline_without_process_memory() -> None:
    used = [(1.5 + g) * GIB for g in HELD_GIB]  # 1.5 GiB in use before the run
    samples = samples_frame(TIMES, power_w=100.0, util_pct=50.0, mem_used_bytes=used)
    ledger = attribute(make_run(_tree(), samples))
    assert value(ledger, "c", "gpu_mem_peak_gib") == pytest.approx(5.0)


def test_peak_sums_each_gpus_peak_over_the_step() -> None:
    samples = concat_samples(_gpu(HELD_GIB, "GPU-0"), _gpu([1.0] * 11, "GPU-1"))
    ledger = attribute(make_run(_tree(), samples))
    assert value(ledger, "c", "gpu_mem_peak_gib") == pytest.approx(6.0)
    assert ledger.totals["gpu_mem_peak_gib"] == pytest.approx(9.0)


def test_peak_is_missing_where_no_memory_was_sampled() -> None:
    tree = [*_tree(), span("late", "s", start=20, end=21)]
    tree[0]["end_ns"] = tree[-1]["end_ns"]
    ledger = attribute(make_run(tree, _gpu(HELD_GIB)))
    assert math.isnan(value(ledger, "late", "gpu_mem_peak_gib"))  # outside the samples: not 0

    no_memory = samples_frame(TIMES, power_w=100.0)
    ledger = attribute(make_run(_tree(), no_memory))
    assert ledger.steps["gpu_mem_peak_gib"].isna().all()
    assert ledger.totals["gpu_mem_peak_gib"] is None

    cpu_only = attribute(make_run(_tree()))
    assert cpu_only.steps["gpu_mem_peak_gib"].isna().all()
    assert cpu_only.totals["gpu_mem_peak_gib"] is None


def test_unattributed_peak_is_taken_outside_every_session() -> None:
    held = [9, 9, 1, 1, 1, 1, 1, 1, 1, 4, 4]  # 9 GiB before the session, 4 after it
    tree = [span("s", start=2, end=9, session_root=True), span("x", "s", start=3, end=8)]
    ledger = attribute(make_run(tree, _gpu(held)))
    assert value(ledger, "x", "gpu_mem_peak_gib") == pytest.approx(1.0)
    assert value(ledger, "unattributed", "gpu_mem_peak_gib") == pytest.approx(9.0)


def test_group_peak_is_the_highest_of_its_steps() -> None:
    tree = [*_tree(), span("t2", "a", start=6.5, end=7.5, kind="execute_tool", name="execute_tool t")]
    ledger = attribute(make_run(tree, _gpu(HELD_GIB)))
    by_tool = ledger.group_by("tool").set_index("tool")
    assert by_tool.loc["t", "gpu_mem_peak_gib"] == pytest.approx(8.0)  # t: 3 GiB, t2: 8 GiB
    assert by_tool.loc["t", "count"] == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e12, 1e12), min_size=1, max_size=300), st.data())
def test_range_max_equals_the_slice_maximum(values: list[float], data: st.DataObject) -> None:
    n = len(values)
    pairs = data.draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n)), max_size=50))
    ranges = [(lo, hi) for lo, hi in pairs if lo < hi]
    lo = np.array([r[0] for r in ranges], dtype=np.intp)
    hi = np.array([r[1] for r in ranges], dtype=np.intp)
    expected = [max(values[a:b]) for a, b in ranges]
    assert range_max(np.array(values), lo, hi).tolist() == expected


def test_range_max_rejects_empty_or_out_of_bounds_ranges() -> None:
    with pytest.raises(ValueError):
        range_max(np.arange(5.0), np.array([2]), np.array([2]))
    with pytest.raises(ValueError):
        range_max(np.arange(5.0), np.array([0]), np.array([6]))


# ----------------------------------------------------------------------------------------------
# Where the run's own memory cannot be told apart


def _seen(unseen: int) -> dict:
    return {"gpus": [{"uuid": "GPU-0", "processes_seen": {"other_processes": unseen,
                                                          "not_in_this_pid_namespace": unseen}}]}


def test_host_pids_seen_from_a_container_are_warned_about_when_memory_falls_back() -> None:
    device_only = samples_frame(TIMES, power_w=100.0, mem_used_bytes=[g * GIB for g in HELD_GIB])
    ledger = attribute(make_run(_tree(), device_only, meta=_seen(3)))
    (warning,) = [w for w in ledger.checks["warnings"] if "PID namespace" in w]
    assert warning.startswith("GPU GPU-0: NVML listed 3 process(es)")
    assert ledger.totals["gpus"][0]["memory_source"] == "measured:device-memory-above-baseline"


@pytest.mark.parametrize("unseen, samples", [(3, "process"), (0, "device")])
def test_no_pid_warning_where_process_memory_was_read_or_every_pid_was_seen(unseen: int,
                                                                          samples: str) -> None:
    frame = _gpu(HELD_GIB) if samples == "process" else samples_frame(
        TIMES, power_w=100.0, mem_used_bytes=[g * GIB for g in HELD_GIB])
    ledger = attribute(make_run(_tree(), frame, meta=_seen(unseen)))
    assert not [w for w in ledger.checks["warnings"] if "PID namespace" in w]
