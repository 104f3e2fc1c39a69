"""Per-GPU cumulative curves: each measured quantity as a running total over time.

Every quantity becomes a non-decreasing (or at least telescoping) curve `Q(t)` sampled at the GPU's
sample times (and, for energy, at the energy counter's located update instants between them: see
`profiler.energy.curves`). The amount in any interval is `Q(b) - Q(a)` by linear interpolation, so amounts
over adjacent intervals add up exactly to the run's total: conservation by construction. What is
known about the sensor (idle baseline, power against the counter) comes from `profiler.energy.sensor_checks`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from profiler.arrays import unique_sorted
from profiler.energy.curves import AVERAGE_WINDOW_S, counter_curve, power_curve
from profiler.energy.sensor_checks import GpuSensor, idle_power, power_vs_counter
from profiler.energy.update_grid import change_period

GIB = 1024.0**3
#: The quantities measured per GPU and conserved by attribution.
QUANTITIES = ("energy_j", "active_energy_j", "gpu_s", "gpu_busy_s", "gpu_mem_gib_s", "idle_hold_gib_s")


@dataclass
class GpuTimeline:
    """The cumulative curves of one device."""

    gpu: str
    t_ns: np.ndarray
    curves: dict[str, np.ndarray]
    """Quantity name -> cumulative value at each `t_ns`; a quantity the source lacks is absent."""
    sources: dict[str, str] = field(default_factory=dict)
    """Quantity name -> provenance (`measured:nvml-counter`, `measured:integrated-power`, ...)."""
    update_period_s: float = math.nan
    """The sensor's update period: the located one (`profiler.energy.update_grid.locate_updates`), else the median
    interval between the reads at which the counter changed, or between power readings."""
    idle_power_w: float = math.nan
    """The idle baseline (see `profiler.energy.sensor_checks.idle_power`)."""
    idle_power_method: str = "none"
    """How the idle baseline was taken: `idle-utilization`, `outside-steps` or `low-percentile`."""
    phase_located: float = 0.0
    """Share of the counter's reads whose update instant was located (0 when knots sit at read times)."""
    update_spread_s: float = math.nan
    """How far apart the grids that agree with every read put one update, at most (NaN where none
    was located; `profiler.energy.update_grid.UpdateGrid.spread`): a located update is off by less, and so is an
    edge in power at a step's end."""
    power_readings: tuple[np.ndarray, np.ndarray] | None = None
    """(t_ns, watts) of the power readings where energy is integrated from them, for the uncertainty
    of that energy near each step's ends (`profiler.energy.sensor_checks.energy_uncertainty`); 1 s averages
    at the times they stand for, not their read times."""
    power_reading: str = "read-time"
    """What `power_w` is: `instant`, `average` or `read-time` (`profiler.energy.sensor_checks.GpuSensor`)."""
    counter_probe: dict | None = None
    """The sampler's startup check of the energy counter, from run.json, where it ran."""
    power_check: dict | None = None
    """Integrated power against the counter (`profiler.energy.sensor_checks.power_vs_counter`); None
    without both."""
    mem_baseline_bytes: float = math.nan
    held_bytes: tuple[np.ndarray, np.ndarray] | None = None
    """(t_ns, bytes) of the memory the run held at each sample (the same measure as `gpu_mem_gib_s`),
    each value held until the next sample; None without memory samples."""

    @property
    def start_ns(self) -> int:
        """First sample time."""
        return int(self.t_ns[0])

    @property
    def end_ns(self) -> int:
        """Last sample time."""
        return int(self.t_ns[-1])

    def total(self, quantity: str) -> float:
        """The quantity over the whole run."""
        curve = self.curves[quantity]
        return float(curve[-1] - curve[0])

    def at(self, quantity: str, times_ns: np.ndarray) -> np.ndarray:
        """The cumulative curve interpolated at `times_ns`, held flat outside the sampled range."""
        return np.interp(times_ns.astype(np.float64), self.t_ns.astype(np.float64), self.curves[quantity])


def build_timelines(samples: pd.DataFrame, mem_baselines: dict[str, float] | None = None,
                    sensors: Mapping[str, GpuSensor] | None = None,
                    work: np.ndarray | None = None) -> list[GpuTimeline]:
    """Build one `GpuTimeline` per device that has at least two samples.

    Args:
        samples: `Run.samples`.
        mem_baselines: device memory used before the run, per GPU.
        sensors: what run.json says about each GPU's power reading and counter
            (`profiler.energy.sensor_checks.gpu_sensors`): instant readings and 1 s averages lag their
            read times and are placed where they belong (`profiler.energy.curves.power_curve`); a counter
            that failed its startup check is not used. A GPU not named is taken at face value.
        work: (start_ns, end_ns) of the agent's steps, so that the idle baseline can be taken
            outside them.
    """
    timelines = []
    for gpu, group in samples.groupby("gpu", sort=False):
        group = group.sort_values("t_ns", kind="stable")
        group = group[~group["t_ns"].duplicated(keep="last")]
        if len(group) < 2:
            continue
        baseline = (mem_baselines or {}).get(str(gpu))
        sensor = (sensors or {}).get(str(gpu)) or GpuSensor()
        timelines.append(_timeline(str(gpu), group, baseline, sensor, work))
    return timelines


def _timeline(gpu: str, group: pd.DataFrame, mem_baseline: float | None, sensor: GpuSensor,
              work: np.ndarray | None) -> GpuTimeline:
    t = group["t_ns"].to_numpy(dtype=np.int64)
    dt_s = np.diff(t) / 1e9
    line = GpuTimeline(gpu=gpu, t_ns=t, curves={}, power_reading=sensor.power_reading,
                       counter_probe=sensor.counter_probe)
    line.curves["gpu_s"] = (t - t[0]) / 1e9
    line.sources["gpu_s"] = "measured:sample-clock"

    util = group["util_pct"].to_numpy(dtype=np.float64)
    busy = None
    if np.isfinite(util).any():
        busy = np.clip(pd.Series(util).ffill().bfill().to_numpy() / 100.0, 0.0, 1.0)
        line.curves["gpu_busy_s"] = _step_integral(busy, dt_s)
        line.sources["gpu_busy_s"] = "measured:utilization"

    held = _memory_held(group, line, mem_baseline)
    if held is not None:
        line.held_bytes = (t, held)
        line.curves["gpu_mem_gib_s"] = _step_integral(held / GIB, dt_s)
        if busy is not None:
            line.curves["idle_hold_gib_s"] = _step_integral(held / GIB * (1.0 - busy), dt_s)
            line.sources["idle_hold_gib_s"] = line.sources["gpu_mem_gib_s"] + " x idle fraction"

    knots = _energy_knots(group, t, line, sensor)
    if knots is not None:
        # The energy curve bends at the counter's located update instants, between sample times:
        # put them on the timeline too (the other curves are linear between samples, so exact there).
        knots_ns = t[0] + np.round(knots[0] * 1e9).astype(np.int64)
        inside = (knots_ns > t[0]) & (knots_ns < t[-1])
        union = unique_sorted(np.concatenate([t, knots_ns[inside]]))
        if len(union) > len(t):
            line.curves = {q: np.interp(union, t, curve) for q, curve in line.curves.items()}
            line.t_ns = union
        energy = np.interp((line.t_ns - t[0]) / 1e9, knots[0], knots[1])
        line.curves["energy_j"] = energy
        line.idle_power_w, line.idle_power_method = idle_power(
            t, group["power_w"].to_numpy(dtype=np.float64), np.interp(t, line.t_ns, energy),
            group["util_pct"].to_numpy(dtype=np.float64), work)
        line.curves["active_energy_j"] = energy - line.idle_power_w * line.curves["gpu_s"]
        line.sources["active_energy_j"] = line.sources["energy_j"] + " minus idle baseline"
    return line


def _energy_knots(group: pd.DataFrame, t: np.ndarray, line: GpuTimeline,
                  sensor: GpuSensor) -> tuple[np.ndarray, np.ndarray] | None:
    """Knots (seconds since the first sample, cumulative joules) of the energy curve: from the counter
    where it answers and passed its startup check (at its located update instants, see
    `profiler.energy.curves`), else integrated power."""
    rel_s = (t - t[0]) / 1e9
    power = group["power_w"].to_numpy(dtype=np.float64)
    counter = group["energy_j"].to_numpy(dtype=np.float64)
    ok = np.isfinite(counter)
    average_s = AVERAGE_WINDOW_S if sensor.power_reading == "average" else None
    if ok.sum() >= 2 and ok.mean() >= 0.5 and sensor.counter_usable:
        # A 1 s average says nothing about where power changed inside a 100 ms period: no shape.
        shape = power[ok] if average_s is None else None
        knots_t, knots_e, grid = counter_curve(rel_s[ok], counter[ok], shape)
        line.update_period_s = (grid.period if math.isfinite(grid.period)
                                else change_period(rel_s[ok], counter[ok]))
        line.phase_located = grid.located_fraction
        line.update_spread_s = grid.spread
        line.sources["energy_j"] = "measured:nvml-counter"
        if np.isfinite(power).sum() >= 2:
            # Over windows of 10 s an instant reading's lag (under a period) hardly matters: plain
            # trapezoids; a 1 s average's half second does, and is taken out.
            line.power_check = power_vs_counter(rel_s[[0, -1]], (knots_t, knots_e),
                                                power_curve(rel_s, power, average_s=average_s)[:2])
        return knots_t, knots_e
    if not np.isfinite(power).any():
        return None
    knots_t, knots_e, period = power_curve(rel_s, power, instant=sensor.power_reading == "instant",
                                           average_s=average_s)
    line.update_period_s = period
    read = np.isfinite(power)
    shift_ns = 0
    if average_s is not None:
        # A 1 s average stands for the second before its update, about half a period before its read.
        shift_ns = int(round((average_s + (period if math.isfinite(period) else 0.0)) / 2.0 * 1e9))
    line.power_readings = (t[read] - shift_ns, power[read])
    line.sources["energy_j"] = "measured:integrated-power"
    return knots_t, knots_e


def _memory_held(group: pd.DataFrame, line: GpuTimeline, mem_baseline: float | None) -> np.ndarray | None:
    """Bytes held by the run: its processes' memory where known, else device memory above baseline."""
    proc = group["proc_mem_bytes"].to_numpy(dtype=np.float64)
    # Per-process memory only counts once it has seen the run hold something: all zeros usually means
    # NVML reports host PIDs that this (containerised) process cannot match, or a server outside the run.
    if np.isfinite(proc).any() and np.nanmax(proc) > 0:
        line.sources["gpu_mem_gib_s"] = "measured:process-memory"
        return pd.Series(proc).ffill().fillna(0.0).to_numpy()
    used = group["mem_used_bytes"].to_numpy(dtype=np.float64)
    if not np.isfinite(used).any():
        return None
    used = pd.Series(used).ffill().bfill().to_numpy()
    baseline = float(used[0]) if mem_baseline is None or not math.isfinite(mem_baseline) else mem_baseline
    line.mem_baseline_bytes = baseline
    line.sources["gpu_mem_gib_s"] = "measured:device-memory-above-baseline"
    return np.maximum(used - baseline, 0.0)


def _step_integral(values: np.ndarray, dt_s: np.ndarray) -> np.ndarray:
    """Integrate a step function (each value held until the next sample) into a cumulative curve."""
    return np.concatenate([[0.0], np.cumsum(values[:-1] * dt_s)])


def window_coverage(start_ns: np.ndarray, end_ns: np.ndarray, timelines: list[GpuTimeline]) -> np.ndarray:
    """The fraction of each interval that some GPU's samples cover (1 for an instant inside one).

    A step no GPU sampled has no measured figure, which is not the same as 0 J.
    """
    if not timelines:
        return np.zeros(len(start_ns))
    windows = sorted((line.start_ns, line.end_ns) for line in timelines)
    merged: list[list[int]] = []
    for first, last in windows:
        if merged and first <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], last)
        else:
            merged.append([first, last])
    start = start_ns.astype(np.float64)
    end = end_ns.astype(np.float64)
    covered = np.zeros(len(start))
    inside_instant = np.zeros(len(start), dtype=bool)
    for first, last in merged:
        covered += np.clip(np.minimum(end, last) - np.maximum(start, first), 0.0, None)
        inside_instant |= (start >= first) & (start <= last)
    duration = end - start
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(duration > 0, covered / duration, inside_instant.astype(float))
