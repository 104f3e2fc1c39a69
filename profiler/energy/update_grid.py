"""Where an NVML counter's updates happened, from reads that saw it change or not
(docs/gpus.md#the-update-grid).

NVML's energy counter and instant power change once per update period T (about 100 ms). A read
returns the value of the last update, so the first read that shows a new value is late by up to
one read interval. Placing the counter's knots at read times delays the whole energy curve by that
lag, which moves about `lag x (P(end) - P(start))` joules across each span's ends: 3% of a 1 s span
whose power steps from 80 W to 450 W.

`locate_updates` finds the update instants instead. The sampler dithers the phase of its reads
(`profiler.gpu.sampler`), so within a few seconds they fall at every phase of the update period; each
pair of consecutive reads says "the counter changed between us" or "it did not", and together these
brackets pin down a regular grid `U_m = theta + m*T`, window by window (so a drifting driver timer is
followed), and bound how far apart the grids that agree with them put each update (`spread`).
Where the brackets cannot pin it down (reads no faster than the counter, or a replay of another
tool's samples) nothing is located. `change_period` times the updates from the reads that saw a
change (the sampler's startup probe). `profiler.energy.curves` turns the located updates into joules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from profiler.arrays import unique_sorted

#: Reads (and at least as many updates) per window in which one regular update grid is fitted
#: (about 6 s at 10 Hz with 100 ms updates).
WINDOW_READS = 60
#: Fewer reads than this locate nothing.
MIN_READS = 20
#: Share of a window's reads that a grid fit may leave out (a late timestamp, a jittery update).
MAX_OUTLIERS = 0.03
#: Phases tried per period when (re)acquiring a grid.
PHASE_BINS = 256


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
    spread: float = math.nan
    """How well the updates are pinned, in the input's unit: the widest range, over the located
    windows' reads, of where one update could sit under the grids that agree with every read.
    Each located instant lies inside its range, so it is off by less than this."""

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
    spreads: list[float] = []
    fits: list[tuple[int, int, float, float]] = []
    segment = -1
    fit: tuple[float, float] | None = None  # (period, phase) being followed
    start = 0
    mean_gap = float((t[-1] - t[0]) / (n - 1))
    while start < n - 1:
        # A window spans at least WINDOW_READS reads and, once the period is known, as many updates.
        size = max(WINDOW_READS, int(WINDOW_READS * fit[0] / mean_gap)) if fit is not None else WINDOW_READS
        stop = n if n - start < size + MIN_READS else start + size
        tw, mw = t[start:stop], moved[start:stop - 1]
        allowed = max(1, int(len(tw) * MAX_OUTLIERS))
        refined = _settle(tw, mw, fit, allowed) if fit is not None else None
        if refined is None:
            # (Re)acquire: search the whole range at first, near the period followed so far later.
            fit = _acquire(tw, mw, *((low, high) if fit is None else (fit[0] * 0.98, fit[0] * 1.02)))
            segment += 1
            refined = _settle(tw, mw, fit, allowed) if fit is not None else None
        if refined is None:
            fit = None
            start = stop
            continue
        period, phase, spread = refined
        fit = (period, phase)
        index = _predict(tw, fit)
        grid.instant[start:stop] = phase + index * period
        grid.index[start:stop] = index
        grid.segment[start:stop] = segment
        periods.append(period)
        spreads.append(spread)
        fits.append((start, stop, period, phase))
        start = stop
    if periods:
        grid.period = float(np.median(periods))
        grid.spread = float(max(spreads))
        _snap(grid, t, moved, fits)
    return grid


def _snap(grid: UpdateGrid, t: np.ndarray, moved: np.ndarray,
          fits: list[tuple[int, int, float, float]]) -> None:
    """Set each change's knot to the last update in its bracket, with the updates made to agree
    with every bracket (`_assign`).

    Args:
        fits: (first read, end read, period, phase) of every located window.
    """
    points = [phase + period * np.arange(np.floor((t[first] - phase) / period) - 1,
                                         np.floor((t[end - 1] - phase) / period) + 2)
              for first, end, period, phase in fits]
    updates, where = _assign(t, moved, unique_sorted(np.concatenate(points)))
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
        options += [(t[i - 1] - updates[k], k, np.nextafter(t[i - 1], np.inf))
                    for k in (after - 1,) if k >= 0]
        for _, k, edge in sorted(options):
            if counts[where[k]] >= 2:
                counts[where[k]] -= 1
                counts[i] += 1
                updates[k], where[k] = edge, i
                break
    order = np.argsort(updates, kind="stable")
    return updates[order], where[order]


def _settle(t: np.ndarray, moved: np.ndarray, fit: tuple[float, float],
            trim: int) -> tuple[float, float, float] | None:
    """Fit a grid to a window, starting from `fit`: number the updates as the reads saw them
    (`_assign`), fit the grid to that numbering, and again until it stops moving.

    Returns:
        (period, phase, spread; see `_spread`), or None where no grid fits all but `trim` of the reads.
    """
    refined = None
    for _ in range(3):
        period, phase = fit
        k = np.arange(np.floor((t[0] - phase) / period) - 1, np.floor((t[-1] - phase) / period) + 2)
        _, where = _assign(t, moved, phase + k * period)
        index = np.cumsum(np.bincount(where, minlength=len(t)))
        step = _refine(t, index, period, trim)
        if step is None:
            return refined
        converged = (refined is not None and abs(step[1] - refined[1]) < 1e-9
                     and abs(step[0] - refined[0]) < 1e-12)
        refined, fit = step, step[:2]
        if converged:
            break
    return refined


def _predict(t: np.ndarray, fit: tuple[float, float]) -> np.ndarray:
    """The index of the last update before each read, on the grid `fit` = (period, phase)."""
    period, phase = fit
    return np.floor((t - phase) / period).astype(np.int64)


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


def _refine(t: np.ndarray, index: np.ndarray, period: float,
            trim: int = 0) -> tuple[float, float, float] | None:
    """The grid that agrees with every read for these indices: (period, phase, spread).

    Read `i` lies in `[phase + index_i * T, phase + (index_i + 1) * T)`, so the residuals
    `t_i - index_i * T` must span less than `T`; the room `T - span` is concave in `T` (its widest
    point found by zooming in on a grid), the phase is the middle of the room there, and `_spread`
    says how far every agreeing grid fans out. Where no period leaves room, up to `trim` reads at
    the residuals' extremes (a late timestamp, a jittery update) are left out in turn.
    """
    keep = np.ones(len(t), dtype=bool)
    for _ in range(trim + 1):
        tk, ik = t[keep], index[keep].astype(np.float64)
        lo, hi = period * 0.98, period * 1.02
        for _ in range(7):
            candidates = np.linspace(lo, hi, 33)
            r = tk[None, :] - ik[None, :] * candidates[:, None]
            room = candidates - (r.max(axis=1) - r.min(axis=1))
            j = int(room.argmax())
            lo, hi = candidates[max(j - 1, 0)], candidates[min(j + 1, len(candidates) - 1)]
        best = float(candidates[j])
        r = tk - ik * best
        if best - float(r.max() - r.min()) > 0:
            phase = (float(r.max()) - best + float(r.min())) / 2.0
            return best, phase, _spread(tk, ik, best, (period * 0.98, period * 1.02))
        # Leave out whichever extreme read stands further from the rest.
        order = np.argsort(r)
        drop = order[-1] if r[order[-1]] - r[order[-2]] >= r[order[1]] - r[order[0]] else order[0]
        keep[np.flatnonzero(keep)[drop]] = False
    return None


def _room(t: np.ndarray, index: np.ndarray, periods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per candidate period, the lowest and highest phase that agree with every read (the first
    above the second where none does): read i lies in `[phase + index_i * T, phase + (index_i + 1) * T)`."""
    r = t[None, :] - index[None, :] * periods[:, None]
    return r.max(axis=1) - periods, r.min(axis=1)


def _spread(t: np.ndarray, index: np.ndarray, best: float, bounds: tuple[float, float]) -> float:
    """How far apart the grids that agree with the reads put one update, at most.

    The agreeing (period, phase) pairs form a thin convex sliver: a period a little longer with a
    phase a little earlier explains the same reads. The fit takes its widest point (`best`, where
    the phase has the most room), which is not the truth: with 60 dithered reads at 10 Hz the
    phase's room there is about 3 ms, yet an update at a window's end can sit 2 ms from the truth,
    because along the sliver the grids fan out. Their full spread, taken over every agreeing period
    at the window's first and last update (an update's place is linear in its index, so those are
    the widest), bounds the error of every located update in the window.
    """
    periods = np.linspace(_edge(t, index, best, bounds[0]), _edge(t, index, best, bounds[1]), 65)
    low, high = _room(t, index, periods)
    agree = high >= low
    ends = index[[0, -1]]
    earliest = (low[agree, None] + ends[None, :] * periods[agree, None]).min(axis=0)
    latest = (high[agree, None] + ends[None, :] * periods[agree, None]).max(axis=0)
    return float((latest - earliest).max())


def _edge(t: np.ndarray, index: np.ndarray, inside: float, outside: float) -> float:
    """The last period from `inside` (where grids agree) towards `outside` at which some still do
    (the room is concave in the period, so it crosses zero once), to 1/32**6 of the distance."""
    for _ in range(6):
        candidates = np.linspace(inside, outside, 33)
        low, high = _room(t, index, candidates)
        out = np.flatnonzero(high < low)
        if not len(out):
            return float(outside)
        inside, outside = float(candidates[out[0] - 1]), float(candidates[out[0]])
    return inside


def change_period(t: np.ndarray, values: np.ndarray) -> float:
    """The update period of a value that changes at every update, from the reads that saw it change.

    Each change happened inside its bracket (the read before, the read that saw it]. Where the
    brackets are narrow against the period (the sampler's startup probe reads every 10 ms), their
    midpoints, numbered by update, lie on a line whose slope is the period, to a fraction of a
    millisecond; consecutive changes are numbered apart by their rounded distance in periods, so a
    stalled read that saw two updates at once keeps the count. Otherwise, the median interval
    between the reads that saw a change (the period at the reads' resolution).

    Returns:
        The period in `t`'s unit; NaN with fewer than two changes.
    """
    at = np.flatnonzero(np.diff(values) != 0) + 1
    if len(at) < 2:
        return math.nan
    rough = float(np.median(np.diff(t[at])))
    width = t[at] - t[at - 1]
    narrow = width <= rough / 4.0
    if narrow.sum() < 2:
        return rough
    mid = (t[at] - width / 2.0)[narrow]
    index = np.concatenate([[0.0], np.cumsum(np.round(np.diff(mid) / rough))])
    if index[-1] < 1:
        return rough
    return float(np.polyfit(index, mid, 1)[0])
