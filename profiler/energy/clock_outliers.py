"""GPU samples whose clock does not fit the run, set aside before any curve is built from them.

A sample stamped far from its neighbours (a clock that jumped: one row in 2100 among rows of a
four-second run) would stretch its GPU's curves over the jump: gigabytes of arrays for the
windows of the power check, and a counter that runs backwards in time. Each GPU's samples, in time
order, are cut wherever two neighbours lie more than `gap_s` apart; the runs of samples that reach
the spans' time range (to within that gap) are kept, the others set aside and counted. Without
spans, or where no run reaches them (an nvidia-smi CSV read in the wrong time zone), the run of
the most samples is kept.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: The shortest gap between two samples of one GPU that cuts its samples apart, in seconds...
GAP_FLOOR_S = 600.0
#: ...or this many of its usual intervals between samples, if that is longer.
GAP_INTERVALS = 1000


@dataclass
class SetAside:
    """What `set_aside_clock_outliers` left out, per GPU."""

    counts: dict[str, int] = field(default_factory=dict)
    """GPU -> samples set aside."""
    furthest_s: dict[str, float] = field(default_factory=dict)
    """GPU -> how far the furthest of them lay from the samples kept, in seconds."""

    def warnings(self) -> list[str]:
        """One line per GPU that had samples set aside."""
        return [f"GPU {gpu}: {count} sample(s) set aside whose time lies far from the run's (up to "
                f"{_duration(self.furthest_s[gpu])} away: a clock that jumped?); figures use the other samples"
                for gpu, count in self.counts.items()]


def set_aside_clock_outliers(samples: pd.DataFrame, window_ns: tuple[int, int] | None
                             ) -> tuple[pd.DataFrame, SetAside]:
    """Return the samples without those whose time does not fit the run, and what was left out.

    Args:
        samples: `Run.samples`.
        window_ns: the spans' (first start, last end), or None for a run without spans.
    """
    set_aside = SetAside()
    if not len(samples):
        return samples, set_aside
    times = samples["t_ns"].to_numpy(dtype=np.int64)
    keep = np.ones(len(samples), dtype=bool)
    for gpu, rows in samples.groupby("gpu", sort=False).indices.items():
        left_out, furthest_s = _outliers(times[rows], window_ns)
        if left_out.any():
            keep[rows[left_out]] = False
            set_aside.counts[str(gpu)] = int(left_out.sum())
            set_aside.furthest_s[str(gpu)] = furthest_s
    if keep.all():
        return samples, set_aside
    return samples[keep].reset_index(drop=True), set_aside


def _outliers(t_ns: np.ndarray, window_ns: tuple[int, int] | None) -> tuple[np.ndarray, float]:
    """Which of one GPU's sample times (in any order) to set aside, and the furthest one's distance
    from those kept, in seconds."""
    order = np.argsort(t_ns, kind="stable")
    t = t_ns[order].astype(np.float64)
    steps = np.diff(t)
    usual = np.median(steps[steps > 0]) if (steps > 0).any() else 0.0
    gap_ns = max(GAP_FLOOR_S * 1e9, GAP_INTERVALS * usual)
    starts = np.concatenate([[0], np.flatnonzero(steps > gap_ns) + 1])
    if len(starts) == 1:
        return np.zeros(len(t_ns), dtype=bool), 0.0
    ends = np.concatenate([starts[1:], [len(t)]])
    first, last = t[starts], t[ends - 1]
    kept = np.zeros(len(starts), dtype=bool)
    if window_ns is not None:
        kept = (last >= window_ns[0] - gap_ns) & (first <= window_ns[1] + gap_ns)
    if not kept.any():
        kept[np.argmax(ends - starts)] = True
    runs = np.repeat(np.arange(len(starts)), ends - starts)
    left_out_sorted = ~kept[runs]
    if not left_out_sorted.any():
        return np.zeros(len(t_ns), dtype=bool), 0.0
    low, high = first[kept].min(), last[kept].max()
    outside = t[left_out_sorted]
    furthest = float(np.max(np.maximum(low - outside, outside - high))) / 1e9
    left_out = np.zeros(len(t_ns), dtype=bool)
    left_out[order] = left_out_sorted
    return left_out, furthest


def _duration(seconds: float) -> str:
    """A duration in the largest unit that keeps it above one: `75 years`, `3.2 h`, `12 min`."""
    for unit, size in (("years", 365.25 * 86400), ("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"
