"""Knowing the sensor: the energy counter's startup check, what each GPU's power reading is, the idle
baseline, the power-versus-counter cross-check and each step's energy uncertainty (docs/gpus.md:
"The counter's startup check", "Power against the counter", "The idle baseline", "Accuracy and uncertainty").

`profiler.gpu.counter_probe` calls `judge_counter` on its burst of reads at the start of sampling;
`profiler.energy.timeline` calls `idle_power` and `power_vs_counter` while it builds each GPU's curves, from
what `gpu_sensors` read in run.json; `profiler.attribution.ledger` calls `energy_uncertainty` and `add_checks`.
Nothing here reads the hardware.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from profiler.energy.curves import AVERAGE_WINDOW_S
from profiler.energy.update_grid import change_period
from profiler.model import SESSION_KIND, UNATTRIBUTED_KIND

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
#: The gain error of the power sensor (docs/gpus.md#accuracy-and-uncertainty: about +-5%), added to the
#: uncertainty of energy integrated from power, which has no counter to anchor it.
POWER_GAIN_ERROR = 0.05
#: The startup check's tolerance between the counter and power (docs/gpus.md#the-counters-startup-check:
#: within 30%). Wider than `CHECK_TOLERANCE`: its second holds only ~10 updates of a sensor that sees
#: 25 ms of each 100 ms, where the run's check has 10 s windows.
PROBE_TOLERANCE = 0.30
#: The fewest counter updates (each paired with the power read with it) the startup check weighs
#: against power: fewer hold too little of a duty-cycled sensor's view to judge by.
PROBE_MIN_UPDATES = 4
#: NVML's slowest telemetry refresh (the driver polls at most every 1000 ms, docs/gpus.md#the-counters-startup-check): a
#: counter that does not change for longer than this is stuck.
MAX_UPDATE_PERIOD_S = 1.0
#: Startup verdicts under which the counter's joules are not used: energy is integrated from power.
UNUSABLE_COUNTER = ("stuck", "decreasing")
#: Architectures whose `nvmlDeviceGetPowerUsage` is instant. From Ampere on it is a 1 s average,
#: except on GA100 (A100, A30, A800), as NVML's header says.
_INSTANT_USAGE_ARCHS = frozenset({"kepler", "maxwell", "pascal", "volta", "turing"})
_GA100 = re.compile(r"\bA(100|30|800)\b")


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
        percentile, never the minimum (docs/gpus.md#the-idle-baseline).
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
    work = ~steps["kind"].isin([SESSION_KIND, UNATTRIBUTED_KIND]).to_numpy()
    # The two columns first, then the rows: selecting rows of the whole table copies every column.
    return steps[["start_ns", "end_ns"]].to_numpy(dtype=np.int64)[work]


@dataclass(frozen=True, slots=True)
class GpuSensor:
    """What run.json says about one GPU's power reading and energy counter."""

    power_reading: str = "read-time"
    """`instant`: NVML's instant-power field, read by our sampler; `average`: NVML's 1 s average, the
    only power the device gave (`nvmlDeviceGetPowerUsage` from Ampere on); `read-time`: anything
    else (an instant `nvmlDeviceGetPowerUsage` before Ampere, another tool's samples)."""
    counter_probe: dict[str, Any] | None = None
    """The sampler's startup check of the energy counter (`judge_counter`), where it ran."""

    @property
    def counter_usable(self) -> bool:
        """Whether the startup check left the counter's joules usable (not stuck, not decreasing)."""
        return not (self.counter_probe and self.counter_probe.get("verdict") in UNUSABLE_COUNTER)


#: What a `power_w` reading can be (see `GpuSensor.power_reading`).
POWER_READINGS = ("instant", "average", "read-time")


def gpu_sensors(meta: dict[str, Any]) -> dict[str, GpuSensor]:
    """Each GPU's `GpuSensor`, by uuid, from run.json's `gpus` (details and startup check), and
    `power_readings` (uuid -> a `POWER_READINGS` value), which a samples file sets where its own
    columns say what its power is (an nvidia-smi CSV's `power.draw.average`)."""
    found = {}
    for gpu in meta.get("gpus", []) or []:
        if isinstance(gpu, dict):
            probe = gpu.get("counter_probe")
            probe = probe if isinstance(probe, dict) else None
            found[str(gpu.get("uuid"))] = GpuSensor(_power_reading(gpu), probe)
    stated = meta.get("power_readings")
    for uuid, reading in (stated.items() if isinstance(stated, dict) else ()):
        if reading in POWER_READINGS:
            known = found.get(str(uuid))
            found[str(uuid)] = GpuSensor(reading, known.counter_probe if known is not None else None)
    return found


def _power_reading(gpu: dict[str, Any]) -> str:
    """What a GPU's `power_w` is, from the probe's `power_source`, architecture and name."""
    details = gpu.get("details") or {}
    source = str(details.get("power_source") or "")
    if source.startswith("field_instant"):
        return "instant"
    arch = details.get("architecture")
    # No architecture (an old driver, so an old GPU) or NVML's own "unknown": taken as instant,
    # standing at its read time like any reading whose window is unknown.
    if source != "power_usage" or not arch or arch == "unknown" or arch in _INSTANT_USAGE_ARCHS:
        return "read-time"
    return "read-time" if _GA100.search(str(gpu.get("name") or "")) else "average"


def judge_counter(t_s: np.ndarray, energy_j: np.ndarray, power_w: np.ndarray) -> dict[str, Any]:
    """Check an energy counter against itself and against power, from a burst of fast reads
    (`profiler.gpu.counter_probe`, about 1 s of reads every 10 ms at the start of sampling).

    Args:
        t_s: read times in seconds, increasing.
        energy_j: the counter at each read, NaN where the read failed.
        power_w: power at each read (the same reads), NaN where missing.

    Returns:
        `verdict`: `ok`; `stuck` (no change for longer than `MAX_UPDATE_PERIOD_S`); `decreasing`;
        `disagrees` (power's joules over the counter's outside 1 +- `PROBE_TOLERANCE`); or
        `unvalidated` (`reason` says why: too few reads or updates, no power to compare with).
        With `reads`, `window_s`, `changes`, the counter's `update_period_ms`
        (`profiler.energy.update_grid.change_period`), `power_ratio` and, for a bad verdict, `problem` (one
        sentence, for a warning).
    """
    ok = np.isfinite(energy_j)
    t, energy, power = t_s[ok], energy_j[ok], power_w[ok]
    window = float(t[-1] - t[0]) if len(t) else 0.0
    steps = np.diff(energy)
    result: dict[str, Any] = {"reads": int(len(t)), "window_s": window, "changes": int((steps != 0).sum()),
                              "update_period_ms": None, "power_ratio": None, "tolerance": PROBE_TOLERANCE}
    if len(t) < 2:
        return {**result, "verdict": "unvalidated", "reason": "fewer than two counter readings"}
    if (steps < 0).any():
        return {**result, "verdict": "decreasing",
                "problem": f"the energy counter went down by {-steps.min():.3f} J between two reads"}
    changed_at = t[np.flatnonzero(steps) + 1]
    longest = float(np.diff(np.concatenate([[t[0]], changed_at, [t[-1]]])).max())
    if longest > MAX_UPDATE_PERIOD_S:
        drawing = np.nanmedian(power) if np.isfinite(power).any() else math.nan
        return {**result, "verdict": "stuck",
                "problem": f"the energy counter did not change for {longest:.2f} s"
                + (f" while the GPU drew {drawing:.0f} W" if math.isfinite(drawing) else "")}
    period = change_period(t, energy)
    result["update_period_ms"] = period * 1e3 if math.isfinite(period) else None
    ratio = _power_ratio(t, energy, power, period)
    result["power_ratio"] = ratio if math.isfinite(ratio) else None
    if not math.isfinite(ratio):
        reason = "no power readings to compare with" if not np.isfinite(power).any() else (
            f"fewer than {PROBE_MIN_UPDATES} counter updates with a power reading in {window:.2f} s")
        return {**result, "verdict": "unvalidated", "reason": reason}
    if abs(ratio - 1.0) > PROBE_TOLERANCE:
        return {**result, "verdict": "disagrees",
                "problem": f"integrated power was {ratio:.2f}x the energy counter's joules over "
                f"{window:.1f} s (more than {PROBE_TOLERANCE:.0%} apart)"}
    return {**result, "verdict": "ok"}


def _power_ratio(t: np.ndarray, energy: np.ndarray, power: np.ndarray, period_s: float) -> float:
    """Power's joules over the counter's, update by update.

    The read that first shows an update also shows the power published with it, which averages
    the end of the same period whose joules the update added: pairing the two keeps a change in
    power (an agent starting work) from landing in one sum a period before the other.
    """
    at = np.flatnonzero(np.diff(energy) != 0) + 1
    if len(at) < 2 or not math.isfinite(period_s):
        return math.nan
    added = np.diff(energy[at])
    periods = np.maximum(np.round(np.diff(t[at]) / period_s), 1.0)  # a stalled read saw two at once
    watts = power[at[1:]]
    valid = np.isfinite(watts) & (watts > 0)  # a 0 W reading is a failed one (polled too fast)
    if valid.sum() < PROBE_MIN_UPDATES or added[valid].sum() <= 0:
        return math.nan
    return float((watts[valid] * periods[valid] * period_s).sum() / added[valid].sum())


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
        within `CHECK_TOLERANCE`). Zeus saw a 1.7x gap at idle (docs/gpus.md#power-against-the-counter).
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
    """Record each GPU's startup check of its counter in `checks["counter_probe"]` and its
    power-versus-counter check in `checks["power_vs_counter"]`, with a warning in
    `checks["warnings"]` for each that found a problem, and for energy integrated from a 1 s average."""
    for line in timelines:
        _add_sensor_checks(checks, line)
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


def _add_sensor_checks(checks: dict[str, Any], line: Any) -> None:
    """The startup check's verdict on one GPU's counter, and how its energy was integrated."""
    warnings = checks.setdefault("warnings", [])
    integrated = line.sources.get("energy_j") == "measured:integrated-power"
    probe = getattr(line, "counter_probe", None)
    if probe:
        checks.setdefault("counter_probe", {})[line.gpu] = probe
        if probe.get("problem"):
            if probe.get("verdict") not in UNUSABLE_COUNTER:
                outcome = ("one of the two is off: energy still comes from the counter, but the idle "
                           "baseline and the power shapes come from power")
            elif integrated:
                outcome = "its joules are not used: energy is integrated from power instead"
            else:
                outcome = "its joules are not used, and with no power reading energy is not measured"
            warnings.append(f"GPU {line.gpu}: at startup {probe['problem']}; {outcome}")
    if integrated and getattr(line, "power_reading", None) == "average":
        warnings.append(
            f"GPU {line.gpu}: no energy counter and no instant power reading; energy is integrated from "
            f"NVML's {AVERAGE_WINDOW_S:g} s average power, moved back {AVERAGE_WINDOW_S / 2:g} s to where it "
            "was drawn, and estimated: a change in power is smeared over a second (see energy_uncertainty_j)")


def energy_uncertainty(energy_j: np.ndarray, wall_s: np.ndarray, start_ns: np.ndarray, end_ns: np.ndarray,
                       timelines: list[Any]) -> np.ndarray:
    """About how far each step's energy may be off, in joules.

    From the counter: the step's mean power times the update period, `energy / wall_s * T` (T the
    longest of the GPUs'). The counter publishes once per period, so where a step's ends fall inside
    a period is modelled (`profiler.energy.curves`), not measured: up to about one period's joules.

    Integrated from power (no counter), more: the instant reading sees only part of each period, so
    a step in power inside a period can land anywhere in it. Each end of the step adds the largest
    jump between consecutive readings within a period or so of it, times T; and the sensor's gain
    error adds `POWER_GAIN_ERROR * energy`. Integrated from a 1 s average (window W), a step in
    power becomes a ramp W long centred on it, which misplaces up to `step x W / 8` joules across
    an end at the step, and placing the update behind each reading up to `step x T / 2` more: each
    end adds the spread of the readings within `W/2 + T` of it, times `W/8 + T/2`.

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
                ends += _end_error_j(line, np.asarray(at, dtype=np.int64), period)
        uncertainty = uncertainty + np.where(wall > 0, ends, 0.0) + POWER_GAIN_ERROR * np.abs(energy)
    return np.where(np.isfinite(energy) & np.isfinite(wall), uncertainty, np.nan)


def _end_error_j(line: Any, at_ns: np.ndarray, period_s: float) -> np.ndarray:
    """Joules that integrated power may misplace across a step's end at each of `at_ns`."""
    if getattr(line, "power_reading", None) == "average":
        reach_s = AVERAGE_WINDOW_S / 2.0 + period_s
        return _spread_near(*line.power_readings, at_ns, reach_s) * (AVERAGE_WINDOW_S / 8.0 + period_s / 2.0)
    return _jump_near(*line.power_readings, at_ns, period_s) * period_s


def _spread_near(t_ns: np.ndarray, watts: np.ndarray, at_ns: np.ndarray, reach_s: float) -> np.ndarray:
    """The spread (largest minus smallest) of the readings within `reach_s` of each instant."""
    first = np.searchsorted(t_ns, at_ns - reach_s * 1e9, side="left")
    last = np.searchsorted(t_ns, at_ns + reach_s * 1e9, side="right")
    high, low = np.full(len(at_ns), -np.inf), np.full(len(at_ns), np.inf)
    for offset in range(int(np.max(last - first, initial=0))):  # a dozen readings or so
        k = first + offset
        inside = k < last
        value = watts[np.minimum(k, len(watts) - 1)]
        high = np.where(inside, np.maximum(high, value), high)
        low = np.where(inside, np.minimum(low, value), low)
    return np.where(last - first >= 2, high - low, 0.0)


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
