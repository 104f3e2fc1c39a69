"""Compare two attributed runs step by step: which steps cost more, which appeared or vanished.

Steps are aligned by their path: the names from the session down to the step, each with its
ordinal among same-named siblings in order of start (`session#0 / invoke_agent planner#0 /
chat gpt-4o#2`). Session rows are named `session`, so two runs of one agent line up whatever
their conversation ids; several sessions in a run line up in order of start.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from profiler.attribution.ledger import Ledger
from profiler.model import SESSION_KIND, UNATTRIBUTED_KIND

#: The figures compared, per step (inclusive: the step and everything beneath it) and in total.
METRICS = ("tokens", "input_tokens", "output_tokens", "cache_read_tokens", "api_cost_usd", "total_cost_usd",
           "energy_j", "gpu_mem_gib_s", "wall_s")
#: `status` of a row of `Diff.steps`.
STATUSES = ("changed", "same", "added", "removed")
_RELATIVE_TOLERANCE = 1e-9
_COSTS = ("api_cost_usd", "total_cost_usd")


@dataclass
class Diff:
    """The step-aligned comparison of run A (before) and run B (after)."""

    steps: pd.DataFrame
    """One row per aligned step, in tree order: `path` (list of names), `key` (the path as text),
    `depth`, `name`, `kind`, `status` (changed | same | added | removed), and for every metric
    `<metric>_a`, `<metric>_b`, `<metric>_delta` (B - A, inclusive of the step's children; a missing
    side counts as 0 for added and removed steps; NaN where one side was not measured) and
    `self_<metric>_delta` (the step's own change, children excluded)."""
    totals: dict[str, Any]
    """Per metric: `{"a", "b", "delta", "pct"}`; plus `counts` of steps by status and each side's
    model calls and steps."""
    a: dict[str, Any] = field(default_factory=dict)
    """What A is: its source and selection."""
    b: dict[str, Any] = field(default_factory=dict)
    """What B is."""


def step_paths(ledger: Ledger) -> pd.DataFrame:
    """The ledger's steps in tree order with their alignment `key` (a tuple), `depth` and figures."""
    ordered = ledger.tree_order()
    ordered = ordered[ordered["kind"] != UNATTRIBUTED_KIND]
    by_span: dict[Any, tuple[Any, ...]] = {}
    seen: dict[tuple[Any, ...], int] = {}
    keys: list[tuple[Any, ...]] = []
    for span_id, parent_id, name, kind in zip(ordered["span_id"], ordered["parent_span_id"], ordered["name"],
                                              ordered["kind"], strict=False):
        label = SESSION_KIND if kind == SESSION_KIND else str(name)
        parent_key = by_span.get(parent_id, ()) if parent_id is not None else ()
        ordinal = seen.get((parent_key, label), 0)
        seen[(parent_key, label)] = ordinal + 1
        key = (*parent_key, f"{label}#{ordinal}")
        keys.append(key)
        by_span.setdefault(span_id, key)
    frame = pd.DataFrame({
        "key": keys,
        "name": [SESSION_KIND if k == SESSION_KIND else str(n)
                 for n, k in zip(ordered["name"], ordered["kind"], strict=False)],
        "kind": ordered["kind"].to_numpy(dtype=object),
    })
    unpriced = (ordered["unpriced_calls"].fillna(0).to_numpy(dtype=float) if "unpriced_calls" in ordered
                else np.zeros(len(ordered)))
    for prefix in ("", "self_"):
        for metric in METRICS:
            column = prefix + metric
            if metric == "tokens":
                values = (ordered[f"{prefix}input_tokens"].to_numpy(dtype=float)
                          + ordered[f"{prefix}output_tokens"].to_numpy(dtype=float))
            elif metric in _COSTS and column in ordered:
                # No dollar figure on a step with no unpriced call means "nothing to pay": compare as $0.
                values = ordered[column].to_numpy(dtype=float)
                values = np.where(np.isnan(values) & (unpriced == 0), 0.0, values)
            elif column in ordered:
                values = ordered[column].to_numpy(dtype=float)
            else:
                values = np.full(len(ordered), np.nan)
            frame[column] = values
    return frame


def diff_ledgers(a: Ledger, b: Ledger) -> Diff:
    """Compare ledger A (before) with ledger B (after), step by step and in total."""
    left, right = step_paths(a), step_paths(b)
    left_at = {key: i for i, key in enumerate(left["key"])}
    right_at = {key: i for i, key in enumerate(right["key"])}
    order = _merged_order(list(left["key"]), list(right["key"]))
    n = len(order)
    li = np.array([left_at.get(k, -1) for k in order], dtype=np.int64)
    ri = np.array([right_at.get(k, -1) for k in order], dtype=np.int64)
    in_a, in_b = li >= 0, ri >= 0
    pick = np.where(in_b, ri, 0)
    pick_a = np.where(in_a, li, 0)
    out = pd.DataFrame({
        "path": [[part.rsplit("#", 1)[0] for part in key] for key in order],
        "key": [" / ".join(key) for key in order],
        "depth": np.array([len(key) - 1 for key in order], dtype=np.int64),
        "name": np.where(in_b, right["name"].to_numpy(dtype=object)[pick] if len(right) else None,
                         left["name"].to_numpy(dtype=object)[pick_a] if len(left) else None),
        "kind": np.where(in_b, right["kind"].to_numpy(dtype=object)[pick] if len(right) else None,
                         left["kind"].to_numpy(dtype=object)[pick_a] if len(left) else None),
    })
    changed = np.zeros(n, dtype=bool)
    for metric in METRICS:
        va = np.where(in_a, left[metric].to_numpy(dtype=float)[pick_a] if len(left) else np.nan, np.nan)
        vb = np.where(in_b, right[metric].to_numpy(dtype=float)[pick] if len(right) else np.nan, np.nan)
        delta = np.where(in_a & in_b, vb - va, np.where(in_b, vb, 0.0 - va)) + 0.0  # + 0.0: no -0.0
        out[f"{metric}_a"], out[f"{metric}_b"], out[f"{metric}_delta"] = va, vb, delta
        scale = np.maximum(np.abs(np.nan_to_num(va)), np.abs(np.nan_to_num(vb)))
        differs = np.abs(np.nan_to_num(delta)) > _RELATIVE_TOLERANCE * np.maximum(scale, 1e-12)
        if metric != "wall_s":  # timing always differs a little; a step is "changed" by what it spent
            changed |= differs | (np.isnan(va) != np.isnan(vb))
    for metric in METRICS:  # the step's own change (children excluded): where a change comes from
        column = f"self_{metric}"
        va = np.where(in_a, left[column].to_numpy(dtype=float)[pick_a] if len(left) else np.nan, np.nan)
        vb = np.where(in_b, right[column].to_numpy(dtype=float)[pick] if len(right) else np.nan, np.nan)
        out[f"self_{metric}_delta"] = np.where(in_a & in_b, vb - va, np.where(in_b, vb, 0.0 - va)) + 0.0
    out["status"] = np.select([in_a & in_b & changed, in_a & in_b, in_b], ["changed", "same", "added"],
                              "removed")
    columns = ["path", "key", "depth", "name", "kind", "status"]
    out = out[columns + [c for c in out.columns if c not in columns]]
    return Diff(steps=out, totals=_totals(a, b, out), a=_side(a), b=_side(b))


def top_changes(diff: Diff, n: int) -> pd.DataFrame:
    """The `n` steps whose own figures (children excluded) changed most: total $, then tokens, joules,
    GiB*s; largest first. Ranking by inclusive figures would only ever name the session and its
    ancestors of the change."""
    steps = diff.steps
    keys = [np.abs(np.nan_to_num(steps[f"self_{m}_delta"].to_numpy(dtype=float)))
            for m in ("gpu_mem_gib_s", "energy_j", "tokens", "total_cost_usd")]
    order = np.lexsort([-k for k in keys])
    return steps.iloc[order[:n]]


def only_changed(diff: Diff) -> pd.DataFrame:
    """The steps that changed, appeared or vanished, in tree order."""
    return diff.steps[diff.steps["status"] != "same"]


def _merged_order(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Union of two tree orders: B's order, each of A's extra steps after its B siblings."""
    children: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    known: set[tuple[Any, ...]] = set()
    for key in (*right, *left):
        if key in known:
            continue
        known.add(key)
        children.setdefault(key[:-1], []).append(key)
    order: list[tuple[Any, ...]] = []
    stack = list(reversed(children.get((), [])))  # every key's parent is a key too: paths grow from roots
    while stack:
        key = stack.pop()
        order.append(key)
        stack.extend(reversed(children.get(key, [])))
    return order


def _totals(a: Ledger, b: Ledger, steps: pd.DataFrame) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for metric in METRICS:
        va, vb = _total(a, metric), _total(b, metric)
        delta = vb - va if va is not None and vb is not None else None
        pct = delta / va * 100.0 if delta is not None and va else None
        totals[metric] = {"a": va, "b": vb, "delta": delta, "pct": pct}
    counts = steps["status"].value_counts()
    totals["counts"] = {status: int(counts.get(status, 0)) for status in STATUSES}
    for side, ledger in (("a", a), ("b", b)):
        totals["counts"][f"model_calls_{side}"] = int(ledger.totals.get("model_calls") or 0)
        totals["counts"][f"steps_{side}"] = int(ledger.totals.get("steps") or 0)
    return totals


def _total(ledger: Ledger, metric: str) -> float | None:
    totals = ledger.totals
    if metric == "tokens":
        parts = [totals.get("input_tokens"), totals.get("output_tokens")]
        return float(sum(p for p in parts if p is not None))
    value = totals.get(metric)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        # As per step: no dollars and no unpriced call means nothing to pay.
        return 0.0 if metric in _COSTS and not ledger.checks.get("unpriced_calls") else None
    return float(value)


def _side(ledger: Ledger) -> dict[str, Any]:
    return {"source": ledger.run.get("source"), "run_id": ledger.run.get("run_id"),
            "selection": ledger.run.get("selection")}
