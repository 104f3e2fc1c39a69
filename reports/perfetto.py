"""Perfetto / Chrome trace-event JSON: steps as complete ("X") slices, GPU power, memory and
cumulative energy as counter ("C") tracks. Open it at ui.perfetto.dev or chrome://tracing.

One process per session (its steps, on as many threads as concurrent steps need to nest properly),
one process per GPU (its counters). Times are microseconds since the run's first instant, which
`otherData.origin_unix_ns` gives.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from profiler.analysis import insights
from profiler.attribution.ledger import Ledger, _json_tree, _json_value
from profiler.model import SESSION_KIND, UNATTRIBUTED_KIND

GPU_PID_BASE = 1000
_ARG_COLUMNS = ("kind", "model", "provider", "tool_name", "status", "error_type", "span_id", "parent_span_id",
                "wall_s",
                "input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens", "api_cost_source",
                "self_total_cost_usd", "total_cost_usd", "self_api_cost_usd", "self_gpu_cost_usd",
                "self_energy_cost_usd", "self_energy_j", "energy_j", "self_gpu_mem_gib_s", "gpu_mem_gib_s",
                "self_idle_hold_gib_s", "idle_hold_gib_s", "energy_estimated")
_COUNTERS = (("power_w", "GPU power (W)"), ("mem_used_gib", "GPU memory used (GiB)"),
             ("energy_j", "GPU energy since start (J)"))


def render_perfetto(ledger: Ledger, *, by: str = "step", top: int | None = None) -> str:
    """Render the run as Chrome trace-event JSON (`by` and `top` are ignored: a trace shows all)."""
    origin_ns, _ = insights.time_window(ledger)
    events: list[dict[str, Any]] = []
    steps = ledger.steps
    sessions = list(dict.fromkeys(steps.loc[steps["kind"] == SESSION_KIND, "session_id"]))
    orphans = steps[~steps["session_id"].isin(sessions) & (steps["kind"] != UNATTRIBUTED_KIND)]
    if len(orphans):
        sessions.append(None)
    all_turns = insights.model_turns(ledger)
    for index, session in enumerate(sessions):
        pid = index + 1
        rows = orphans if session is None else steps[steps["session_id"] == session]
        session_rows = rows[rows["kind"] == SESSION_KIND]
        label = str(session_rows["name"].iat[0]) if len(session_rows) else f"session {session}"
        events.append(_meta(pid, None, "process_name", label))
        events.append(_meta(pid, None, "process_sort_index", index))
        events.extend(_slices(rows, pid, origin_ns))
        turns = all_turns[all_turns["session_id"] == session] if len(all_turns) else all_turns
        for turn in turns[["end_ns", "cumulative_cost_usd"]].to_dict("records"):
            value = _json_value(turn["cumulative_cost_usd"])
            if value is not None:
                events.append({"ph": "C", "name": "cumulative $ (steps finished)", "pid": pid,
                               "ts": _us(turn["end_ns"], origin_ns), "args": {"usd": value}})
    events.extend(_counters(ledger, origin_ns))
    document = {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"generator": "sessionprof", "run_id": str(ledger.run.get("run_id") or ""),
                      "origin_unix_ns": str(origin_ns), "totals": _json_tree(ledger.totals)},
    }
    return json.dumps(document, separators=(",", ":"), default=str) + "\n"


def _meta(pid: int, tid: int | None, name: str, value: Any) -> dict[str, Any]:
    event: dict[str, Any] = {"ph": "M", "name": name, "pid": pid,
                             "args": {"sort_index" if name.endswith("sort_index") else "name": value}}
    if tid is not None:
        event["tid"] = tid
    return event


def _us(t_ns: Any, origin_ns: int) -> float:
    return (int(t_ns) - origin_ns) / 1000.0


def _slices(rows: pd.DataFrame, pid: int, origin_ns: int) -> list[dict[str, Any]]:
    """One "X" event per step, on threads chosen so that a slice sits inside another on its thread
    only when that one is its parent: concurrent siblings go to threads of their own."""
    events: list[dict[str, Any]] = []
    order = rows.assign(_length=rows["end_ns"] - rows["start_ns"]).sort_values(
        ["start_ns", "_length", "depth"], ascending=[True, False, True], kind="stable")
    lanes: list[list[tuple[int, Any]]] = []  # per thread: (end, span id) of the open slices, innermost last
    lane_of: dict[Any, int] = {}
    for row in order.to_dict("records"):
        start, end = int(row["start_ns"]), int(row["end_ns"])
        key, parent = (row["trace_id"], row["span_id"]), (row["trace_id"], row["parent_span_id"])
        preferred = lane_of.get(parent)
        candidates = ([preferred] if preferred is not None else []) + list(range(len(lanes)))
        chosen = None
        for lane in candidates:
            stack = lanes[lane]
            while stack and stack[-1][0] <= start:
                stack.pop()
            if not stack or (stack[-1][1] == parent and stack[-1][0] >= end):
                chosen = lane
                break
        if chosen is None:
            lanes.append([])
            chosen = len(lanes) - 1
            events.append(_meta(pid, chosen + 1, "thread_name", "steps" if chosen == 0 else f"concurrent {chosen}"))
        lanes[chosen].append((end, key))
        lane_of[key] = chosen
        args = {c: _json_value(row[c]) for c in _ARG_COLUMNS if c in row}
        events.append({"ph": "X", "name": str(row["name"]), "cat": str(row["kind"]), "pid": pid, "tid": chosen + 1,
                       "ts": _us(start, origin_ns), "dur": (end - start) / 1000.0,
                       "args": {k: v for k, v in args.items() if v is not None}})
    return events


def _counters(ledger: Ledger, origin_ns: int) -> list[dict[str, Any]]:
    series = insights.gpu_series(ledger)
    names = {str(g.get("uuid")): str(g.get("name")) for g in ledger.run.get("gpus") or [] if isinstance(g, dict)}
    events: list[dict[str, Any]] = []
    for index, (gpu, group) in enumerate(series.groupby("gpu", sort=False)):
        pid = GPU_PID_BASE + index
        events.append(_meta(pid, None, "process_name", f"GPU {index}: {names.get(str(gpu), gpu)}"))
        events.append(_meta(pid, None, "process_sort_index", GPU_PID_BASE + index))
        for column, title in _COUNTERS:
            for t_ns, value in zip(group["t_ns"], group[column], strict=True):
                value = _json_value(value)
                if value is not None:
                    events.append({"ph": "C", "name": title, "pid": pid, "ts": _us(t_ns, origin_ns),
                                   "args": {column: value}})
    return events

