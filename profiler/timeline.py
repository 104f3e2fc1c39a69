"""Per-GPU cumulative curves: each measured quantity as a running total over time.

Every quantity becomes a non-decreasing (or at least telescoping) curve `Q(t)` sampled at the GPU's
sample times. The amount in any interval is `Q(b) - Q(a)` by linear interpolation, so amounts over
adjacent intervals add up exactly to the run's total: conservation by construction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

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
    """Median interval between energy-counter changes (the sensor's resolution)."""
    idle_power_w: float = math.nan
    """The idle baseline: a low percentile of power over the run."""
    mem_baseline_bytes: float = math.nan

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


def build_timelines(samples: pd.DataFrame, mem_baselines: dict[str, float] | None = None) -> list[GpuTimeline]:
    """Build one `GpuTimeline` per device that has at least two samples."""
    timelines = []
    for gpu, group in samples.groupby("gpu", sort=False):
        group = group.sort_values("t_ns", kind="stable")
        group = group[~group["t_ns"].duplicated(keep="last")]
        if len(group) < 2:
            continue
        baseline = (mem_baselines or {}).get(str(gpu))
        timelines.append(_timeline(str(gpu), group, baseline))
    return timelines


def _timeline(gpu: str, group: pd.DataFrame, mem_baseline: float | None) -> GpuTimeline:
    t = group["t_ns"].to_numpy(dtype=np.int64)
    dt_s = np.diff(t) / 1e9
    line = GpuTimeline(gpu=gpu, t_ns=t, curves={})
    line.curves["gpu_s"] = (t - t[0]) / 1e9
    line.sources["gpu_s"] = "measured:sample-clock"

    energy = _energy_curve(group, t, line)
    if energy is not None:
        line.curves["energy_j"] = energy
        power = group["power_w"].to_numpy(dtype=np.float64)
        if np.isfinite(power).any():
            line.idle_power_w = float(np.nanpercentile(power, 10))
        else:
            interval_w = np.diff(energy) / np.where(dt_s > 0, dt_s, np.nan)
            line.idle_power_w = float(np.nanpercentile(interval_w, 10)) if np.isfinite(interval_w).any() else 0.0
        line.curves["active_energy_j"] = energy - line.idle_power_w * line.curves["gpu_s"]
        line.sources["active_energy_j"] = line.sources["energy_j"] + " minus idle baseline"

    util = group["util_pct"].to_numpy(dtype=np.float64)
    busy = None
    if np.isfinite(util).any():
        busy = np.clip(pd.Series(util).ffill().bfill().to_numpy() / 100.0, 0.0, 1.0)
        line.curves["gpu_busy_s"] = _step_integral(busy, dt_s)
        line.sources["gpu_busy_s"] = "measured:utilization"

    held = _memory_held(group, line, mem_baseline)
    if held is not None:
        line.curves["gpu_mem_gib_s"] = _step_integral(held / GIB, dt_s)
        if busy is not None:
            line.curves["idle_hold_gib_s"] = _step_integral(held / GIB * (1.0 - busy), dt_s)
            line.sources["idle_hold_gib_s"] = line.sources["gpu_mem_gib_s"] + " x idle fraction"
    return line


def _energy_curve(group: pd.DataFrame, t: np.ndarray, line: GpuTimeline) -> np.ndarray | None:
    """Cumulative joules from the counter's change points, else from trapezoid-integrated power."""
    counter = group["energy_j"].to_numpy(dtype=np.float64)
    ok = np.isfinite(counter)
    if ok.sum() >= 2 and ok.mean() >= 0.5:
        tc, ec = t[ok], counter[ok]
        # The counter publishes every ~100 ms; interpolate between the instants it changed, plus
        # the first and last reads, so the total is exactly the counter's difference over the run.
        changed = np.concatenate([[True], np.diff(ec) != 0])
        changed[-1] = True
        knots_t, knots_e = tc[changed], ec[changed]
        change_intervals = np.diff(tc[np.concatenate([[False], np.diff(ec) != 0])]) / 1e9
        if len(change_intervals):
            line.update_period_s = float(np.median(change_intervals))
        line.sources["energy_j"] = "measured:nvml-counter"
        curve = np.interp(t.astype(np.float64), knots_t.astype(np.float64), knots_e - knots_e[0])
        return curve
    power = pd.Series(group["power_w"].to_numpy(dtype=np.float64))
    if not np.isfinite(power.to_numpy()).any():
        return None
    power = power.interpolate(limit_direction="both").to_numpy()
    dt_s = np.diff(t) / 1e9
    line.sources["energy_j"] = "measured:integrated-power"
    line.update_period_s = float(np.median(dt_s)) if len(dt_s) else math.nan
    return np.concatenate([[0.0], np.cumsum(dt_s * (power[1:] + power[:-1]) / 2.0)])


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
