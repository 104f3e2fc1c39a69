"""The attribution engine: charge every measured joule, GiB*s, GPU-second, token and dollar of a run
to the step that caused it (DESIGN.md, "Attribution: the rules").

Each GPU's timeline is cut at every span boundary. In each slice the quantity is split among the
active leaves (the innermost open steps) by the policy; a slice with no open step goes to the
`unattributed` row. A step that runs on a hosted API takes no share while a local step is active.
Because every quantity is a cumulative curve, the slices telescope and the parts add up exactly.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd

from profiler.genai import mark_billable
from profiler.ledger import Ledger, build_ledger
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, TOKEN_COLUMNS, Run, conform
from profiler.pricing import ApiPricer, Prices
from profiler.sensor_checks import instant_power_gpus, work_intervals
from profiler.timeline import QUANTITIES, build_timelines, window_coverage
from profiler.tree import add_session_rows, depths, leaf_ranges, parent_positions

Policy = Literal["equal", "tokens"]
POLICIES: tuple[str, ...] = ("equal", "tokens")


def attribute(run: Run, *, policy: Policy = "equal", prices: Prices | None = None,
              pricer: ApiPricer | None = None) -> Ledger:
    """Attribute a run's measurements and bills to its steps.

    Args:
        run: the raw records, from `profiler.load()`.
        policy: how concurrent steps on one GPU share a slice: `equal` shares, or by `tokens`
            (steps without tokens share equally only when no step in the slice has any).
        prices: GPU, energy and carbon factors; defaults when None.
        pricer: the API price lookup (shared across calls to reuse its cache).

    Returns:
        The `Ledger`: one row per step, one per session (its overhead) and an `unattributed` row.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r} (choose from {', '.join(POLICIES)})")
    prices = prices or Prices()
    spans = conform(run.spans, SPAN_COLUMNS).copy()
    spans["bills_usage"] = mark_billable(spans) if len(spans) else pd.Series(dtype=bool)
    steps = add_session_rows(spans) if len(spans) else spans
    parent = parent_positions(steps) if len(steps) else np.zeros(0, dtype=np.int64)
    depth = depths(parent)

    gpu_names = {g.get("uuid"): g.get("name") for g in run.meta.get("gpus", []) if isinstance(g, dict)}
    baselines = {g.get("uuid"): g.get("mem_baseline_bytes") for g in run.meta.get("gpus", [])
                 if isinstance(g, dict) and g.get("mem_baseline_bytes") is not None}
    timelines = build_timelines(conform(run.samples, SAMPLE_COLUMNS), baselines,
                                instant_power=instant_power_gpus(run.meta), work=work_intervals(steps))

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
    grid = np.unique(np.concatenate(edges)) if any(len(e) for e in edges) else np.zeros(0, dtype=np.int64)
    start_idx = np.searchsorted(grid, start_ns)
    end_idx = np.searchsorted(grid, end_ns)
    owner, first, last = leaf_ranges(start_idx, end_idx, parent) if n else (np.zeros(0, int),) * 3

    self_wall_s = np.bincount(owner, weights=(grid[last] - grid[first]) / 1e9, minlength=n) if n else np.zeros(0)
    weight_of = _leaf_weights(steps, policy)
    shares = _SliceShares(len(grid), owner, first, last, steps["remote"].to_numpy(dtype=bool), weight_of)

    for line in timelines:
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

    return build_ledger(
        run=run, steps=steps, parent=parent, depth=depth, self_values=self_values, measured_any=measured_any,
        coverage=window_coverage(start_ns, end_ns, timelines),
        self_wall_s=self_wall_s, tokens=tokens, api_cost=api_cost, api_source=api_source, api_detail=api_detail,
        gpu_cost=gpu_cost if timelines and gpu_cost_priced else None, prices=prices, timelines=timelines,
        conservation=conservation, sources={k: sorted(v) for k, v in sources.items()}, policy=policy,
    )


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
    if policy == "equal" or not len(steps):
        return np.zeros(len(steps))  # zero weight everywhere: every slice falls back to equal shares
    tokens = steps["input_tokens"].fillna(0).to_numpy() + steps["output_tokens"].fillna(0).to_numpy()
    return np.where(steps["bills_usage"].to_numpy(dtype=bool), tokens, 0.0)


def _check(measured: float, attributed: float) -> dict[str, float]:
    error = attributed - measured
    tolerance = 1e-9 * max(1.0, abs(measured))
    return {"measured": float(measured), "attributed": float(attributed), "error": float(error),
            "held": bool(abs(error) <= tolerance)}


def _price_calls(steps: pd.DataFrame, pricer: ApiPricer) -> tuple[np.ndarray, list[str | None], list[str]]:
    n = len(steps)
    cost = np.full(n, np.nan)
    source: list[str | None] = [None] * n
    detail = [""] * n
    if not n:
        return cost, source, detail
    billing = np.flatnonzero(steps["bills_usage"].to_numpy(dtype=bool))
    cols = ["model", "provider", *TOKEN_COLUMNS, "start_ns", "reported_cost_usd"]
    for pos, row in zip(billing, steps.iloc[billing][cols].itertuples(index=False)):
        price = pricer.price(
            model=row.model, provider=row.provider, input_tokens=row.input_tokens,
            output_tokens=row.output_tokens, cache_read_tokens=row.cache_read_tokens,
            cache_write_tokens=row.cache_write_tokens, start_ns=int(row.start_ns),
            reported_cost_usd=row.reported_cost_usd if row.reported_cost_usd is not None else math.nan,
        )
        cost[pos], source[pos], detail[pos] = price.cost_usd, price.source, price.detail
    return cost, source, detail
