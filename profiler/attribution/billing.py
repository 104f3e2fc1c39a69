"""Which spans' token usage is billed, so that aggregates never count a call twice.

A model call's usage is billed on its own span. Frameworks also repeat their children's sum on the
agent or workflow span above them, and some parent the calls beside that span rather than beneath it;
`mark_billable` counts such a summary only where no inference span already does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from profiler.attribution.tree import depths, parent_positions, subtree_sums
from profiler.model import INFERENCE_KINDS, TOKEN_COLUMNS


def mark_billable(spans: pd.DataFrame, parent_pos: np.ndarray | None = None) -> pd.Series:
    """Decide which spans' usage is counted, so that aggregates never double the bill.

    Inference spans always count. Another span's usage (an agent repeating its children's sum)
    counts only when no ancestor already counted and no inference span is beneath it, nor beside
    it within its time window (Microsoft Agent Framework parents the `chat` spans to the agent's
    parent, not to `invoke_agent`, so the calls it sums are its siblings).
    """
    has_usage = spans[list(TOKEN_COLUMNS)].notna().any(axis=1).to_numpy()
    inference = spans["kind"].isin(INFERENCE_KINDS).to_numpy()
    bills = inference & has_usage
    candidates = np.flatnonzero(has_usage & ~inference)
    if len(candidates) == 0:
        return pd.Series(bills, index=spans.index)
    parent_pos = parent_positions(spans) if parent_pos is None else parent_pos
    depth = depths(parent_pos)
    flag = inference.astype(np.float64)
    below_inference = (subtree_sums(flag, parent_pos, depth) - flag) > 0
    beside = _InferenceInWindow(spans, inference, parent_pos)
    for pos in candidates[np.argsort(depth[candidates], kind="stable")]:
        if below_inference[pos] or beside.found(pos):
            continue
        up, counted_above, steps = parent_pos[pos], False, 0
        while up >= 0 and steps < 10_000:
            if bills[up]:
                counted_above = True
                break
            up, steps = parent_pos[up], steps + 1
        bills[pos] = not counted_above
    return pd.Series(bills, index=spans.index)


class _InferenceInWindow:
    """Finds an inference span of the same trace, inside a span's time window, that descends from
    that span's parent (anywhere in the trace when the span is a root)."""

    def __init__(self, spans: pd.DataFrame, inference: np.ndarray, parent_pos: np.ndarray) -> None:
        self.parent_pos = parent_pos
        self.trace = spans["trace_id"].to_numpy()
        self.start = spans["start_ns"].to_numpy(dtype=np.int64)
        self.end = spans["end_ns"].to_numpy(dtype=np.int64)
        self.inference = np.flatnonzero(inference)
        self._by_trace: dict[Any, tuple[np.ndarray, np.ndarray]] | None = None

    def _groups(self) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
        if self._by_trace is None:
            rows = self.inference
            order = rows[np.lexsort((self.start[rows], self.trace[rows].astype(str)))]
            traces = self.trace[order]
            self._by_trace = {}
            if len(order):
                cuts = np.flatnonzero(traces[1:] != traces[:-1]) + 1
                for chunk in np.split(order, cuts):
                    self._by_trace[self.trace[chunk[0]]] = (self.start[chunk], chunk)
        return self._by_trace

    def found(self, pos: int) -> bool:
        group = self._groups().get(self.trace[pos])
        if group is None:
            return False
        starts, members = group
        lo = np.searchsorted(starts, self.start[pos], side="left")
        hi = np.searchsorted(starts, self.end[pos], side="right")
        parent = self.parent_pos[pos]
        for member in members[lo:hi]:
            if self.end[member] > self.end[pos] or member == pos:
                continue
            if parent < 0:
                return True
            up, steps = self.parent_pos[member], 0
            while up >= 0 and steps < 10_000:
                if up == parent:
                    return True
                up, steps = self.parent_pos[up], steps + 1
        return False
