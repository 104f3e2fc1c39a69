"""Per-GPU cumulative curves: energy from the counter or integrated power, memory held, idle hold."""

from __future__ import annotations

import numpy as np
import pytest

from profiler.energy.timeline import GIB, QUANTITIES, build_timelines
from tests.builders import BASE_NS, concat_samples, ns, samples_frame


def one(samples, **kwargs):
    lines = build_timelines(samples, **kwargs)
    assert len(lines) == 1
    return lines[0]


def counter_every(reads_s: np.ndarray, update_s: float, power_w: float, start_j: float = 7e5) -> np.ndarray:
    """What reads of an NVML-like counter show: the value of the last update, every `update_s`."""
    last_update = np.floor((reads_s + 1e-12) / update_s) * update_s
    return start_j + power_w * last_update


# ----------------------------------------------------------------------------------------------
# Energy from the counter


def test_counter_total_is_exactly_the_counters_difference() -> None:
    reads = np.round(np.arange(0.0, 10.0001, 0.02), 6)
    counter = counter_every(reads, 0.1, 250.0)
    line = one(samples_frame(reads.tolist(), energy_j=counter, power_w=250.0))
    assert line.sources["energy_j"] == "measured:nvml-counter"
    assert line.total("energy_j") == counter[-1] - counter[0]
    assert line.at("energy_j", np.array([ns(0)]))[0] == 0.0


def test_counter_curve_interpolates_between_change_points() -> None:
    reads = np.round(np.arange(0.0, 10.0001, 0.02), 6)
    counter = counter_every(reads, 0.1, 250.0)
    line = one(samples_frame(reads.tolist(), energy_j=counter, power_w=250.0))
    curve = line.at("energy_j", np.array([ns(t) for t in reads]))
    assert np.all(np.diff(curve) >= 0)
    # Between updates the curve does not sit flat on the last value, as the raw counter does:
    # at steady power it follows the power to within one update period.
    assert np.abs(curve - 250.0 * reads).max() <= 250.0 * 0.1 + 1e-6
    assert np.abs(curve - 250.0 * reads)[50:-50].mean() < 250.0 * 0.1 / 2
    # At the reads that saw no new value the raw counter is flat; the curve has moved on from it.
    unchanged = np.flatnonzero(np.diff(counter) == 0) + 1
    ahead = curve[unchanged] - (counter[unchanged] - counter[0])
    assert ahead.min() > 0.0
    assert ahead.mean() > 250.0 * 0.02  # more than one read interval's worth of joules on average


def test_counter_that_changes_at_every_read_is_the_curve_itself() -> None:
    reads = np.array([0.0, 0.5, 1.0, 1.7, 2.0, 3.0])
    counter = np.array([100.0, 150.0, 220.0, 300.0, 301.0, 500.0])
    line = one(samples_frame(reads.tolist(), energy_j=counter, power_w=np.nan))
    np.testing.assert_allclose(line.at("energy_j", np.array([ns(t) for t in reads])), counter - 100.0)
    # Half-way between two reads, linear interpolation.
    assert line.at("energy_j", np.array([ns(0.25)]))[0] == pytest.approx(25.0)


def test_update_period_of_the_counter_is_measured() -> None:
    reads = np.round(np.arange(0.0, 10.0001, 0.02), 6)
    line = one(samples_frame(reads.tolist(), energy_j=counter_every(reads, 0.1, 250.0), power_w=250.0))
    assert line.update_period_s == pytest.approx(0.1, rel=0.05)
    slow = np.round(np.arange(0.0, 10.0001, 0.05), 6)
    line = one(samples_frame(slow.tolist(), energy_j=counter_every(slow, 0.25, 80.0), power_w=80.0))
    assert line.update_period_s == pytest.approx(0.25, rel=0.05)


def test_a_counter_with_a_few_gaps_is_still_used_and_its_difference_kept() -> None:
    reads = np.arange(0.0, 5.0001, 0.5)
    counter = 1000.0 + 100.0 * reads
    counter[[3, 6]] = np.nan
    line = one(samples_frame(reads.tolist(), energy_j=counter, power_w=100.0))
    assert line.sources["energy_j"] == "measured:nvml-counter"
    assert line.total("energy_j") == pytest.approx(500.0)


# ----------------------------------------------------------------------------------------------
# Energy from integrated power


def test_integrated_power_is_the_trapezoid_integral() -> None:
    reads = np.array([0.0, 0.1, 0.25, 0.5, 1.0, 1.1, 2.0])
    power = np.array([80.0, 300.0, 310.0, 90.0, 450.0, 440.0, 100.0])
    line = one(samples_frame(reads.tolist(), power_w=power))
    assert line.sources["energy_j"] == "measured:integrated-power"
    assert line.total("energy_j") == pytest.approx(np.trapezoid(power, reads), rel=1e-12)
    cumulative = [np.trapezoid(power[: i + 1], reads[: i + 1]) for i in range(len(reads))]
    np.testing.assert_allclose(line.at("energy_j", np.array([ns(t) for t in reads])), cumulative, rtol=1e-12)
    assert line.update_period_s == pytest.approx(np.median(np.diff(reads)))


def test_integrated_power_bridges_a_missing_reading() -> None:
    reads = np.array([0.0, 1.0, 2.0, 3.0])
    power = np.array([100.0, np.nan, 300.0, 300.0])
    line = one(samples_frame(reads.tolist(), power_w=power))
    assert line.total("energy_j") == pytest.approx(np.trapezoid([100.0, 300.0, 300.0], [0.0, 2.0, 3.0]))


def test_a_counter_missing_on_most_reads_falls_back_to_power() -> None:
    reads = np.arange(0.0, 4.0001, 1.0)
    counter = np.array([1e6, np.nan, np.nan, np.nan, 1e6 + 999.0])
    line = one(samples_frame(reads.tolist(), energy_j=counter, power_w=100.0))
    assert line.sources["energy_j"] == "measured:integrated-power"
    assert line.total("energy_j") == pytest.approx(400.0)


def test_without_power_or_counter_there_is_no_energy_curve() -> None:
    line = one(samples_frame([0.0, 1.0, 2.0], mem_used_bytes=1e9))
    assert "energy_j" not in line.curves and "active_energy_j" not in line.curves
    assert line.total("gpu_s") == 2.0


def test_active_energy_is_energy_above_the_idle_baseline() -> None:
    reads = np.arange(0.0, 10.0001, 0.5)
    power = np.where(reads < 5, 60.0, 400.0)
    line = one(samples_frame(reads.tolist(), power_w=power))
    assert np.isfinite(line.idle_power_w)
    np.testing.assert_allclose(
        line.curves["active_energy_j"], line.curves["energy_j"] - line.idle_power_w * line.curves["gpu_s"]
    )
    assert line.total("active_energy_j") < line.total("energy_j")


# ----------------------------------------------------------------------------------------------
# Time, utilization, memory


def test_gpu_seconds_follow_the_sample_clock_and_are_flat_outside_it() -> None:
    line = one(samples_frame([1.0, 1.5, 4.0], power_w=100.0))
    assert line.total("gpu_s") == 3.0
    assert (line.start_ns, line.end_ns) == (ns(1.0), ns(4.0))
    before_after = line.at("gpu_s", np.array([ns(0.0), ns(10.0)]))
    assert list(before_after) == [0.0, 3.0]


def test_busy_seconds_hold_each_utilization_reading_until_the_next() -> None:
    # Utilization is read on slow ticks only: gaps are filled forward (and backward at the start).
    line = one(samples_frame([0.0, 1.0, 2.0, 3.0, 4.0], util_pct=[np.nan, 50.0, np.nan, 100.0, 0.0]))
    assert line.sources["gpu_busy_s"] == "measured:utilization"
    np.testing.assert_allclose(line.curves["gpu_busy_s"], [0.0, 0.5, 1.0, 1.5, 2.5])


def test_no_utilization_means_no_busy_time_and_no_idle_hold() -> None:
    line = one(samples_frame([0.0, 1.0], mem_used_bytes=[0.0, GIB]))
    assert "gpu_busy_s" not in line.curves and "idle_hold_gib_s" not in line.curves
    assert "gpu_mem_gib_s" in line.curves


def test_process_memory_is_used_when_the_run_holds_some() -> None:
    line = one(
        samples_frame(
            [0.0, 1.0, 2.0, 3.0], proc_mem_bytes=[np.nan, 2 * GIB, np.nan, 4 * GIB], mem_used_bytes=70 * GIB
        )
    )
    assert line.sources["gpu_mem_gib_s"] == "measured:process-memory"
    np.testing.assert_allclose(line.curves["gpu_mem_gib_s"], [0.0, 0.0, 2.0, 4.0])  # nothing known before 1 s


@pytest.mark.parametrize("proc", [0.0, np.nan])
def test_device_memory_above_the_baseline_when_process_memory_is_zero_or_unknown(proc: float) -> None:
    used = np.array([10.0, 12.0, 16.0, 9.0, 10.0]) * GIB
    line = one(samples_frame([0.0, 1.0, 2.0, 3.0, 4.0], proc_mem_bytes=proc, mem_used_bytes=used))
    assert line.sources["gpu_mem_gib_s"] == "measured:device-memory-above-baseline"
    assert line.mem_baseline_bytes == 10 * GIB  # the first reading, when no baseline is given
    # Held: 0, 2, 6, 0 (below the baseline counts as nothing), then 0.
    np.testing.assert_allclose(line.curves["gpu_mem_gib_s"], [0.0, 0.0, 2.0, 8.0, 8.0])


def test_a_baseline_taken_before_the_session_is_used() -> None:
    samples = samples_frame([0.0, 1.0, 2.0], gpu="GPU-x", mem_used_bytes=[12 * GIB, 12 * GIB, 12 * GIB])
    line = one(samples, mem_baselines={"GPU-x": 8 * GIB})
    assert line.mem_baseline_bytes == 8 * GIB
    assert line.total("gpu_mem_gib_s") == pytest.approx(8.0)
    assert one(samples, mem_baselines={"GPU-x": float("nan")}).total("gpu_mem_gib_s") == 0.0


def test_idle_hold_is_memory_times_the_idle_fraction() -> None:
    line = one(
        samples_frame(
            [0.0, 1.0, 2.0, 3.0],
            proc_mem_bytes=[4 * GIB, 4 * GIB, 8 * GIB, 8 * GIB],
            util_pct=[25.0, 100.0, 0.0, 0.0],
        )
    )
    np.testing.assert_allclose(line.curves["gpu_mem_gib_s"], [0.0, 4.0, 8.0, 16.0])
    np.testing.assert_allclose(line.curves["idle_hold_gib_s"], [0.0, 3.0, 3.0, 11.0])
    assert line.sources["idle_hold_gib_s"] == "measured:process-memory x idle fraction"


def test_without_memory_readings_there_is_no_memory_curve() -> None:
    line = one(samples_frame([0.0, 1.0], power_w=100.0, util_pct=50.0))
    assert "gpu_mem_gib_s" not in line.curves and "idle_hold_gib_s" not in line.curves


# ----------------------------------------------------------------------------------------------
# Grouping


def test_one_timeline_per_gpu_with_at_least_two_distinct_sample_times() -> None:
    samples = concat_samples(
        samples_frame([0.0, 1.0], gpu="A", power_w=100.0),
        samples_frame([0.0], gpu="B", power_w=100.0),
        samples_frame([2.0, 2.0], gpu="C", power_w=[100.0, 200.0]),
        samples_frame([3.0, 1.0, 2.0], gpu="D", power_w=[300.0, 100.0, 200.0]),
    )
    lines = {line.gpu: line for line in build_timelines(samples)}
    assert list(lines) == ["A", "D"]
    assert lines["D"].t_ns.tolist() == [ns(1.0), ns(2.0), ns(3.0)]  # sorted by time
    assert lines["D"].total("energy_j") == pytest.approx(400.0)


def test_a_repeated_sample_time_keeps_the_last_reading() -> None:
    samples = samples_frame([0.0, 1.0, 1.0, 2.0], power_w=[100.0, 999.0, 100.0, 100.0])
    line = one(samples)
    assert line.t_ns.tolist() == [BASE_NS, ns(1.0), ns(2.0)]
    assert line.total("energy_j") == pytest.approx(200.0)


def test_every_curve_covers_every_sample_time() -> None:
    reads = np.round(np.arange(0.0, 3.0001, 0.02), 6)
    line = one(
        samples_frame(
            reads.tolist(),
            energy_j=counter_every(reads, 0.1, 100.0),
            power_w=100.0,
            mem_used_bytes=GIB,
            util_pct=30.0,
        )
    )
    assert set(line.curves) == set(QUANTITIES)
    for quantity, curve in line.curves.items():
        assert len(curve) == len(line.t_ns), quantity
        assert curve[0] == 0.0 or quantity == "active_energy_j", quantity
