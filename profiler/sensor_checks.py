"""Knowing the sensor: the idle baseline, the power-versus-counter cross-check and each step's
energy uncertainty (nvml-notes (a) steps 3, 6 and 7; pitfalls 3, 8).

`profiler.timeline` calls `idle_power` and `power_vs_counter` while it builds each GPU's curves;
`profiler.ledger` calls `energy_uncertainty` and `add_checks`. Nothing here reads the hardware.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from profiler.tree import SESSION_KIND, UNATTRIBUTED_KIND

#: Utilization (%) at or under which a sample counts as idle for the baseline.
IDLE_UTIL_PCT = 5.0
#: The baseline is this percentile of the idle samples' power: low, to keep out the tail of work
#: that lingers in a lagging reading, but not the minimum, which is one noisy reading (Kepler's mistake).
IDLE_PERCENTILE = 25.0
#: Where idle samples cannot be told apart, the baseline is this percentile of every sample.
FALLBACK_PERCENTILE = 10.0
#: Fewer idle samples than this are not trusted as a baseline.
MIN_IDLE_SAMPLES = 5
#: The cross-check compares the two over windows this long (the whole run when it is shorter) ...
CHECK_WINDOW_S = 10.0
#: ... but not over runs shorter than this, where the counter's quantisation dominates.
CHECK_MIN_S = 2.0
#: A disagreement larger than this (as a fraction of the counter's joules) is warned about.
CHECK_TOLERANCE = 0.10
#: The board-to-board gain error of the power sensor (nvml-notes (b): about +-5%), added to the
#: uncertainty of energy integrated from power, which has no counter to anchor it.
POWER_GAIN_ERROR = 0.05


def idle_power(t_ns: np.ndarray, power_w: np.ndarray, energy_j: np.ndarray, util_pct: np.ndarray,
               work: np.ndarray | None = None) -> tuple[float, str]:
    """The GPU's idle baseline in watts, and how it was taken.

    Args:
        t_ns: sample times.
        power_w: power per sample (NaN where missing); where there is none at all, the energy
            curve's slope between samples stands in.
        energy_j: the cumulative energy curve at `t_ns`.
        util_pct: utilization per sample (NaN where not read; the last reading holds).
        work: (start_ns, end_ns) rows of the run's steps other than sessions (the agent's work).

    Returns:
        (watts, method): `IDLE_PERCENTILE` of the power in samples at or under `IDLE_UTIL_PCT`
        utilization (`idle-utilization`), else in samples outside every step
        (`outside-steps`), else `FALLBACK_PERCENTILE` of all samples (`low-percentile`). A low
        percentile, never the minimum (nvml-notes pitfall 8).
    """
    power = np.asarray(power_w, dtype=np.float64)
    if not np.isfinite(power).any():
        dt = np.diff(t_ns) / 1e9
        with np.errstate(divide="ignore", invalid="ignore"):
            slope = np.where(dt > 0, np.diff(energy_j) / dt, np.nan)
        power = np.concatenate([slope, [np.nan]])
    if not np.isfinite(power).any():
        return 0.0, "none"
    util = pd.Series(np.asarray(util_pct, dtype=np.float64)).ffill().to_numpy()
    selections = [("idle-utilization", util <= IDLE_UTIL_PCT)]
    if work is not None and len(work):
        selections.append(("outside-steps", ~_inside_any(t_ns, work)))
    for method, chosen in selections:
        picked = power[chosen & np.isfinite(power)]
        if len(picked) >= MIN_IDLE_SAMPLES:
            return float(np.percentile(picked, IDLE_PERCENTILE)), method
    return float(np.nanpercentile(power, FALLBACK_PERCENTILE)), "low-percentile"


def _inside_any(t_ns: np.ndarray, intervals: np.ndarray) -> np.ndarray:
    """Whether each time lies inside one of the [start, end] intervals."""
    order = np.argsort(intervals[:, 0], kind="stable")
    starts, ends = intervals[order, 0], np.maximum.accumulate(intervals[order, 1])
    last = np.searchsorted(starts, t_ns, side="right") - 1  # the last interval starting at or before t
    return (last >= 0) & (t_ns <= ends[np.maximum(last, 0)])


def work_intervals(steps: pd.DataFrame) -> np.ndarray:
    """(start_ns, end_ns) of the steps that are the agent's work: every row but sessions."""
    if not len(steps):
        return np.zeros((0, 2), dtype=np.int64)
    work = steps[~steps["kind"].isin([SESSION_KIND, UNATTRIBUTED_KIND])]
    return work[["start_ns", "end_ns"]].to_numpy(dtype=np.int64)


def instant_power_gpus(meta: dict[str, Any]) -> frozenset[str]:
    """The GPUs whose run.json says their power is NVML's instant-power field (read by our sampler)."""
    found = set()
    for gpu in meta.get("gpus", []) or []:
        if isinstance(gpu, dict) and str((gpu.get("details") or {}).get("power_source") or "").startswith(
                "field_instant"):
            found.add(str(gpu.get("uuid")))
    return frozenset(found)


def power_vs_counter(t_s: np.ndarray, counter: tuple[np.ndarray, np.ndarray],
                     power: tuple[np.ndarray, np.ndarray]) -> dict[str, Any]:
    """Compare integrated power with the energy counter over windows of `CHECK_WINDOW_S`.

    Args:
        t_s: the first and last sample times, in seconds (the run's extent).
        counter: knots (seconds, cumulative joules) of the counter's curve.
        power: knots of the curve integrated from power readings.

    Returns:
        `{"checked": False, "reason": ...}` for a run under `CHECK_MIN_S`; else the overall
        `ratio` (power / counter), the `window_s`, `windows`, `min_ratio`, `max_ratio`, the
        `worst_window_s` [start, end] (seconds from the first sample) and `agree` (every window
        within `CHECK_TOLERANCE`). Zeus saw a 1.7x gap at idle (nvml-notes (b)).
    """
    start, end = float(t_s[0]), float(t_s[-1])
    duration = end - start
    if duration < CHECK_MIN_S:
        return {"checked": False, "reason": f"run shorter than {CHECK_MIN_S:g} s"}
    count = max(1, int(duration // CHECK_WINDOW_S))
    edges = start + np.concatenate([np.arange(count) * CHECK_WINDOW_S, [duration]])
    by_counter = np.diff(np.interp(edges, *counter))
    by_power = np.diff(np.interp(edges, *power))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(by_counter > 0, by_power / by_counter, np.where(by_power > 0, np.inf, 1.0))
    worst = int(np.argmax(np.abs(ratios - 1.0)))
    overall = float(by_power.sum() / by_counter.sum()) if by_counter.sum() > 0 else math.inf
    return {
        "checked": True, "ratio": overall, "window_s": float(min(CHECK_WINDOW_S, duration)), "windows": count,
        "min_ratio": float(ratios.min()), "max_ratio": float(ratios.max()),
        "worst_window_s": [float(edges[worst] - start), float(edges[worst + 1] - start)],
        "agree": bool(np.all(np.abs(ratios - 1.0) <= CHECK_TOLERANCE)),
    }


def add_checks(checks: dict[str, Any], timelines: list[Any]) -> None:
    """Record each GPU's power-versus-counter check in `checks["power_vs_counter"]`, and a warning
    in `checks["warnings"]` for each that disagrees."""
    report = checks.setdefault("power_vs_counter", {})
    for line in timelines:
        result = getattr(line, "power_check", None)
        if result is None:
            continue
        report[line.gpu] = result
        if result.get("checked") and not result["agree"]:
            ratio = result["max_ratio"] if abs(result["max_ratio"] - 1) >= abs(result["min_ratio"] - 1) \
                else result["min_ratio"]
            a, b = result["worst_window_s"]
            checks.setdefault("warnings", []).append(
                f"GPU {line.gpu}: integrated instant power is {ratio:.2f}x the energy counter over "
                f"{a:.0f}-{b:.0f} s of the run (more than {CHECK_TOLERANCE:.0%} apart); energy comes from "
                "the counter, but the idle baseline and power shapes may be off (a module-scope or "
                "averaged power reading, or a faulty counter)")


def energy_uncertainty(energy_j: np.ndarray, wall_s: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray,
                       timelines: list[Any]) -> np.ndarray:
    """About how far each step's energy may be off, in joules.

    From the counter: the step's mean power times the update period, `energy / wall_s * T` (T the
    longest of the GPUs'). The counter publishes once per period, so where a step's ends fall inside
    a period is modelled (`profiler.energy`), not measured: up to about one period's joules.

    Integrated from power (no counter), more: the instant reading sees only part of each period, so
    a step in power inside a period can land anywhere in it. Each end of the step adds the largest
    jump between consecutive readings within a period or so of it, times T; and the sensor's gain
    error adds `POWER_GAIN_ERROR * energy`.

    NaN where the energy is NaN; 0 for a step of no duration.
    """
    if not timelines:
        return np.full(len(energy_j), np.nan)
    periods = [t.update_period_s for t in timelines if math.isfinite(t.update_period_s)]
    period = max(periods) if periods else 0.1
    energy = np.asarray(energy_j, dtype=np.float64)
    wall = np.asarray(wall_s, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_w = np.where(wall > 0, energy / wall, 0.0)
    uncertainty = np.abs(mean_w) * period
    integrated = [t for t in timelines if getattr(t, "power_readings", None) is not None]
    if integrated:
        ends = np.zeros(len(energy))
        for line in integrated:
            for at in (start_ns, end_ns):
                ends += _jump_near(*line.power_readings, np.asarray(at, dtype=np.int64), period)
        uncertainty = uncertainty + np.where(wall > 0, ends * period, 0.0) + POWER_GAIN_ERROR * np.abs(energy)
    return np.where(np.isfinite(energy) & np.isfinite(wall), uncertainty, np.nan)


def _jump_near(t_ns: np.ndarray, watts: np.ndarray, at_ns: np.ndarray, period_s: float) -> np.ndarray:
    """The largest change between consecutive readings within a period and a read interval of each
    instant (0 where none)."""
    if len(t_ns) < 2:
        return np.zeros(len(at_ns))
    jumps = np.abs(np.diff(watts))
    middle = (t_ns[:-1] + t_ns[1:]) / 2.0
    reach = (period_s + float(np.median(np.diff(t_ns))) / 1e9) * 1e9
    first = np.searchsorted(middle, at_ns - reach, side="left")
    last = np.searchsorted(middle, at_ns + reach, side="right")
    # The maximum over each [first, last) range, a few readings long.
    best = np.zeros(len(at_ns))
    for offset in range(int(np.max(last - first, initial=0))):
        k = first + offset
        inside = k < last
        best = np.where(inside, np.maximum(best, jumps[np.minimum(k, len(jumps) - 1)]), best)
    return best
