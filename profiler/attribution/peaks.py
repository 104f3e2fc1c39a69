"""Peak GPU memory per step: the most memory the run held at any moment while a step was open.

Unlike GiB*s, a peak does not add up: it is not split among concurrent steps, a parent's is at
least its children's, and a group's is the highest of its members'.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from profiler.arrays import range_max
from profiler.energy.timeline import GIB, GpuTimeline


def peak_memory_gib(start_ns: np.ndarray, end_ns: np.ndarray, timelines: list[GpuTimeline]) -> np.ndarray:
    """The most GPU memory the run held while each row was open, in GiB: each GPU's peak over the
    row's interval, summed over GPUs (NaN where no GPU's memory was sampled then). A peak is not
    split among concurrent steps, so it has no `self_` twin and rows do not add up to it."""
    per_gpu = [held_peak_bytes(line, start_ns, end_ns) for line in timelines if line.held_bytes is not None]
    if not per_gpu:
        return np.full(len(start_ns), np.nan)
    stacked = np.vstack(per_gpu)
    sampled = ~np.isnan(stacked).all(axis=0)
    return np.where(sampled, np.nansum(stacked, axis=0), np.nan) / GIB


def peak_column(start_ns: np.ndarray, end_ns: np.ndarray, kind: Any,
                timelines: list[GpuTimeline]) -> np.ndarray:
    """`peak_memory_gib` of every row of the ledger: each step's over its interval, and the last row's
    (`unattributed`) over the time outside every session, the only time it holds."""
    peaks = peak_memory_gib(start_ns[:-1], end_ns[:-1], timelines)
    session = np.asarray(kind, dtype=object)[:-1] == "session"
    gap_start, gap_end = _gaps(start_ns[:-1][session], end_ns[:-1][session], start_ns[-1], end_ns[-1])
    outside = peak_memory_gib(gap_start, gap_end, timelines)
    unattributed = np.nanmax(outside) if np.isfinite(outside).any() else np.nan
    return np.append(peaks, unattributed)


def held_peak_bytes(line: GpuTimeline, start_ns: np.ndarray, end_ns: np.ndarray) -> np.ndarray:
    """The most memory the run held on one GPU at any moment of each interval: the largest sample
    value in force over it (the one read before its start included, since it held until the next
    read). NaN for an interval outside the samples, or without memory samples."""
    start_ns = np.asarray(start_ns, dtype=np.int64)
    end_ns = np.asarray(end_ns, dtype=np.int64)
    peak = np.full(len(start_ns), np.nan)
    if line.held_bytes is None:
        return peak
    t_ns, held = line.held_bytes
    inside = (end_ns >= t_ns[0]) & (start_ns <= t_ns[-1]) & (end_ns >= start_ns)
    first = np.maximum(np.searchsorted(t_ns, start_ns[inside], side="right") - 1, 0)
    # Every value read before the end is in force during the interval; an instant takes the one at it.
    last = np.maximum(np.searchsorted(t_ns, end_ns[inside], side="left"), first + 1)
    peak[inside] = range_max(held, first, last)
    return peak


def _gaps(start_ns: np.ndarray, end_ns: np.ndarray, first_ns: int,
          last_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The stretches of [first_ns, last_ns] that no interval covers."""
    order = np.argsort(start_ns, kind="stable")
    start_ns, end_ns = start_ns[order], end_ns[order]
    covered_to = np.maximum.accumulate(end_ns) if len(end_ns) else end_ns
    # A gap opens after everything started so far has ended and before the next interval starts.
    gap_start = np.concatenate([[first_ns], covered_to])
    gap_end = np.concatenate([start_ns, [last_ns]])
    keep = gap_end > gap_start
    return gap_start[keep], gap_end[keep]
