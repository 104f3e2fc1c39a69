"""The `memory` policy: concurrent steps on one GPU share each slice by the GPU memory their
processes hold there.

Each slice of a GPU's timeline goes first to the processes that have an active leaf in it, in
proportion to the memory each holds on that GPU (the samples' `proc_mem_bytes_by_pid`, held from
one slow reading to the next; before the first, the first), then equally among that process's
active leaves. Remote leaves take part only where no local leaf is active, as under every policy.
A slice falls back to equal shares where the split cannot be known: no per-process memory for the
GPU, an active leaf without a process id, or no active process holding any memory. The shares of
every slice add up to one, so conservation holds as under the other policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profiler.model import parse_pid_memory


@dataclass
class PidMemory:
    """One GPU's per-process memory readings: `bytes[j, c]` held by `pids[c]` from `t_ns[j]` on."""

    t_ns: np.ndarray
    pids: np.ndarray
    bytes: np.ndarray

    def rows_at(self, times_ns: np.ndarray) -> np.ndarray:
        """The reading in force at each of `times_ns`: the last at or before it, else the first."""
        return np.clip(np.searchsorted(self.t_ns, times_ns, side="right") - 1, 0, None)

    def at(self, times_ns: np.ndarray) -> np.ndarray:
        """Every process's memory in force at each of `times_ns` (one row per time)."""
        return self.bytes[self.rows_at(times_ns)]

    def change_times(self) -> np.ndarray:
        """The instants at which some process's memory changed (and the first reading)."""
        changed = np.concatenate([[True], (np.diff(self.bytes, axis=0) != 0).any(axis=1)])
        return self.t_ns[changed]


def pid_memory_by_gpu(samples: pd.DataFrame) -> dict[str, PidMemory]:
    """Per-process memory of each GPU that has any reading of it (`Run.samples`, conformed)."""
    cells = samples["proc_mem_bytes_by_pid"]
    # Only slow readings can hold the breakdown: skip the others without parsing them.
    candidate = (cells.notna() | (samples["proc_mem_bytes"] == 0)).to_numpy(dtype=bool)
    out: dict[str, PidMemory] = {}
    columns = ["t_ns", "proc_mem_bytes_by_pid", "proc_mem_bytes"]
    for gpu, group in samples.loc[candidate].groupby("gpu", sort=False):
        rows = group.sort_values("t_ns", kind="stable")[columns].itertuples(index=False, name=None)
        parsed = ((t, parse_pid_memory(cell, total)) for t, cell, total in rows)
        readings = [(t, by_pid) for t, by_pid in parsed if by_pid is not None]
        if not readings:
            continue
        pids = np.array(sorted({pid for _, by_pid in readings for pid in by_pid}), dtype=np.float64)
        held = np.zeros((len(readings), len(pids)))
        for j, (_, by_pid) in enumerate(readings):
            for pid, used in by_pid.items():
                held[j, np.searchsorted(pids, pid)] = used
        out[str(gpu)] = PidMemory(np.array([t for t, _ in readings], dtype=np.int64), pids, held)
    return out


def resolve_pids(steps: pd.DataFrame) -> np.ndarray:
    """Each step's process id; a step without one (a session's own row, another tool's span) takes
    its session's, where all the session's steps that name one name the same."""
    pid = steps["pid"].to_numpy(dtype=np.float64).copy() if "pid" in steps else np.full(len(steps), np.nan)
    known = ~np.isnan(pid)
    if known.all() or not known.any():
        return pid
    session = steps["session_id"].to_numpy(dtype=object)
    per_session = pd.Series(pid[known]).groupby(session[known])
    single = per_session.first()[per_session.nunique() == 1]
    pid[~known] = pd.Series(session[~known]).map(single).to_numpy(dtype=np.float64)
    return pid


@dataclass
class MemoryShares:
    """How each slice of one GPU is shared among the leaves open in it, by memory share.

    Same interface as the other policies' shares: `distribute(per_slice, n_rows)`.
    """

    owner: np.ndarray
    first: np.ndarray
    last: np.ndarray
    rates: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    """(leaf mask, per-slice share of each such leaf); the masks partition the leaves."""
    unowned: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    concurrent_s: float = 0.0
    """Seconds of the GPU's samples in which two or more leaves shared a slice."""
    equal_s: float = 0.0
    """Of those, the seconds that fell back to equal shares."""
    reasons: list[str] = field(default_factory=list)

    def distribute(self, per_slice: np.ndarray, n_rows: int) -> tuple[np.ndarray, float]:
        """Split per-slice amounts among leaves; return (amount per row, amount nobody held)."""
        if len(self.owner) == 0 or len(per_slice) == 0:
            return np.zeros(n_rows), float(per_slice.sum())
        amounts = np.zeros(len(self.owner))
        for mask, rate in self.rates:
            cumulative = np.concatenate([[0.0], np.cumsum(per_slice * rate)])
            amounts[mask] = cumulative[self.last[mask]] - cumulative[self.first[mask]]
        received = np.bincount(self.owner, weights=amounts, minlength=n_rows)
        return received, float(per_slice[self.unowned].sum())

    def fallback(self) -> dict[str, Any] | None:
        """Where the split fell back to equal shares, for the ledger; None where it never did."""
        if self.equal_s <= 0:
            return None
        return {"equal_s": self.equal_s, "concurrent_s": self.concurrent_s, "reasons": self.reasons}


def memory_shares(grid: np.ndarray, owner: np.ndarray, first: np.ndarray, last: np.ndarray,
                  remote: np.ndarray, leaf_pid: np.ndarray, memory: PidMemory | None,
                  window: tuple[int, int]) -> MemoryShares:
    """Build one GPU's shares.

    Args:
        grid: the slice edges (ns); slice k is `[grid[k], grid[k+1])`.
        owner, first, last: the leaf ranges (`profiler.attribution.tree.leaf_ranges`).
        remote: per step row, whether it runs on a hosted API.
        leaf_pid: per step row, its process id (NaN when unknown).
        memory: this GPU's per-process memory, None when it has none.
        window: (first, last sample time) of the GPU, the time its figures cover.
    """
    n_slices = max(len(grid) - 1, 0)
    shares = MemoryShares(owner, first, last)
    is_remote = remote[owner]
    pid = leaf_pid[owner]
    local_count = _coverage(first[~is_remote], last[~is_remote], n_slices)
    remote_count = _coverage(first[is_remote], last[is_remote], n_slices)
    shares.unowned = (local_count == 0) & (remote_count == 0)
    rows = memory.rows_at(grid[:-1]) if memory is not None else None
    seconds = np.diff(grid) / 1e9 * _inside(grid, window) if n_slices else np.zeros(0)
    reasons: set[str] = set()
    for group, active, count in ((~is_remote, local_count > 0, local_count),
                                 (is_remote, (local_count == 0) & (remote_count > 0), remote_count)):
        split = _GroupSplit(group, pid, first, last, n_slices, memory, rows)
        by_memory = active & split.known
        equal = np.where(active & ~by_memory, 1.0 / np.maximum(count, 1), 0.0)
        for mask, rate in split.rates(by_memory):
            shares.rates.append((mask, rate + equal))
        shares.rates.append((group & ~split.covered, equal))
        shared = active & (count >= 2) & (seconds > 0)
        shares.concurrent_s += float(seconds[shared].sum())
        shares.equal_s += float(seconds[shared & ~by_memory].sum())
        reasons |= split.reasons(shared & ~by_memory)
    shares.reasons = sorted(reasons)
    return shares


class _GroupSplit:
    """One group of leaves (the local ones, or the remote ones) split by their processes' memory."""

    def __init__(self, group: np.ndarray, pid: np.ndarray, first: np.ndarray, last: np.ndarray,
                 n_slices: int, memory: PidMemory | None, rows: np.ndarray | None) -> None:
        self.has_memory = memory is not None and rows is not None
        self.covered = np.zeros(len(group), dtype=bool)
        self.per_pid: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.total = np.zeros(n_slices)
        no_pid = group & np.isnan(pid)
        self.no_pid = _coverage(first[no_pid], last[no_pid], n_slices) > 0
        if memory is None or rows is None:
            self.known = np.zeros(n_slices, dtype=bool)
            return
        # Only processes that run a step and hold memory here take a share of a split by memory.
        holding = memory.pids[memory.bytes.any(axis=0)]
        for process in np.intersect1d(np.unique(pid[group]), holding):
            mask = group & (pid == process)
            count = _coverage(first[mask], last[mask], n_slices)
            column = int(np.searchsorted(memory.pids, process))
            used = np.where(count > 0, memory.bytes[rows, column], 0.0)
            self.total += used
            self.per_pid.append((mask, used, count))
            self.covered |= mask
        self.known = ~self.no_pid & (self.total > 0)

    def rates(self, by_memory: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per process: (its leaves, each one's share of every slice split by memory)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return [(mask, np.where(by_memory & (count > 0), used / self.total / count, 0.0))
                    for mask, used, count in self.per_pid]

    def reasons(self, fell_back: np.ndarray) -> set[str]:
        """Why the slices `fell_back` could not be split by memory."""
        if not fell_back.any():
            return set()
        if not self.has_memory:
            return {"no per-process memory in this GPU's samples"}
        found = set()
        if (fell_back & self.no_pid).any():
            found.add("steps without a process id")
        if (fell_back & ~self.no_pid).any():
            found.add("no active step's process held memory on this GPU")
        return found


def _inside(grid: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """1 for slices inside the GPU's sampled window, else 0."""
    return ((grid[:-1] >= window[0]) & (grid[1:] <= window[1])).astype(np.float64)


def _coverage(first: np.ndarray, last: np.ndarray, n_slices: int) -> np.ndarray:
    """How many of the ranges `[first, last)` cover each slice, by a difference array."""
    diff = np.zeros(n_slices + 1)
    np.add.at(diff, first, 1.0)
    np.add.at(diff, last, -1.0)
    return np.cumsum(diff)[:n_slices]
