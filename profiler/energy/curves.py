"""Energy over time from NVML readings: how each counter update's joules are spread over its period,
and power integrated where there is no counter (docs/gpus.md: "Energy between updates", "Integrating
power without a counter").

`counter_curve` interpolates the counter between its update instants, located from the reads
(`profiler.energy.update_grid`), distributing each period's joules with the instant-power readings as
shape (a step from the previous period's power to this one's, placed so that the period's total is
kept exactly). `power_curve` is the fallback without a counter: each instant-power reading stands
for the window just before the update it came from, and a 1 s average (the only power some
Ampere-and-later devices give) for the second before it, so it is integrated shifted back by half a
second, never where it was read. Both curves are cumulative joules, so span energies are
differences and the total is conserved.
"""

from __future__ import annotations

import math

import numpy as np

from profiler.energy.update_grid import UpdateGrid, locate_updates

#: The part of each update period that the instant-power reading averages, at the period's end:
#: A100/H100 sample 25 ms of every 100 ms (docs/gpus.md#instant-power); it stands T/8 before its update.
INSTANT_WINDOW = 0.25
#: NVML's update period on datacenter parts, assumed where it cannot be measured (docs/gpus.md#the-energy-counter).
DEFAULT_UPDATE_PERIOD_S = 0.1
#: The window of `nvmlDeviceGetPowerUsage` from Ampere on (GA100 excepted): a trailing 1 s average
#: (docs/gpus.md#the-1-s-average). It reaches 1 s back from its update; a trailing
#: boxcar's delay is half its window, so a reading belongs 0.5 s before its update (plus the
#: update's own lag behind the read), where its window's centre is.
AVERAGE_WINDOW_S = 1.0


def counter_curve(t: np.ndarray, energy: np.ndarray, power: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, UpdateGrid]:
    """Knots of the cumulative energy curve from counter readings.

    Args:
        t: read times in seconds (increasing), only reads that have a counter value.
        energy: the counter at each read, in joules.
        power: instant power at each read (watts, NaN where missing), for the shape within periods.

    Returns:
        (knot times, cumulative joules since the first read, the located grid). The curve starts at
        (t[0], 0) and ends at (t[-1], energy[-1] - energy[0]): the counter's own difference.
    """
    changed = np.concatenate([[False], np.diff(energy) != 0])
    grid = locate_updates(t, changed)
    e = energy - energy[0]
    reads = np.flatnonzero(changed)
    # Each change at its located update (inside its bracket), else at the read that saw it.
    at = np.where(np.isfinite(grid.instant[reads]), grid.instant[reads], t[reads])
    at = np.maximum.accumulate(np.clip(at, t[np.maximum(reads - 1, 0)], t[reads]))
    knots_t, knots_e = [float(t[0])], [0.0]
    for j, i in enumerate(reads):
        if knots_t[-1] >= at[j]:
            continue  # (only where clipping left two changes at one instant)
        if power is not None and j and _same_grid(grid, reads[j - 1], i):
            step = _step_within(knots_t[-1], knots_e[-1], float(at[j]), float(e[i]), power[reads[j - 1]],
                                power[i], _level_after(grid, power, reads, j), grid.period * INSTANT_WINDOW)
            if step is not None:
                knots_t.append(step[0])
                knots_e.append(step[1])
        knots_t.append(float(at[j]))
        knots_e.append(float(e[i]))
    if knots_t[-1] < t[-1]:
        knots_t.append(float(t[-1]))
        knots_e.append(float(e[-1]))
    return np.asarray(knots_t), np.asarray(knots_e), grid


def _level_after(grid: UpdateGrid, power: np.ndarray, reads: np.ndarray, j: int) -> float:
    """The power read at the update after change `j`, if the same located grid placed it."""
    if j + 1 >= len(reads) or not _same_grid(grid, reads[j], reads[j + 1]):
        return math.nan
    return float(power[reads[j + 1]])


def _same_grid(grid: UpdateGrid, a: int, b: int) -> bool:
    """Whether reads `a` and `b` saw updates placed by one located grid (so that the time between
    their knots is a whole number of update periods)."""
    return bool(grid.segment[a] >= 0 and grid.segment[a] == grid.segment[b])


def _step_within(t0: float, e0: float, t1: float, e1: float, p_start: float, p_end: float,
                 p_after: float = math.nan, window: float = 0.0) -> tuple[float, float] | None:
    """Where power stepped between two located updates, keeping the joules published between them
    (docs/gpus.md#energy-between-updates: power for shape, the counter for the total).

    The mean power `p` between the updates lies between the power read at the first (`p_start`) and
    at the second (`p_end`) when one step explains it: `p_start` for a fraction g of the time, then
    `p_end`, with `g = (p_end - p) / (p_end - p_start)`. This is exact for a step inside the period
    (a kernel starting or ending) and close for a ramp. The reading at the second update averages
    only the end of its period (`INSTANT_WINDOW`), so a step inside that window leaves it between
    the two levels; when the next update's reading (`p_after`) explains both the mean and that
    mixed reading (the average over the last `window` seconds before t1), the step goes to
    `p_after` instead. Otherwise (no step, or a spike) it stays linear.
    """
    if not (math.isfinite(p_start) and math.isfinite(p_end)) or t1 <= t0:
        return None
    mean = (e1 - e0) / (t1 - t0)
    for after, level in ((True, p_after), (False, p_end)):
        if not math.isfinite(level):
            continue
        low, high = min(p_start, level), max(p_start, level)
        if high - low < 1e-6 * max(high, 1.0) or not low < mean < high:
            continue
        g = (level - mean) / (level - p_start)
        if after:
            # The window average this step predicts for the reading at t1 must match what was read
            # (to 10% of the step: a millisecond off in the located updates is 4% of a 25 ms window).
            share = min(window / (t1 - t0), 1.0)
            if share <= 0:
                continue
            inside = min(max((g - (1.0 - share)) / share, 0.0), 1.0)
            if abs(p_start * inside + level * (1.0 - inside) - p_end) > 0.1 * (high - low):
                continue
        at = t0 + g * (t1 - t0)
        return at, e0 + p_start * (at - t0)
    return None


def power_curve(t: np.ndarray, power: np.ndarray, *, instant: bool = False,
                average_s: float | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """Knots of the cumulative energy curve integrated from power readings, for devices without a
    counter (docs/gpus.md#integrating-power-without-a-counter).

    Args:
        t: read times in seconds, increasing.
        power: watts per read, NaN where missing.
        instant: the readings are NVML's instant-power field as our sampler reads it. Each is then
            the sensor's average over a window that ends at the last update before the read (the
            last quarter of the period on A100/H100), and stands at that window's centre, `T/8`
            before the update: where the updates can be located from the readings' own changes,
            there; elsewhere `5T/8` before the read, its expected place when reads fall at every
            phase of the period (T = `DEFAULT_UPDATE_PERIOD_S` when unknown). Otherwise (another
            tool's samples, e.g. an nvidia-smi CSV) the readings stand at their read times.
        average_s: the readings are trailing averages over this many seconds, published at each
            update like instant readings (`nvmlDeviceGetPowerUsage` from Ampere on, where a device
            has no instant field: `AVERAGE_WINDOW_S`). Each stands at its window's centre,
            `average_s / 2` before its update, instead of at its read: integrated unshifted, the
            average lags the power by about that much and moves `lag x step` joules across each
            span end near a change in power.

    Returns:
        (knot times, cumulative joules, zero at t[0]; the update period in seconds: for instant
        and average readings the located one, else `DEFAULT_UPDATE_PERIOD_S`; otherwise the
        readings' median interval). The curve is linear through the points (trapezoids).
    """
    ok = np.isfinite(power)
    if ok.sum() < 2:
        level = float(power[ok][0]) if ok.any() else 0.0
        return np.array([t[0], t[-1]]), np.array([0.0, level * (t[-1] - t[0])]), math.nan
    if not instant and average_s is None:
        filled = np.interp(t, t[ok], power[ok])  # gaps bridged linearly, ends held
        cumulative = np.concatenate([[0.0], np.cumsum(np.diff(t) * (filled[1:] + filled[:-1]) / 2.0)])
        return t, cumulative, float(np.median(np.diff(t)))
    tp, pw = t[ok], power[ok]
    grid = locate_updates(tp, np.concatenate([[False], np.diff(pw) != 0]))
    period = grid.period if math.isfinite(grid.period) else DEFAULT_UPDATE_PERIOD_S
    update = np.where(np.isfinite(grid.instant), grid.instant, tp - period / 2.0)
    window = period * INSTANT_WINDOW if average_s is None else average_s
    centre = np.maximum.accumulate(update - window / 2.0)
    first = np.concatenate([[True], np.diff(centre) > 0])  # one point per update period
    centre, pw = centre[first], pw[first]
    # Held at the last reading to the end, and at the first one before its point.
    knots_t = np.concatenate([[min(t[0], centre[0])], centre, [max(t[-1], centre[-1])]])
    values = np.concatenate([[pw[0]], pw, [pw[-1]]])
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(knots_t) * (values[1:] + values[:-1]) / 2.0)])
    return knots_t, cumulative - np.interp(t[0], knots_t, cumulative), period
