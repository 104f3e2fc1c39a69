"""Knowing the sensor, without real time: locating the counter's updates, the sampler's dithered and
adaptive schedule, the idle baseline, the power-versus-counter check and per-step uncertainty."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import profiler
from profiler.energy.curves import counter_curve, power_curve
from profiler.energy.sensor_checks import (
    CHECK_TOLERANCE,
    FALLBACK_PERCENTILE,
    GpuSensor,
    energy_uncertainty,
    idle_power,
    power_vs_counter,
    work_intervals,
)
from profiler.energy.timeline import build_timelines
from profiler.energy.update_grid import locate_updates
from profiler.gpu.backend import CAPABILITIES, GpuInfo, GpuReading
from profiler.gpu.sampler import MAX_SLOW_PERIOD_S, GpuSampler, tick_offset
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, frame_from_rows

BASE_NS = 1_700_000_000_000_000_000


def dithered_reads(n: int, interval: float = 0.1, seed: int = 0) -> np.ndarray:
    """Read times of the sampler's schedule, with a little timer jitter."""
    rng = np.random.default_rng(seed)
    return np.array([tick_offset(k, interval) for k in range(1, n + 1)]) + rng.uniform(0, 3e-4, n)


def nvml_counter(reads: np.ndarray, period: float, phase: float, watts) -> tuple[np.ndarray, np.ndarray]:
    """(the last update instant before each read, the counter there) for power `watts(t)`."""
    last = phase + np.floor((reads - phase) / period) * period
    fine = np.linspace(0, reads[-1] + 1, 400_001)
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(fine) * watts(fine[:-1]))])
    return last, 1e6 + np.interp(last, fine, cumulative)


# ---- locating the updates -----------------------------------------------------------------------


@pytest.mark.parametrize("period", [0.1, 0.0997, 0.1013, 0.25])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_dithered_reads_locate_the_update_instants(period: float, seed: int) -> None:
    reads = dithered_reads(300, seed=seed)
    phase = np.random.default_rng(seed).uniform(0, period)
    last, counter = nvml_counter(reads, period, phase, lambda t: 300.0 + 0 * t)
    grid = locate_updates(reads, np.concatenate([[False], np.diff(counter) != 0]))
    assert grid.period == pytest.approx(period, rel=0.005)
    assert grid.located_fraction > 0.9
    changed = np.flatnonzero(np.diff(counter) != 0) + 1
    located = changed[np.isfinite(grid.instant[changed])]
    # Each update placed within a few milliseconds (the reads' phase spacing), not up to a read interval.
    assert np.abs(grid.instant[located] - last[located]).max() < max(0.012, 0.08 * period)


def test_reads_in_step_with_the_counter_locate_nothing() -> None:
    reads = np.arange(1, 301) * 0.1 + 0.03  # a fixed 10 Hz: every read sees a change
    _, counter = nvml_counter(reads, 0.1, 0.0, lambda t: 300.0 + 0 * t)
    grid = locate_updates(reads, np.concatenate([[False], np.diff(counter) != 0]))
    assert grid.located_fraction == 0.0
    knots_t, knots_e, _ = counter_curve(reads, counter)
    np.testing.assert_allclose(knots_t, reads)  # the knots stay at the reads, as before
    assert knots_e[-1] == counter[-1] - counter[0]


def test_the_step_model_places_a_power_step_inside_an_update_period() -> None:
    reads = dithered_reads(120, seed=4)
    edge = 5.0437  # the power steps from 80 W to 450 W here, 43.7 ms into an update period

    def watts(t):
        return np.where(t < edge, 80.0, 450.0)

    _, counter = nvml_counter(reads, 0.1, 0.0, watts)
    # The instant reading is the mean over the last quarter of the period before the last update.
    last = np.floor(reads / 0.1) * 0.1
    mixed = 80.0 + 370.0 * (last - edge) / 0.025
    power = np.where(last - 0.025 >= edge, 450.0, np.where(last <= edge, 80.0, mixed))
    knots_t, knots_e, grid = counter_curve(reads, counter, power)
    assert grid.located_fraction > 0.9
    e_at = np.interp([4.0, edge, 6.5], knots_t, knots_e)
    # The joules before and after the step, to within the counter's update-time jitter (~0.3 ms).
    assert e_at[1] - e_at[0] == pytest.approx(80.0 * (edge - 4.0), abs=0.5)
    assert e_at[2] - e_at[1] == pytest.approx(450.0 * (6.5 - edge), abs=0.5)
    assert knots_e[-1] == counter[-1] - counter[0]


def test_power_curve_without_the_instant_semantics_is_the_plain_trapezoid() -> None:
    t = np.array([0.0, 0.5, 1.0, 2.0])
    p = np.array([100.0, np.nan, 300.0, 300.0])
    knots_t, knots_e, _ = power_curve(t, p)
    assert knots_e[-1] == pytest.approx(np.trapezoid([100.0, 200.0, 300.0, 300.0], t))


def test_instant_power_stands_before_its_read() -> None:
    # A step from 100 W to 300 W at 5 s, read by dithered reads whose value lags by up to a period.
    reads = dithered_reads(100)
    last = np.floor(reads / 0.1) * 0.1
    power = np.where(last - 0.0125 < 5.0, 100.0, 300.0)
    knots_t, knots_e, _ = power_curve(reads, power, instant=True)
    before = np.interp(5.0, knots_t, knots_e) - np.interp(reads[0], knots_t, knots_e)
    assert before == pytest.approx(100.0 * (5.0 - reads[0]), rel=0.02)


def _average_of_a_step(reads: np.ndarray) -> np.ndarray:
    """NVML's trailing 1 s average, published every 100 ms, of a step from 100 W to 400 W at 5 s."""
    last = np.floor(reads / 0.1) * 0.1
    return 100.0 + 300.0 * np.clip(last - 5.0, 0.0, 1.0)


def test_a_1s_average_stands_half_a_second_before_its_update() -> None:
    reads = dithered_reads(100)
    knots_t, knots_e, period = power_curve(reads, _average_of_a_step(reads), average_s=1.0)

    def joules(a: float, b: float) -> float:
        return float(np.interp(b, knots_t, knots_e) - np.interp(a, knots_t, knots_e))

    assert period == pytest.approx(0.1, rel=0.01)
    # Away from the step, exact; across it, the average's ramp (4.5 s to 5.5 s once shifted) puts
    # step x W / 8 = 37.5 J before the step that belongs after it.
    assert joules(1.0, 4.4) == pytest.approx(100.0 * 3.4, rel=1e-3)
    assert joules(5.6, 7.5) == pytest.approx(400.0 * 1.9, rel=1e-3)
    assert joules(1.0, 5.0) == pytest.approx(100.0 * 4.0 + 37.5, abs=2.0)
    assert joules(4.0, 6.0) == pytest.approx(100.0 + 400.0, abs=2.0)  # the whole ramp inside: exact
    # Integrated where it was read, the step arrives about 0.55 s late: 300 W x 0.55 s short.
    unshifted_t, unshifted_e, _ = power_curve(reads, _average_of_a_step(reads))
    late = np.interp(6.0, unshifted_t, unshifted_e) - np.interp(4.0, unshifted_t, unshifted_e)
    assert late == pytest.approx(500.0 - 300.0 * 0.55, abs=10.0)


def test_a_1s_average_has_a_wider_uncertainty_near_a_step() -> None:
    t = np.arange(0.0, 10.0001, 0.1)
    samples = frame_from_rows({"t_ns": (BASE_NS + t * 1e9).astype(np.int64).tolist(),
                               "gpu": ["GPU-a"] * len(t), "power_w": _average_of_a_step(t).tolist()},
                              SAMPLE_COLUMNS)
    lines = build_timelines(samples, sensors={"GPU-a": GpuSensor("average")})
    assert lines[0].power_reading == "average"
    ns = lambda s: BASE_NS + int(s * 1e9)  # noqa: E731
    calm, one_end, both_ends = energy_uncertainty(
        np.array([200.0, 800.0, 50.0]), np.array([2.0, 2.0, 0.2]), np.array([ns(1.0), ns(5.0), ns(4.9)]),
        np.array([ns(3.0), ns(7.0), ns(5.1)]), lines)
    period = lines[0].update_period_s
    assert calm == pytest.approx(100.0 * period + 0.05 * 200.0)
    # An end within W/2 + T of the smeared step adds its 300 W spread x (W/8 + T/2).
    end = 300.0 * (0.125 + period / 2)
    assert one_end == pytest.approx(400.0 * period + end + 0.05 * 800.0)
    # (From 4.9 s the reach ends a reading short of the top of the ramp: 270 W of spread, not 300.)
    assert both_ends == pytest.approx(250.0 * period + 2 * end + 0.05 * 50.0, rel=0.05)
    assert both_ends > 2 * end


# ---- the sampler's schedule ---------------------------------------------------------------------


def test_the_dithered_schedule_keeps_the_rate_and_bounds_the_gaps() -> None:
    due = np.array([tick_offset(k, 0.1) for k in range(0, 741)])
    gaps = np.diff(due)
    assert due[-1] == pytest.approx(74.0, abs=0.1)  # 10 Hz over every 74 ticks
    assert gaps.min() > 0.055 and gaps.max() < 0.17
    phases = (due % 0.1) / 0.1
    assert np.histogram(phases, bins=10, range=(0, 1))[0].min() > 40  # every phase of a 100 ms period


class _SlowProcesses:
    """A backend whose slow reads (process lists) take `slow_s`."""

    name = "slow"

    def __init__(self, slow_s: float) -> None:
        self.slow_s = slow_s

    def open(self) -> list[GpuInfo]:
        return [GpuInfo(index=0, uuid="GPU-slow", name="slow", supports=dict.fromkeys(CAPABILITIES, True))]

    def read(self, index: int, pids=None, slow: bool = False) -> GpuReading:
        if slow:
            time.sleep(self.slow_s)
        return GpuReading(energy_j=1.0, power_w=100.0, mem_used_bytes=1, util_pct=50.0 if slow else None)

    def close(self) -> None:
        pass


def test_slow_process_reads_back_off_and_recover() -> None:
    backend = _SlowProcesses(0.03)
    sampler = GpuSampler(backend, None, interval_s=0.1, slow_every=10, slow_budget_s=0.02)
    sampler.gpus = backend.open()
    slow_ticks = []
    for _ in range(400):
        before = sampler.stats.slow_ticks
        sampler.tick()
        if sampler.stats.slow_ticks > before:
            slow_ticks.append(sampler.stats.ticks)
    stats = sampler.stats
    assert stats.slow_backoffs >= 3
    assert stats.slow_every == stats.slow_every_max == int(MAX_SLOW_PERIOD_S / 0.1)  # every 10 s at most
    assert np.diff(slow_ticks).max() == 100
    assert stats.slow_tick_max_s >= 0.03
    backend.slow_s = 0.0  # the process list is fast again: back to the configured rate
    for _ in range(400):
        sampler.tick()
    assert stats.slow_every == 10
    json_stats = stats.to_json()
    assert json_stats["slow_every_max"] == 100 and json_stats["slow_tick_mean_s"] > 0


# ---- the idle baseline --------------------------------------------------------------------------


def test_idle_baseline_from_low_utilization_not_the_minimum() -> None:
    t = BASE_NS + np.arange(200) * 100_000_000
    util = np.where(np.arange(200) < 100, 0.0, 90.0)
    power = np.where(util > 0, 400.0, 70.0) + np.random.default_rng(0).normal(0, 2, 200)
    power[150] = 5.0  # one glitch, under load
    watts, method = idle_power(t, power, np.zeros(200), util)
    assert method == "idle-utilization"
    assert 68.0 < watts < 71.0  # the low quartile of the idle samples, not the glitch


def test_idle_baseline_outside_the_steps_when_utilization_is_unknown() -> None:
    t = BASE_NS + np.arange(100) * 100_000_000
    power = np.where((np.arange(100) >= 20) & (np.arange(100) < 80), 350.0, 90.0)
    work = np.array([[t[20], t[79]]])
    watts, method = idle_power(t, power, np.zeros(100), np.full(100, np.nan), work)
    assert (method, watts) == ("outside-steps", 90.0)


def test_idle_baseline_falls_back_to_a_low_percentile() -> None:
    t = BASE_NS + np.arange(100) * 100_000_000
    power = np.linspace(100.0, 300.0, 100)
    watts, method = idle_power(t, power, np.zeros(100), np.full(100, 50.0))
    assert method == "low-percentile"
    assert watts == pytest.approx(np.percentile(power, FALLBACK_PERCENTILE))


def test_work_intervals_leave_out_sessions() -> None:
    steps = pd.DataFrame({"kind": ["session", "chat", "execute_tool", "unattributed"],
                          "start_ns": [0, 1, 5, 0], "end_ns": [10, 4, 8, 10]})
    assert work_intervals(steps).tolist() == [[1, 4], [5, 8]]


# ---- power against the counter ------------------------------------------------------------------


def _samples(seconds: float, counter_w: float, power_w: float, gpu: str = "GPU-x") -> pd.DataFrame:
    t = np.arange(0.0, seconds + 1e-9, 0.1)
    return frame_from_rows({"t_ns": (BASE_NS + t * 1e9).astype(np.int64).tolist(), "gpu": [gpu] * len(t),
                            "energy_j": (5e5 + counter_w * t).tolist(), "power_w": [power_w] * len(t)},
                           SAMPLE_COLUMNS)


def test_a_disagreeing_power_reading_is_warned_about() -> None:
    run = Run(spans=frame_from_rows([], SPAN_COLUMNS), samples=_samples(25.0, 100.0, 170.0))
    ledger = profiler.attribute(run)
    check = ledger.checks["power_vs_counter"]["GPU-x"]
    assert check["checked"] and not check["agree"]
    assert check["windows"] == 2 and check["window_s"] == 10.0
    assert check["ratio"] == pytest.approx(1.7, rel=0.01)
    assert any("GPU-x" in w and "1.70x" in w for w in ledger.checks["warnings"])
    assert ledger.totals["energy_j"] == pytest.approx(2500.0)  # energy still from the counter


def test_agreeing_power_and_counter_raise_no_warning() -> None:
    no_spans = frame_from_rows([], SPAN_COLUMNS)
    ledger = profiler.attribute(Run(spans=no_spans, samples=_samples(5.0, 100.0, 104.0)))
    check = ledger.checks["power_vs_counter"]["GPU-x"]
    assert check["agree"] and check["windows"] == 1 and abs(check["ratio"] - 1.04) < 0.01
    assert not ledger.checks["warnings"]


def test_runs_shorter_than_two_seconds_are_not_checked() -> None:
    result = power_vs_counter(np.array([0.0, 1.5]), (np.array([0.0, 1.5]), np.array([0.0, 150.0])),
                              (np.array([0.0, 1.5]), np.array([0.0, 300.0])))
    assert result == {"checked": False, "reason": "run shorter than 2 s"}
    assert CHECK_TOLERANCE == 0.10


# ---- uncertainty --------------------------------------------------------------------------------


def test_uncertainty_is_mean_power_times_the_update_period() -> None:
    lines = build_timelines(_samples(5.0, 200.0, 200.0))
    period = lines[0].update_period_s
    starts = BASE_NS + np.array([1, 2, 3, 4]) * 1_000_000_000
    u = energy_uncertainty(np.array([200.0, 20.0, 0.0, np.nan]), np.array([1.0, 0.1, 0.0, 1.0]), starts,
                           starts + np.array([1_000_000_000, 100_000_000, 0, 1_000_000_000]), lines)
    np.testing.assert_allclose(u[:3], [200.0 * period, 200.0 * period, 0.0])
    assert np.isnan(u[3])


def test_integrated_power_uncertainty_grows_with_a_power_step_at_an_end() -> None:
    t = np.arange(0.0, 10.0001, 0.1)
    power = np.where(t < 5.0, 100.0, 400.0)
    samples = frame_from_rows({"t_ns": (BASE_NS + t * 1e9).astype(np.int64).tolist(),
                               "gpu": ["GPU-p"] * len(t), "power_w": power.tolist()}, SAMPLE_COLUMNS)
    lines = build_timelines(samples)
    ns = lambda s: BASE_NS + int(s * 1e9)  # noqa: E731
    calm, at_step = energy_uncertainty(np.array([200.0, 400.0]), np.array([2.0, 1.0]),
                                       np.array([ns(1.0), ns(5.0)]), np.array([ns(3.0), ns(6.0)]), lines)
    assert calm == pytest.approx(100.0 * 0.1 + 0.05 * 200.0)  # mean power x T, plus the gain error
    assert at_step == pytest.approx(400.0 * 0.1 + 300.0 * 0.1 + 0.05 * 400.0)  # plus the 300 W jump x T


def test_the_ledger_has_uncertainty_columns() -> None:
    spans = frame_from_rows([{"trace_id": "a" * 32, "span_id": "1" * 16, "session_id": "s", "name": "work",
                              "kind": "step", "status": "ok", "start_ns": BASE_NS + 1_000_000_000,
                              "end_ns": BASE_NS + 3_000_000_000, "attributes": {}}], SPAN_COLUMNS)
    ledger = profiler.attribute(Run(spans=spans, samples=_samples(5.0, 200.0, 200.0)))
    row = ledger.steps.set_index("name").loc["work"]
    assert row["energy_j"] == pytest.approx(400.0)
    assert row["energy_uncertainty_j"] == pytest.approx(200.0 * ledger.totals["gpus"][0]["update_period_s"])
    assert row["self_energy_uncertainty_j"] == pytest.approx(row["energy_uncertainty_j"])
