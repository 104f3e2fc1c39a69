"""Energy over time from NVML readings: where the counter's updates happened, and how each update's
joules are spread over its period (nvml-notes (a), "Integrating energy over a span", steps 1-5).

NVML's energy counter and instant power change once per update period T (about 100 ms). A read
returns the value of the last update, so the first read that shows a new value is late by up to
one read interval. Placing the counter's knots at read times delays the whole energy curve by that
lag, which moves about `lag x (P(end) - P(start))` joules across each span's ends: 3% of a 1 s span
whose power steps from 80 W to 450 W.

`locate_updates` finds the update instants instead. The sampler dithers the phase of its reads
(`profiler.sampler`), so within a few seconds they fall at every phase of the update period; each
pair of consecutive reads says "the counter changed between us" or "it did not", and together these
brackets pin down a regular grid `U_m = theta + m*T`, window by window (so a drifting driver timer is
followed). Where the brackets cannot pin it down (reads no faster than the counter, or a replay of
another tool's samples) the knots stay at the read times, as before.

`counter_curve` then interpolates the counter between the located update instants, distributing each
period's joules with the instant-power readings as shape (a step from the previous period's power to
this one's, placed so that the period's total is kept exactly). `power_curve` is the fallback without a
counter: each instant-power reading stands for the window just before the update it came from.
Both curves are cumulative joules, so span energies are differences and the total is conserved.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Reads per window in which one regular update grid is fitted (about 6 s at 10 Hz).
WINDOW_READS = 60
#: Fewer reads than this locate nothing.
MIN_READS = 20
#: Share of a window's brackets that a grid may fail to explain and still be followed.
MAX_MISFITS = 0.03
#: Phases tried per period when (re)acquiring a grid.
PHASE_BINS = 256
#: Where the instant-power reading sits in its update period, as the fraction of T before the
#: update: A100/H100 average the last quarter of each period (nvml-notes (b)), centred T/8 before it.
INSTANT_WINDOW_CENTRE = 1.0 / 8.0


@dataclass
class UpdateGrid:
    """Where the updates seen by a series of reads happened.

    `instant[i]` is the estimated time (same unit as the input) of the last update at or before read
    `i`, NaN where the grid could not be located; `index[i]` counts updates within a segment of
    consistently located reads (`segment[i]`, -1 where unlocated).
    """

    instant: np.ndarray
    index: np.ndarray
    segment: np.ndarray
    period: float = math.nan
    """The update period (median over the located windows), NaN when not located."""
    phase_uncertainty: float = math.nan
    """Median half-width of the feasible phase, in the input's unit (how well the grid is pinned)."""

    @property
    def located_fraction(self) -> float:
        """Share of the reads whose update instant was located."""
        return float(np.isfinite(self.instant).mean()) if len(self.instant) else 0.0


def locate_updates(t: np.ndarray, changed: np.ndarray) -> UpdateGrid:
    """Locate the update instants behind a series of reads of a value that changes at every update.

    Args:
        t: read times in seconds, increasing.
        changed: per read, whether its value differs from the previous read's (`changed[0]` ignored).

    Returns:
        The grid; unlocated where no regular grid explains the brackets, and everywhere when every
        read saw a change (the counter is at least as fast as the reads, so the brackets carry no
        phase) or there are too few reads.
    """
    n = len(t)
    grid = UpdateGrid(instant=np.full(n, np.nan), index=np.zeros(n, dtype=np.int64),
                      segment=np.full(n, -1, dtype=np.int64))
    moved = np.asarray(changed[1:], dtype=bool)
    if n < MIN_READS or moved.all() or moved.sum() < 3:
        return grid
    # An update period is longer than every bracket without a change, and no longer than the mean
    # spacing of the changes (each change is at least one update).
    gaps = np.diff(t)
    change_at = np.flatnonzero(moved) + 1
    high = float((t[change_at[-1]] - t[change_at[0]]) / max(len(change_at) - 1, 1))
    low = max(float(gaps[~moved].max()), high / 4.0)
    if not high > low:
        return grid

    periods: list[float] = []
    slacks: list[float] = []
    fits: list[tuple[int, int, float, float]] = []
    segment = -1
    fit: tuple[float, float] | None = None  # (period, phase) being followed
    start = 0
    while start < n - 1:
        stop = n if n - start < WINDOW_READS + MIN_READS else start + WINDOW_READS
        tw, mw = t[start:stop], moved[start:stop - 1]
        allowed = max(1, int(len(mw) * MAX_MISFITS))
        if fit is None or _misfits(_predict(tw, fit), mw).sum() > allowed:
            fit = _acquire(tw, mw, *((low, high) if fit is None else (fit[0] * 0.98, fit[0] * 1.02)))
            segment += 1
        refined = _settle(tw, mw, fit) if fit is not None else None
        index = _predict(tw, refined[:2]) if refined is not None else None
        if refined is None or index is None or _misfits(index, mw).sum() > allowed:
            fit = None
            start = stop
            continue
        period, phase, slack = refined
        fit = (period, phase)
        grid.instant[start:stop] = phase + index * period
        grid.index[start:stop] = index
        grid.segment[start:stop] = segment
        periods.append(period)
        slacks.append(slack)
        fits.append((start, stop, period, phase))
        start = stop
    if periods:
        grid.period = float(np.median(periods))
        grid.phase_uncertainty = float(np.median(slacks)) / 2.0
        _snap(grid, t, moved, fits)
    return grid


def _snap(grid: UpdateGrid, t: np.ndarray, moved: np.ndarray, fits: list[tuple[int, int, float, float]]) -> None:
    """Set each change's knot to the last update in its bracket, with the updates made to agree
    with every bracket (`_assign`).

    Args:
        fits: (first read, end read, period, phase) of every located window.
    """
    points = [phase + period * np.arange(np.floor((t[first] - phase) / period) - 1,
                                         np.floor((t[end - 1] - phase) / period) + 2)
              for first, end, period, phase in fits]
    updates, where = _assign(t, moved, np.unique(np.concatenate(points)))
    last = np.full(len(t), -np.inf)
    np.maximum.at(last, where, updates)
    for i in np.flatnonzero(moved) + 1:
        if np.isfinite(grid.instant[i]):
            at = last[i] if np.isfinite(last[i]) else grid.instant[i]
            grid.instant[i] = min(max(at, t[i - 1]), t[i])


def _assign(t: np.ndarray, moved: np.ndarray, updates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Put grid updates into the reads' brackets so that they agree with what the reads saw.

    A grid may put an update a hair on the wrong side of a read (a late timestamp, a jittery or
    drifting timer): a bracket that saw no change then holds an update, or one that saw a change
    holds none. The first kind moves to the nearer edge of its bracket, into its neighbour; the
    second takes the nearest update of a neighbour that holds two. Updates are moved, never made
    or dropped, so the count over the window stays the grid's.

    Returns:
        (update instants, the bracket of each: j for (t[j-1], t[j]]), for updates within the reads.
    """
    n = len(t)
    where = np.searchsorted(t, updates, side="left")
    inside = (where > 0) & (where < n)
    updates, where = updates[inside].copy(), where[inside]
    for k in np.flatnonzero(~moved[where - 1]):
        j = where[k]
        if updates[k] - t[j - 1] <= t[j] - updates[k] and j > 1:
            updates[k], where[k] = t[j - 1], j - 1
        elif j + 1 < n:
            updates[k], where[k] = np.nextafter(t[j], np.inf), j + 1
    counts = np.bincount(where, minlength=n)
    for i in np.flatnonzero(moved) + 1:
        if counts[i]:
            continue
        after = int(np.searchsorted(updates, t[i], side="right"))
        options = [(updates[k] - t[i], k, t[i]) for k in (after,) if k < len(updates)]
        options += [(t[i - 1] - updates[k], k, np.nextafter(t[i - 1], np.inf)) for k in (after - 1,) if k >= 0]
        for _, k, edge in sorted(options):
            if counts[where[k]] >= 2:
                counts[where[k]] -= 1
                counts[i] += 1
                updates[k], where[k] = edge, i
                break
    order = np.argsort(updates, kind="stable")
    return updates[order], where[order]


def _settle(t: np.ndarray, moved: np.ndarray, fit: tuple[float, float]) -> tuple[float, float, float] | None:
    """Refine a grid on a window until it stops moving: number the updates as the reads saw them
    (`_assign`), fit the grid to that numbering, again."""
    refined = None
    for _ in range(3):
        period, phase = fit
        k = np.arange(np.floor((t[0] - phase) / period) - 1, np.floor((t[-1] - phase) / period) + 2)
        _, where = _assign(t, moved, phase + k * period)
        index = np.cumsum(np.bincount(where, minlength=len(t)))
        step = _refine(t, index, period)
        if step is None:
            return refined
        converged = refined is not None and abs(step[1] - refined[1]) < 1e-9 and abs(step[0] - refined[0]) < 1e-12
        refined, fit = step, step[:2]
        if converged:
            break
    return refined


def _predict(t: np.ndarray, fit: tuple[float, float]) -> np.ndarray:
    """The index of the last update before each read, on the grid `fit` = (period, phase)."""
    period, phase = fit
    return np.floor((t - phase) / period).astype(np.int64)


def _misfits(index: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """Per bracket, whether the grid disagrees with what the reads saw (a change without an update,
    or an update without a change)."""
    return (np.diff(index) > 0) != moved


def _acquire(t: np.ndarray, moved: np.ndarray, low: float, high: float) -> tuple[float, float] | None:
    """The grid (period in [low, high], phase) that explains the most brackets of a window.

    A wrong period drifts out of step with the reads across the window, so periods are tried at
    steps that move the last read by a quarter of a period at most, and phases at 1/256 of one.
    """
    span = float(t[-1] - t[0])
    if span <= 0:
        return None
    step = max(low * low / (4.0 * span), (high - low) / 2000.0)
    periods = np.arange(low, high + step, step)
    phases = np.arange(PHASE_BINS) / PHASE_BINS
    rel = t - t[0]
    by_period = np.zeros(len(periods), dtype=np.int64)
    best_phase = np.zeros(len(periods))
    done = 0
    for chunk in np.array_split(periods, max(1, len(periods) // 16)):
        cycles = rel[None, None, :] / chunk[:, None, None] - phases[None, :, None]
        updates = np.diff(np.floor(cycles), axis=-1) > 0
        score = (updates == moved).sum(axis=-1)
        by_period[done:done + len(chunk)] = score.max(axis=1)
        best_phase[done:done + len(chunk)] = phases[score.argmax(axis=1)]
        done += len(chunk)
    p = int(by_period.argmax())
    # Another period, well apart, that explains nearly as much means the window cannot tell them
    # apart (reads in step with the updates, too few brackets without a change): locate nothing.
    apart = np.abs(periods - periods[p]) > 0.03 * periods[p]
    if apart.any() and by_period[p] - by_period[apart].max() < 2:
        return None
    return float(periods[p]), float(t[0] + best_phase[p] * periods[p])


def _refine(t: np.ndarray, index: np.ndarray, period: float) -> tuple[float, float, float] | None:
    """The (period, phase, slack) that leaves the most room around every read for these indices.

    Read `i` lies in `[phase + index_i * T, phase + (index_i + 1) * T)`, so the residuals
    `t_i - index_i * T` must span less than `T`; the slack `T - span` is concave in `T`, and the best
    phase is the middle of what is left.
    """
    def slack(p: float) -> float:
        r = t - index * p
        return p - float(r.max() - r.min())

    lo, hi = period * 0.98, period * 1.02
    for _ in range(60):
        a, b = lo + (hi - lo) / 3.0, hi - (hi - lo) / 3.0
        if slack(a) < slack(b):
            lo = a
        else:
            hi = b
    best = (lo + hi) / 2.0
    room = slack(best)
    if not room > 0:
        return None
    r = t - index * best
    return best, (float(r.max()) - best + float(r.min())) / 2.0, room


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
    knots_t, knots_e = [float(t[0])], [0.0]
    prev = 0  # the read behind the last knot
    for i in np.flatnonzero(changed):
        at = grid.instant[i]
        # The update lies after the previous read (which had not seen it) and no later than this one.
        at = float(t[i]) if not math.isfinite(at) else min(max(at, float(t[i - 1])), float(t[i]))
        if at <= knots_t[-1]:
            at = float(t[i]) if float(t[i]) > knots_t[-1] else knots_t[-1] + 1e-9
        if power is not None and prev and _one_period(grid, prev, i):
            step = _step_within(knots_t[-1], knots_e[-1], at, float(e[i]), power[prev], power[i])
            if step is not None:
                knots_t.append(step[0])
                knots_e.append(step[1])
        knots_t.append(at)
        knots_e.append(float(e[i]))
        prev = int(i)
    if knots_t[-1] < t[-1]:
        knots_t.append(float(t[-1]))
        knots_e.append(float(e[-1]))
    return np.asarray(knots_t), np.asarray(knots_e), grid


def _one_period(grid: UpdateGrid, a: int, b: int) -> bool:
    """Whether reads `a` and `b` saw consecutive updates of one located grid."""
    return bool(grid.segment[a] >= 0 and grid.segment[a] == grid.segment[b] and grid.index[b] - grid.index[a] == 1)


def _step_within(t0: float, e0: float, t1: float, e1: float, p_start: float, p_end: float
                 ) -> tuple[float, float] | None:
    """Where power stepped from `p_start` to `p_end` inside one update period, keeping its joules.

    The period's mean power `p` lies between the power read at its start and at its end when one
    step explains it: `p_start` for a fraction g of the period, then `p_end`, with
    `g = (p_end - p) / (p_end - p_start)`. Otherwise (no step, or a spike) the period stays linear.
    """
    if not (math.isfinite(p_start) and math.isfinite(p_end)) or t1 <= t0:
        return None
    mean = (e1 - e0) / (t1 - t0)
    low, high = min(p_start, p_end), max(p_start, p_end)
    if high - low < 1e-6 * max(high, 1.0) or not low < mean < high:
        return None
    g = (p_end - mean) / (p_end - p_start)
    at = t0 + g * (t1 - t0)
    return at, e0 + p_start * (at - t0)


def power_curve(t: np.ndarray, power: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Knots of the cumulative energy curve integrated from power readings (no counter).

    Returns:
        (knot times, cumulative joules, the readings' median interval in seconds).
    """
    ok = np.isfinite(power)
    tp, pw = t[ok], power[ok]
    if len(tp) == 1:
        return np.array([t[0], t[-1]]), np.array([0.0, 0.0]), math.nan
    cumulative = np.concatenate([[0.0], np.cumsum(np.diff(tp) * (pw[1:] + pw[:-1]) / 2.0)])
    return tp, cumulative, float(np.median(np.diff(tp)))
