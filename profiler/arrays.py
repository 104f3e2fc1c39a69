"""Array helpers the engine uses in more than one place."""

from __future__ import annotations

import numpy as np


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """`np.unique(values)` for integers (times in ns), found by sorting: numpy 2.3+ hashes integers
    instead, which took 58x the time on 600k span edges (`benchmarks/techniques.py`)."""
    if values.dtype.kind not in "iu":
        return np.unique(values)
    ordered = np.sort(values)
    distinct = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=distinct[1:])
    return ordered[distinct]


def range_max(values: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """`values[lo[i]:hi[i]].max()` for every i (each range non-empty: `lo < hi`).

    A sparse table answers each range as the larger of two overlapping power-of-two windows; its
    levels are built one at a time and each range is answered at its own level, so only two levels
    are held at once (memory ~2x `values`, time ~log2(len) vectorised passes).
    """
    lo = np.asarray(lo, dtype=np.intp)
    hi = np.asarray(hi, dtype=np.intp)
    out = np.empty(len(lo), dtype=np.float64)
    if not len(lo):
        return out
    if np.any(lo >= hi) or lo.min() < 0 or hi.max() > len(values):
        raise ValueError("range_max needs 0 <= lo < hi <= len(values)")
    level_of = np.floor(np.log2(hi - lo)).astype(np.intp)
    window = np.asarray(values, dtype=np.float64)  # window[i] = max(values[i : i + 2**level])
    top = int(level_of.max())
    for level in range(top + 1):
        width = 1 << level
        rows = np.flatnonzero(level_of == level)
        out[rows] = np.maximum(window[lo[rows]], window[hi[rows] - width])
        if level < top:
            window = np.maximum(window[:-width], window[width:])
    return out
