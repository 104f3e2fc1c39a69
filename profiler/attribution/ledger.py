"""The `Ledger`: the attributed, per-step view of a run, with totals, provenance and checks.

A Ledger is derived, never stored as the source of truth: re-attribute a `Run` with other prices
or another policy at any time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd

from instrumentation import semconv
from profiler.attribution.choices import GROUP_KEYS
from profiler.attribution.peaks import peak_column
from profiler.attribution.tree import subtree_sums_of
from profiler.energy.sensor_checks import add_checks, energy_uncertainty
from profiler.energy.timeline import GIB, QUANTITIES, GpuTimeline
from profiler.model import TOKEN_COLUMNS, UNATTRIBUTED_KIND, Run
from profiler.pricing.prices import Prices

KWH_PER_J = 1.0 / 3.6e6
COST_COLUMNS = ("api_cost_usd", "gpu_cost_usd", "energy_cost_usd", "total_cost_usd")
#: Columns that have a `self_` twin (what the step received itself, children excluded).
INCLUSIVE_COLUMNS = ("wall_s", *QUANTITIES, *TOKEN_COLUMNS, *COST_COLUMNS, "co2_g", "unpriced_calls")
#: Other dialects' names for the tool a tool span ran, in order (docs/dialects.md#the-operation-of-a-span):
#: OpenInference's, a tool call's function, Traceloop's entity.
TOOL_NAME_ALIASES = ("tool.name", "tool_call.function.name", "traceloop.entity.name")


@dataclass
class Ledger:
    """Per-step costs of a run."""

    steps: pd.DataFrame
    """One row per step, one `session` row per session (its overhead) and one `unattributed` row.
    Columns are inclusive (the step and everything under it) with `self_` twins. A model-call span
    that describes a call another span bills names that span in `duplicate_of` and bills nothing;
    `cache_tokens_reported` says whether a billed call reported a cache-read or cache-write count."""
    totals: dict[str, Any]
    """Whole-run figures; each measured quantity equals its device total."""
    checks: dict[str, Any]
    """Conservation per GPU and quantity, unpriced models, estimated figures, warnings."""
    run: dict[str, Any] = field(default_factory=dict)
    """Run metadata: id, source, status, GPUs, prices used, policy."""
    samples: pd.DataFrame | None = None
    """The run's raw GPU samples (`Run.samples`), for renderers that draw power and memory."""

    def group_by(self, key: str) -> pd.DataFrame:
        """Sum the self columns of the steps by `tool`, `model`, `session`, `kind` (or `step`: as is);
        `gpu_mem_peak_gib` is the group's highest."""
        if key not in GROUP_KEYS:
            raise ValueError(f"cannot group by {key!r} (choose from {', '.join(GROUP_KEYS)})")
        if key == "step":
            return self.steps
        column = {"tool": "tool_name", "model": "model", "session": "session_id", "kind": "kind"}[key]
        frame = self.steps
        if key == "tool":
            frame = frame[frame["kind"] == "execute_tool"]
        elif key == "model":
            frame = frame[frame["bills_usage"]]
        self_cols = [f"self_{c}" for c in INCLUSIVE_COLUMNS if f"self_{c}" in frame]
        groups = frame.groupby(frame[column].fillna("(none)"), sort=False)
        grouped = groups[self_cols].sum(min_count=1)
        grouped.insert(0, "count", groups.size())
        grouped.columns = ["count", *[c.removeprefix("self_") for c in self_cols]]
        grouped["gpu_mem_peak_gib"] = groups["gpu_mem_peak_gib"].max()  # a peak does not add up
        return grouped.sort_values("total_cost_usd", ascending=False, na_position="last").reset_index(
            names=key)

    def tree_order(self) -> pd.DataFrame:
        """The steps in depth-first order (children by start time), as a tree is read; the
        `unattributed` row last."""
        steps = self.steps
        span_ids = steps["span_id"].tolist()
        parent_ids = steps["parent_span_id"].tolist()
        kinds = steps["kind"].tolist()
        known = set(span_ids)
        # Sorting once by start time orders every parent's children at the same stroke.
        by_start = np.argsort(steps["start_ns"].to_numpy(), kind="stable").tolist()
        children: dict[Any, list[int]] = {}
        roots: list[int] = []
        for pos in by_start:
            parent = parent_ids[pos]
            if parent is None or parent not in known:
                roots.append(pos)
            else:
                children.setdefault(parent, []).append(pos)
        order: list[int] = []
        seen = [False] * len(span_ids)
        stack = roots[::-1]
        while stack:
            pos = stack.pop()
            if seen[pos]:
                continue
            seen[pos] = True
            order.append(pos)
            stack.extend(reversed(children.get(span_ids[pos], ())))
        order += [pos for pos in range(len(span_ids)) if not seen[pos]]  # cycles, should a trace hold one
        last = [pos for pos in order if kinds[pos] == UNATTRIBUTED_KIND]
        return steps.iloc[[pos for pos in order if kinds[pos] != UNATTRIBUTED_KIND] + last]

    def to_json(self) -> dict[str, Any]:
        """Return `{"run", "totals", "steps", "checks"}`, JSON-ready (NaN becomes null)."""
        steps = self.steps.drop(columns=["bills_usage"], errors="ignore")
        records = [{k: _json_value(v) for k, v in row.items()} for row in steps.to_dict("records")]
        return {"run": _json_tree(self.run), "totals": _json_tree(self.totals), "steps": records,
                "checks": _json_tree(self.checks)}


def build_ledger(
    *, run: Run, steps: pd.DataFrame, parent: np.ndarray, depth: np.ndarray, self_values: dict[str, np.ndarray],
    measured_any: dict[str, bool], coverage: np.ndarray, self_wall_s: np.ndarray, tokens: dict[str, np.ndarray],
    api_cost: np.ndarray,
    api_source: np.ndarray, api_detail: np.ndarray, gpu_cost: np.ndarray | None, prices: Prices,
    timelines: list[GpuTimeline], conservation: dict[str, Any], sources: dict[str, list[str]], policy: str,
) -> Ledger:
    """Assemble the ledger frame from the engine's arrays (all indexed by step row; the row after
    the last step is `unattributed`)."""
    n = len(steps)
    parent_all = np.concatenate([parent, [-1]])
    depth_all = np.concatenate([depth, [0]])
    ident = _identity_columns(steps, run)
    # Figures for a step that no GPU sampled are missing, not zero.
    coverage_all = np.concatenate([coverage, [1.0]])
    unsampled = (coverage_all <= 0) & bool(timelines)

    derived: dict[str, Any] = {
        "depth": depth_all,
        "wall_s": np.concatenate([(steps["end_ns"].to_numpy() - steps["start_ns"].to_numpy()) / 1e9, [np.nan]]),
        "self_wall_s": np.concatenate([self_wall_s, [np.nan]]),
        "gpu_coverage": coverage_all,
    }
    columns: dict[str, np.ndarray] = {}
    for quantity in QUANTITIES:
        if measured_any[quantity]:
            columns[quantity] = np.where(unsampled, np.nan, self_values[quantity])
        else:  # nothing measured it: missing throughout, without a masked copy of the gap
            columns[quantity] = np.full(n + 1, np.nan)
    for col in TOKEN_COLUMNS:
        columns[col] = np.concatenate([np.nan_to_num(tokens[col]), [0.0]])
    columns["api_cost_usd"] = np.concatenate([api_cost, [np.nan]])
    api_source, api_detail = np.asarray(api_source, dtype=object), np.asarray(api_detail, dtype=object)
    columns["unpriced_calls"] = np.append(api_source == "unpriced", False).astype(float)
    columns["gpu_cost_usd"] = np.where(unsampled, np.nan, gpu_cost) if gpu_cost is not None else np.full(n + 1, np.nan)
    energy_kwh = columns["energy_j"] * KWH_PER_J * prices.pue
    columns["energy_cost_usd"] = energy_kwh * prices.energy_usd_per_kwh
    columns["co2_g"] = energy_kwh * prices.carbon_intensity_g_per_kwh
    parts = np.vstack([columns["api_cost_usd"], columns["gpu_cost_usd"], columns["energy_cost_usd"]])
    # A step's total is the sum of its known parts; unpriced parts are counted in `unpriced_calls`.
    columns["total_cost_usd"] = np.where(np.isnan(parts).all(axis=0), np.nan, np.nansum(parts, axis=0))

    missing = {name: np.isnan(values) for name, values in columns.items()}
    measured = [name for name in columns if not missing[name].all()]
    # A missing value stays missing unless something below the row was measured: the subtree sums
    # of each measured column, and of a count of its measured values where it has gaps.
    gaps = [name for name in measured if missing[name].any()]
    counts = [(~missing[name]).astype(float) for name in gaps]
    sums = subtree_sums_of([columns[name] for name in measured] + counts, parent_all, depth_all)
    inclusive = dict(zip(measured, sums[:len(measured)], strict=True))
    measured_below = dict(zip(gaps, sums[len(measured):], strict=True))
    for name, values in columns.items():
        derived[f"self_{name}"] = values
        if name not in inclusive:
            derived[name] = np.full(n + 1, np.nan)
        elif name in measured_below:
            derived[name] = np.where(missing[name] & ~(measured_below[name] > 0), np.nan, inclusive[name])
        else:
            derived[name] = inclusive[name]
    bills = np.concatenate([steps["bills_usage"].to_numpy(dtype=bool), [False]])
    derived["bills_usage"] = bills
    derived["api_cost_source"] = _text_column(*pd.factorize(np.append(api_source, None)))
    derived["api_price_detail"] = _text_column(*pd.factorize(np.append(api_detail, "")))
    derived["tokens_source"] = _text_column(np.where(bills, 0, 1), ["provider-reported", None])
    # Whether a call said anything of its prompt cache: NaN (not reported) is not 0 read from it.
    cache_reported = ~np.isnan(tokens["cache_read_tokens"]) | ~np.isnan(tokens["cache_write_tokens"])
    derived["cache_tokens_reported"] = np.append(cache_reported & bills[:n], False)
    derived["energy_source"] = _text_column(np.where(unsampled, 0, 1), [
        "none: outside the GPU sampling window",
        "; ".join(sources.get("energy_j", [])) or "none: no GPU samples"])
    every_row = np.zeros(n + 1, dtype=np.intp)
    derived["memory_source"] = _text_column(every_row, [
        "; ".join(sources.get("gpu_mem_gib_s", [])) or "none: no GPU memory samples"])
    derived["gpu_cost_source"] = _text_column(every_row, [
        "; ".join(sources.get("gpu_cost_usd", [])) or "none: no GPU samples"])
    derived["gpu_mem_peak_gib"] = peak_column(ident["start_ns"], ident["end_ns"], ident["kind"], timelines)
    derived["energy_estimated"] = _estimated(derived["wall_s"], derived["energy_j"], coverage_all, timelines)
    # About one sensor update period's worth of the step's mean power (profiler.energy.sensor_checks).
    ends = (ident["start_ns"], ident["end_ns"])
    derived["energy_uncertainty_j"] = energy_uncertainty(
        derived["energy_j"], derived["wall_s"], *ends, timelines)
    derived["self_energy_uncertainty_j"] = energy_uncertainty(
        derived["self_energy_j"], derived["self_wall_s"], *ends, timelines)
    # One frame built at once instead of some fifty single-column inserts; its arrays are its own,
    # so they are not copied into blocks.
    ordered = pd.DataFrame(_order_columns({**ident, **derived}), copy=False)
    totals = _totals(ordered, timelines, measured_any, prices)
    checks = _checks(ordered, conservation, run)
    add_checks(checks, timelines)
    _add_memory_warnings(checks, timelines, run.meta)
    stand_in = _attribute_values(steps["attributes"].to_numpy(dtype=object), semconv.STAND_IN_MODEL)
    checks["stand_in_calls"] = int(np.fromiter(map(bool, stand_in), dtype=bool, count=len(stand_in)).sum())
    meta = {k: v for k, v in run.meta.items() if k not in ("spans",)}
    meta.update({"source": str(run.source) if run.source else None, "policy": policy, "prices": prices.to_json()})
    return Ledger(steps=ordered, totals=totals, checks=checks, run=meta, samples=run.samples)


def _identity_columns(steps: pd.DataFrame, run: Run) -> dict[str, Any]:
    """The columns that name each step, with the `unattributed` row last."""
    attributes = steps["attributes"].to_numpy(dtype=object)
    tool_name = _tool_names(attributes, steps["kind"].to_numpy(dtype=object), steps["name"].to_numpy(dtype=object))
    window_start = int(steps["start_ns"].min()) if len(steps) else 0
    window_end = int(steps["end_ns"].max()) if len(steps) else 0
    if len(run.samples):
        window_start = min(window_start or int(run.samples["t_ns"].min()), int(run.samples["t_ns"].min()))
        window_end = max(window_end, int(run.samples["t_ns"].max()))
    unattributed = {"span_id": "unattributed", "parent_span_id": None, "trace_id": None, "session_id": None,
                    "name": "(unattributed: GPU time outside every session)", "kind": UNATTRIBUTED_KIND,
                    "status": "unset", "start_ns": window_start, "end_ns": window_end, "model": None,
                    "provider": None, "remote": False}
    ident: dict[str, Any] = {}
    for name, last in unattributed.items():
        if name in ("start_ns", "end_ns"):
            ident[name] = np.append(steps[name].to_numpy(dtype=np.int64), last)
        elif name == "remote":
            ident[name] = np.append(steps[name].to_numpy(dtype=bool), last)
        else:
            ident[name] = _object_column(np.append(steps[name].to_numpy(dtype=object), _objects([last])))
    ident["tool_name"] = _object_column(np.append(tool_name, None))
    ident["error_type"] = _object_column(np.append(_attribute_values(attributes, "error.type"), None))
    duplicate_of = steps["duplicate_of"].to_numpy(dtype=object, copy=True) if "duplicate_of" in steps else np.full(
        len(steps), None, dtype=object)
    duplicate_of[pd.isna(duplicate_of)] = None  # the session rows the tree added
    ident["duplicate_of"] = _object_column(np.append(duplicate_of, None))
    return ident


def _tool_names(attributes: np.ndarray, kinds: np.ndarray, names: np.ndarray) -> np.ndarray:
    """The tool each span ran: `gen_ai.tool.name`, else on a tool span another dialect's name for it
    (`TOOL_NAME_ALIASES`), else what its span name says after `execute_tool `; None where none does."""
    tool_name = _attribute_values(attributes, "gen_ai.tool.name")
    named = np.fromiter(map(bool, tool_name), dtype=bool, count=len(tool_name))
    tool_name[~named] = None
    unnamed_tools = np.flatnonzero(~named & (kinds == "execute_tool"))
    for index in unnamed_tools.tolist():  # only tool spans that lack the GenAI name: few, even in big traces
        found = (attributes[index] or {}).get
        name = next((found(key) for key in TOOL_NAME_ALIASES if found(key)), None)
        if name is None and " " in names[index]:
            name = names[index].split(" ", 1)[1]
        tool_name[index] = name
    return tool_name


def _attribute_values(attributes: np.ndarray, key: str) -> np.ndarray:
    """One attribute of every row (None where it is absent), as an object array."""
    try:
        values = list(map(dict.get, attributes, repeat(key)))
    except TypeError:  # a row whose attributes are None or some other mapping
        values = [(a or {}).get(key) for a in attributes]
    return _objects(values)


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of `values` (never unpacked, should a value be a sequence)."""
    return np.fromiter(values, dtype=object, count=len(values))


def _object_column(values: np.ndarray) -> pd.Series:
    """A column kept as Python objects: pandas 3 would copy strings into an Arrow array."""
    return pd.Series(values, dtype=object, copy=False)


def _text_column(codes: np.ndarray, texts: Any) -> pd.Series:
    """The column of the values `texts[codes]` (code -1: None), of the dtype pandas gives those
    values (text under pandas 3, objects before, and objects where every value is None), built
    from the few distinct texts rather than row by row. Text is held as Python strings, each
    distinct one shared by its rows: an Arrow column would copy every row's text, tens of MB of
    fresh memory per column at a million rows."""
    texts = [*texts, None]
    codes = np.where(codes < 0, len(texts) - 1, codes)
    used = np.flatnonzero(np.bincount(codes, minlength=len(texts)))
    dtype = pd.Series([texts[i] for i in used]).dtype  # from just the values the column holds
    values = _objects(texts)[codes]
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        dtype = pd.StringDtype("python", na_value=dtype.na_value)
    return pd.Series(pd.array(values, dtype=dtype), copy=False)


def _estimated(wall_s: np.ndarray, energy_j: np.ndarray, coverage: np.ndarray,
               timelines: list[GpuTimeline]) -> np.ndarray:
    """Energy is estimated where it was integrated from power, the step is shorter than two updates
    of the sensor, or only part of the step was sampled."""
    if not timelines:
        return np.zeros(len(wall_s), dtype=bool)
    integrated = any(t.sources.get("energy_j") == "measured:integrated-power" for t in timelines)
    periods = [t.update_period_s for t in timelines if math.isfinite(t.update_period_s)]
    period_s = max(periods) if periods else 0.1
    short = np.isfinite(wall_s) & (wall_s < 2 * period_s)
    partial = coverage < 1.0 - 1e-9
    return (np.full(len(wall_s), integrated) | short | partial) & ~np.isnan(energy_j) & np.isfinite(wall_s)


def _order_columns(columns: dict[str, Any]) -> dict[str, Any]:
    first = ["span_id", "parent_span_id", "trace_id", "session_id", "name", "kind", "status", "depth", "start_ns",
             "end_ns", "model", "provider", "tool_name", "remote", "error_type", "duplicate_of"]
    paired = [c for name in INCLUSIVE_COLUMNS for c in (name, f"self_{name}")]
    rest = [c for c in columns if c not in first and c not in paired]
    return {name: columns[name] for name in first + paired + rest}


def _totals(steps: pd.DataFrame, timelines: list[GpuTimeline], measured_any: dict[str, bool],
            prices: Prices) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for name in INCLUSIVE_COLUMNS:
        if name == "wall_s":
            continue
        column = steps[f"self_{name}"]
        totals[name] = float(column.sum()) if column.notna().any() else None
    starts, ends = steps["start_ns"], steps["end_ns"]
    totals["wall_s"] = float((ends.max() - starts.min()) / 1e9) if len(steps) else 0.0
    totals["energy_kwh"] = totals["energy_j"] * KWH_PER_J if totals.get("energy_j") is not None else None
    # numpy compares an object array in half the time of pandas' `==` (`benchmarks/techniques.py`)
    kinds = steps["kind"].to_numpy(dtype=object)
    totals["model_calls"] = int(steps["bills_usage"].sum())
    totals["tool_calls"] = int(np.count_nonzero(kinds == "execute_tool"))
    sessions = int(np.count_nonzero(kinds == "session"))
    totals["steps"] = len(kinds) - sessions - int(np.count_nonzero(kinds == UNATTRIBUTED_KIND))
    totals["sessions"] = sessions
    totals["errors"] = int(np.count_nonzero(steps["status"].to_numpy(dtype=object) == "error"))
    totals["gpus"] = [_gpu_totals(line) for line in timelines]
    peaks = [g["mem_peak_gib"] for g in totals["gpus"] if g["mem_peak_gib"] is not None]
    totals["gpu_mem_peak_gib"] = float(sum(peaks)) if peaks else None
    totals["sources"] = {
        "tokens": "provider-reported usage on model-call spans",
        "api_cost_usd": "computed from genai-prices' bundled prices (cost recorded in the trace where the model "
        "is unknown to genai-prices)",
        "gpu_cost_usd": "computed: GPU-seconds x $/GPU-hour",
        "energy_j": "; ".join(sorted({t.sources.get("energy_j", "") for t in timelines} - {""})) or "none",
        "energy_cost_usd": f"computed: kWh x PUE {prices.pue} x ${prices.energy_usd_per_kwh}/kWh",
        "co2_g": f"computed: kWh x PUE {prices.pue} x {prices.carbon_intensity_g_per_kwh} gCO2e/kWh",
    }
    return totals


def _gpu_totals(line: GpuTimeline) -> dict[str, Any]:
    """One GPU's entry in `totals["gpus"]`: how its figures were measured, and its totals."""
    spread_s = line.update_spread_s
    return {
        "gpu": line.gpu, "energy_source": line.sources.get("energy_j"), "update_period_s": line.update_period_s,
        "idle_power_w": line.idle_power_w, "idle_power_method": line.idle_power_method,
        "update_phase_located": line.phase_located,
        "updates_located_within_ms": spread_s * 1e3 if math.isfinite(spread_s) else None,
        "memory_source": line.sources.get("gpu_mem_gib_s"),
        "mem_baseline_bytes": line.mem_baseline_bytes,
        "mem_peak_gib": float(line.held_bytes[1].max() / GIB) if line.held_bytes is not None else None,
        "measured": {q: line.total(q) for q in QUANTITIES if q in line.curves},
    }


def _checks(steps: pd.DataFrame, conservation: dict[str, Any], run: Run) -> dict[str, Any]:
    held = all(entry["held"] for per_gpu in conservation.values() for entry in per_gpu.values())
    problems = [f"GPU {gpu} {quantity}: {'; '.join(entry['problems'])}" for gpu, per_gpu in conservation.items()
                for quantity, entry in per_gpu.items() if entry.get("problems")]
    unpriced = steps.loc[steps["api_cost_source"] == "unpriced", "model"].fillna("(no model name)")
    checks: dict[str, Any] = {
        "conservation_held": bool(held),
        "conservation": conservation,
        "conservation_problems": problems,
        "unpriced_models": sorted(set(unpriced)),
        "unpriced_calls": int(len(unpriced)),
        "duplicate_calls": int(steps["duplicate_of"].notna().sum()),
        "estimated_energy_steps": int(steps["energy_estimated"].sum()),
        "incomplete_run": run.meta.get("status") not in (None, "complete"),
        "dropped": run.meta.get("dropped", {}),
        "torn_lines": dict(run.meta.get("torn_lines") or {}),
        "warnings": list(run.warnings),
    }
    return checks


def _add_memory_warnings(checks: dict[str, Any], timelines: list[GpuTimeline], meta: dict[str, Any]) -> None:
    """Say where the run's own GPU memory could not be told apart from other processes' because NVML
    listed PIDs this run's PID namespace does not have (a container: NVML reports host PIDs)."""
    seen = {g.get("uuid"): g.get("processes_seen") for g in meta.get("gpus", []) or [] if isinstance(g, dict)}
    for line in timelines:
        unseen = (seen.get(line.gpu) or {}).get("not_in_this_pid_namespace") or 0
        if unseen and line.sources.get("gpu_mem_gib_s") != "measured:process-memory":
            checks.setdefault("warnings", []).append(
                f"GPU {line.gpu}: NVML listed {unseen} process(es) whose PIDs this run's PID namespace does "
                "not have (inside a container NVML reports host PIDs), so the run's own memory could not be "
                "told apart: memory is the device's above its baseline, every process on the GPU included")


def _json_value(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _json_tree(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_tree(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_tree(v) for v in value]
    return _json_value(value)
