"""The attribution engine: charge every measured joule, GiB*s, GPU-second, token and dollar of a run
to the step that caused it (docs/attribution.md).

Each GPU's timeline is cut at every span boundary. In each slice the quantity is split among the
active leaves (the innermost open steps) by the policy; a slice with no open step goes to the
`unattributed` row. A step that runs on a hosted API takes no share while a local step is active.
Because every quantity is a cumulative curve, the slices telescope and the parts add up exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from profiler.arrays import unique_sorted
from profiler.attribution.billing import decide_billing
from profiler.attribution.choices import POLICIES, Policy
from profiler.attribution.ledger import Ledger, build_ledger
from profiler.attribution.memory_shares import MemoryShares, memory_shares, pid_memory_by_gpu, resolve_pids
from profiler.attribution.tree import depths, leaf_ranges, parent_positions, session_tree
from profiler.energy.sensor_checks import gpu_sensors, work_intervals
from profiler.energy.timeline import QUANTITIES, build_timelines, window_coverage
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, TOKEN_COLUMNS, Run, conform
from profiler.pricing.api import ApiPricer
from profiler.pricing.prices import Prices

#: The slow readings summarised per GPU in `Ledger.totals["gpus"]`.
SLOW_READINGS = ("sm_clock_mhz", "mem_clock_mhz", "temp_c")


def attribute(run: Run, *, policy: Policy = "equal", prices: Prices | None = None,
              pricer: ApiPricer | None = None) -> Ledger:
    """Attribute a run's measurements and bills to its steps.

    Args:
        run: the raw records, from `profiler.load()`.
        policy: how concurrent steps on one GPU share a slice: `equal` shares, by `tokens`
            (steps without tokens share equally only when no step in the slice has any), or by
            `memory`, the GPU memory each step's process holds (`profiler.attribution.memory_shares`; equal
            shares where that is unknown, noted in `Ledger.run["policy_fallback"]`).
        prices: GPU, energy and carbon factors; defaults when None.
        pricer: the API price lookup (shared across calls to reuse its cache).

    Returns:
        The `Ledger`: one row per step, one per session (its overhead) and an `unattributed` row.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (choose from {', '.join(POLICIES)})")
    prices = prices or Prices()
    spans = conform(run.spans, SPAN_COLUMNS)  # a new frame: setting a column leaves run.spans alone
    span_parent = parent_positions(spans)
    if len(spans):
        billing = decide_billing(spans, span_parent)
        spans["bills_usage"], spans["duplicate_of"] = billing.bills, billing.duplicate_of
    else:
        spans["bills_usage"], spans["duplicate_of"] = pd.Series(dtype=bool), pd.Series(dtype=object)
    steps, parent = session_tree(spans, span_parent) if len(spans) else (spans, span_parent)
    depth = depths(parent)

    gpu_names = {g.get("uuid"): g.get("name") for g in run.meta.get("gpus", []) if isinstance(g, dict)}
    baselines = {g.get("uuid"): g.get("mem_baseline_bytes") for g in run.meta.get("gpus", [])
                 if isinstance(g, dict) and g.get("mem_baseline_bytes") is not None}
    samples = conform(run.samples, SAMPLE_COLUMNS)
    timelines = build_timelines(samples, baselines,
                                sensors=gpu_sensors(run.meta), work=work_intervals(steps))
    pid_memory = pid_memory_by_gpu(samples) if policy == "memory" else {}

    n = len(steps)
    self_values = {q: np.zeros(n + 1) for q in QUANTITIES}  # the extra last row is `unattributed`
    measured_any = dict.fromkeys(QUANTITIES, False)
    gpu_cost = np.zeros(n + 1)
    gpu_cost_priced = True
    conservation: dict[str, dict[str, dict[str, float]]] = {}
    sources: dict[str, set[str]] = {q: set() for q in QUANTITIES}

    start_ns = steps["start_ns"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    end_ns = steps["end_ns"].to_numpy(dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    edges = [start_ns, end_ns] + [np.array([line.start_ns, line.end_ns]) for line in timelines]
    # Cut slices where a process's memory changes too, so each slice has one memory split.
    edges += [memory.change_times() for memory in pid_memory.values()]
    grid = unique_sorted(np.concatenate(edges)) if any(len(e) for e in edges) else np.zeros(0, dtype=np.int64)
    start_idx = np.searchsorted(grid, start_ns)
    end_idx = np.searchsorted(grid, end_ns)
    owner, first, last = leaf_ranges(start_idx, end_idx, parent) if n else (np.zeros(0, int),) * 3

    self_wall_s = np.bincount(owner, weights=(grid[last] - grid[first]) / 1e9, minlength=n) if n else np.zeros(0)
    weight_of = _leaf_weights(steps, policy)
    remote = steps["remote"].to_numpy(dtype=bool)
    shares: _SliceShares | MemoryShares = _SliceShares(len(grid), owner, first, last, remote, weight_of)
    leaf_pid = resolve_pids(steps) if policy == "memory" else None
    fallback: dict[str, dict[str, Any]] = {}

    for line in timelines:
        if leaf_pid is not None:
            shares = memory_shares(grid, owner, first, last, remote, leaf_pid, pid_memory.get(line.gpu),
                                   (line.start_ns, line.end_ns))
            if (note := shares.fallback()) is not None:
                fallback[line.gpu] = note
        rate, rate_source = prices.gpu_rate(gpu_names.get(line.gpu))
        report: dict[str, dict[str, float]] = {}
        for quantity in QUANTITIES:
            if quantity not in line.curves:
                continue
            measured_any[quantity] = True
            sources[quantity].add(line.sources[quantity])
            per_slice = np.diff(line.at(quantity, grid)) if len(grid) > 1 else np.zeros(0)
            received, unattributed = shares.distribute(per_slice, n)
            self_values[quantity][:n] += received
            self_values[quantity][n] += unattributed
            report[quantity] = _check(line.total(quantity), received.sum() + unattributed)
            if quantity == "gpu_s":
                if rate is None:
                    gpu_cost_priced = False
                else:
                    gpu_cost[:n] += received * rate / 3600.0
                    gpu_cost[n] += unattributed * rate / 3600.0
                sources.setdefault("gpu_cost_usd", set()).add(rate_source)
        conservation[line.gpu] = report

    tokens = {col: np.where(steps["bills_usage"].to_numpy(dtype=bool), steps[col].to_numpy(dtype=float), np.nan)
              for col in TOKEN_COLUMNS} if n else {col: np.zeros(0) for col in TOKEN_COLUMNS}
    api_cost, api_source, api_detail = _price_calls(steps, pricer or ApiPricer())

    ledger = build_ledger(
        run=run, steps=steps, parent=parent, depth=depth, self_values=self_values, measured_any=measured_any,
        coverage=window_coverage(start_ns, end_ns, timelines),
        self_wall_s=self_wall_s, tokens=tokens, api_cost=api_cost, api_source=api_source, api_detail=api_detail,
        gpu_cost=gpu_cost if timelines and gpu_cost_priced else None, prices=prices, timelines=timelines,
        conservation=conservation, sources={k: sorted(v) for k, v in sources.items()}, policy=policy,
    )
    if policy == "memory":
        ledger.run["policy_fallback"] = fallback
    _add_slow_readings(ledger.totals.get("gpus", []), samples)
    return ledger


def _add_slow_readings(gpus: list[dict[str, Any]], samples: pd.DataFrame) -> None:
    """Give each GPU of the totals the range of its clocks and temperature over the run:
    `readings: {temp_c: {min, mean, max, count}, ...}` (the mean is over the readings)."""
    if not gpus or not len(samples):
        return
    read = samples[samples[list(SLOW_READINGS)].notna().any(axis=1)]
    stats = read.groupby("gpu", sort=False)[list(SLOW_READINGS)].agg(["min", "mean", "max", "count"])
    for entry in gpus:
        if entry.get("gpu") not in stats.index:
            continue
        row = stats.loc[entry["gpu"]]
        entry["readings"] = {name: {"min": float(row[(name, "min")]), "mean": float(row[(name, "mean")]),
                                    "max": float(row[(name, "max")]), "count": int(row[(name, "count")])}
                             for name in SLOW_READINGS if row[(name, "count")] > 0}


class _SliceShares:
    """How each slice of the grid is shared among the leaves open in it."""

    def __init__(self, n_edges: int, owner: np.ndarray, first: np.ndarray, last: np.ndarray,
                 remote: np.ndarray, weight_of: np.ndarray) -> None:
        n_slices = max(n_edges - 1, 0)
        self.owner, self.first, self.last = owner, first, last
        is_remote = remote[owner] if len(owner) else np.zeros(0, dtype=bool)
        self.weight = weight_of[owner] if len(owner) else np.zeros(0)
        local_count = _coverage(first[~is_remote], last[~is_remote], n_slices)
        remote_count = _coverage(first[is_remote], last[is_remote], n_slices)
        local_weight = _coverage(first[~is_remote], last[~is_remote], n_slices, self.weight[~is_remote])
        remote_weight = _coverage(first[is_remote], last[is_remote], n_slices, self.weight[is_remote])
        self.is_remote = is_remote
        self.unowned = (local_count == 0) & (remote_count == 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            # A leaf's share of a slice: weight / total weight, or 1 / count when no leaf has weight.
            has_local = local_count > 0
            self.local_by_weight = np.where(has_local & (local_weight > 0), 1.0 / local_weight, 0.0)
            self.local_by_count = np.where(has_local & (local_weight <= 0), 1.0 / local_count, 0.0)
            remote_only = ~has_local & (remote_count > 0)
            self.remote_by_weight = np.where(remote_only & (remote_weight > 0), 1.0 / remote_weight, 0.0)
            self.remote_by_count = np.where(remote_only & (remote_weight <= 0), 1.0 / remote_count, 0.0)

    def distribute(self, per_slice: np.ndarray, n_rows: int) -> tuple[np.ndarray, float]:
        """Split per-slice amounts among leaves; return (amount per row, amount nobody held)."""
        if len(self.owner) == 0 or len(per_slice) == 0:
            return np.zeros(n_rows), float(per_slice.sum())
        amounts = np.zeros(len(self.owner))
        for mask, by_weight, by_count in (
            (~self.is_remote, self.local_by_weight, self.local_by_count),
            (self.is_remote, self.remote_by_weight, self.remote_by_count),
        ):
            if not mask.any():
                continue
            weighted = np.concatenate([[0.0], np.cumsum(per_slice * by_weight)])
            counted = np.concatenate([[0.0], np.cumsum(per_slice * by_count)])
            f, e = self.first[mask], self.last[mask]
            amounts[mask] = self.weight[mask] * (weighted[e] - weighted[f]) + (counted[e] - counted[f])
        received = np.bincount(self.owner, weights=amounts, minlength=n_rows)
        return received, float(per_slice[self.unowned].sum())


def _coverage(first: np.ndarray, last: np.ndarray, n_slices: int, weight: np.ndarray | None = None) -> np.ndarray:
    """Sum of `weight` (or count) of the ranges covering each slice, by a difference array."""
    diff = np.zeros(n_slices + 1)
    w = np.ones(len(first)) if weight is None else weight
    np.add.at(diff, first, w)
    np.add.at(diff, last, -w)
    return np.cumsum(diff)[:n_slices]


def _leaf_weights(steps: pd.DataFrame, policy: Policy) -> np.ndarray:
    if policy != "tokens" or not len(steps):
        return np.zeros(len(steps))  # zero weight everywhere: every slice falls back to equal shares
    tokens = steps["input_tokens"].fillna(0).to_numpy() + steps["output_tokens"].fillna(0).to_numpy()
    return np.where(steps["bills_usage"].to_numpy(dtype=bool), tokens, 0.0)


def _check(measured: float, attributed: float) -> dict[str, float]:
    error = attributed - measured
    tolerance = 1e-9 * max(1.0, abs(measured))
    return {"measured": float(measured), "attributed": float(attributed), "error": float(error),
            "held": bool(abs(error) <= tolerance)}


def _price_calls(steps: pd.DataFrame, pricer: ApiPricer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """API cost, source and detail per step row: NaN, None and "" where the row bills nothing, and
    0 with source `duplicate` where the row describes a call that another row bills."""
    n = len(steps)
    cost = np.full(n, np.nan)
    source = np.full(n, None, dtype=object)
    detail = np.full(n, "", dtype=object)
    if "duplicate_of" in steps:  # a second description of a call counted on another span: $0, said why
        kept = steps["duplicate_of"].to_numpy(dtype=object)
        for pos in np.flatnonzero(pd.notna(kept)):
            cost[pos], source[pos], detail[pos] = 0.0, "duplicate", f"same call as span {kept[pos]}, counted there"
    billing = np.flatnonzero(steps["bills_usage"].to_numpy(dtype=bool)) if n else np.zeros(0, dtype=np.int64)
    if not len(billing):
        return cost, source, detail
    column = {name: steps[name].to_numpy()[billing] for name in
              ("model", "provider", *TOKEN_COLUMNS[:4], "start_ns", "reported_cost_usd")}
    cost[billing], source[billing], detail[billing] = pricer.price_many(**column)
    return cost, source, detail
