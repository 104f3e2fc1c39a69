"""Build span rows and sample frames directly (no OpenTelemetry, no threads) for core tests.

Times are given in seconds from `BASE_NS`, a realistic epoch instant, so a test reads like a
timeline: `span("tool", parent="agent", start=2, end=5)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from profiler.energy.timeline import GIB
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, empty_frame, format_pid_memory

BASE_NS = 1_700_000_000_000_000_000
"""14 Nov 2023, 22:13:20 UTC: every builder time is seconds after this instant."""
S = 1_000_000_000
NAN = math.nan


def ns(t_s: float) -> int:
    """Seconds after `BASE_NS` as epoch nanoseconds (exact for millisecond multiples)."""
    return BASE_NS + round(t_s * S)


def span(
    span_id: str,
    parent: str | None = None,
    *,
    start: float,
    end: float,
    kind: str = "step",
    name: str | None = None,
    trace: str = "t1",
    session: str | None = None,
    session_root: bool = False,
    remote: bool = False,
    model: str | None = None,
    provider: str | None = None,
    input_tokens: float = NAN,
    output_tokens: float = NAN,
    cache_read_tokens: float = NAN,
    cache_write_tokens: float = NAN,
    reasoning_tokens: float = NAN,
    reported_cost_usd: float = NAN,
    status: str = "unset",
    attributes: dict[str, Any] | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """One row of `Run.spans`, as the readers would produce it."""
    return {
        "trace_id": trace,
        "span_id": span_id,
        "parent_span_id": parent,
        "session_id": session if session is not None else trace,
        "name": name if name is not None else f"{kind} {span_id}",
        "kind": kind,
        "status": status,
        "start_ns": ns(start),
        "end_ns": ns(end),
        "model": model,
        "provider": provider,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_read_tokens": cache_read_tokens,
        "cache_write_tokens": cache_write_tokens,
        "reasoning_tokens": reasoning_tokens,
        "reported_cost_usd": reported_cost_usd,
        "remote": remote,
        "session_root": session_root,
        "pid": NAN if pid is None else float(pid),
        "attributes": dict(attributes or {}),
    }


def chat(
    span_id: str,
    parent: str | None = None,
    *,
    start: float,
    end: float,
    model: str = "gpt-4o",
    provider: str = "openai",
    input_tokens: float = 100,
    output_tokens: float = 10,
    remote: bool = False,
    **rest: Any,
) -> dict[str, Any]:
    """An inference span with usage (named `chat <model>` unless `name` is given)."""
    return span(
        span_id,
        parent,
        start=start,
        end=end,
        kind="chat",
        name=rest.pop("name", f"chat {model}"),
        model=model,
        provider=provider,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        remote=remote,
        **rest,
    )


def spans_frame(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """A `Run.spans` frame with the model's columns and dtypes (built column by column: property
    tests build thousands)."""
    if not rows:
        return empty_frame(SPAN_COLUMNS)
    data: dict[str, Any] = {}
    for name, dtype in SPAN_COLUMNS.items():
        values = [r.get(name) for r in rows]
        if dtype == "object":
            data[name] = pd.Series(values, dtype=object)
        elif dtype == "bool":
            data[name] = np.array([bool(v) for v in values], dtype=bool)
        elif dtype == "float64":
            data[name] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        else:
            data[name] = np.array(values, dtype=dtype)
    return pd.DataFrame(data)


def _pid_cells(value: Any, n: int) -> list[str | None]:
    if value is None or isinstance(value, dict):
        return [format_pid_memory(value)] * n
    assert len(value) == n, f"{len(value)} per-process readings for {n} sample times"
    return [format_pid_memory(v) for v in value]


def _series(value: Any, n: int) -> np.ndarray:
    if value is None:
        return np.full(n, np.nan)
    if np.isscalar(value):
        return np.full(n, float(value))  # type: ignore[arg-type]
    array = np.asarray(value, dtype=np.float64)
    assert len(array) == n, f"series of length {len(array)} for {n} sample times"
    return array


def samples_frame(
    times_s: Sequence[float],
    *,
    gpu: str = "GPU-0",
    energy_j: Any = None,
    power_w: Any = None,
    mem_used_bytes: Any = None,
    proc_mem_bytes: Any = None,
    util_pct: Any = None,
    sm_clock_mhz: Any = None,
    mem_clock_mhz: Any = None,
    temp_c: Any = None,
    proc_mem_bytes_by_pid: Any = None,
) -> pd.DataFrame:
    """A `Run.samples` frame for one GPU; each series is None (NaN), a scalar or a sequence
    (`proc_mem_bytes_by_pid`: None, one `{pid: bytes}` for every sample, or one per sample)."""
    n = len(times_s)
    # Built column by column with the model's dtypes (faster than `frame_from_rows`, which property
    # tests would call thousands of times).
    return pd.DataFrame(
        {
            "t_ns": np.array([ns(t) for t in times_s], dtype=np.int64),
            "gpu": pd.Series([gpu] * n, dtype=object),
            "energy_j": _series(energy_j, n),
            "power_w": _series(power_w, n),
            "mem_used_bytes": _series(mem_used_bytes, n),
            "proc_mem_bytes": _series(proc_mem_bytes, n),
            "util_pct": _series(util_pct, n),
            "sm_clock_mhz": _series(sm_clock_mhz, n),
            "mem_clock_mhz": _series(mem_clock_mhz, n),
            "temp_c": _series(temp_c, n),
            "proc_mem_bytes_by_pid": pd.Series(_pid_cells(proc_mem_bytes_by_pid, n), dtype=object),
        },
        columns=list(SAMPLE_COLUMNS),
    )


def steady_gpu(
    start: float,
    end: float,
    *,
    step: float = 0.1,
    gpu: str = "GPU-0",
    power_w: float = 100.0,
    counter: bool = True,
    mem_gib: float | None = 2.0,
    util_pct: float | None = 50.0,
    proc_mem: bool = False,
) -> pd.DataFrame:
    """A GPU drawing constant power from `start` to `end` seconds, sampled every `step` seconds.

    With `counter`, the energy counter starts at an arbitrary 1 MJ (it counts since driver load).
    Memory is device memory (baseline 0 GiB at the first sample, then `mem_gib` held) unless
    `proc_mem`, when the run's own processes hold `mem_gib`.
    """
    times = np.round(np.arange(start, end + step / 2, step), 9)
    elapsed = times - times[0]
    mem = None
    if mem_gib is not None:
        mem = np.full(len(times), mem_gib * GIB)
        if not proc_mem:
            mem[0] = 0.0
    return samples_frame(
        times.tolist(),
        gpu=gpu,
        power_w=power_w,
        energy_j=(1e6 + power_w * elapsed) if counter else None,
        mem_used_bytes=None if proc_mem else mem,
        proc_mem_bytes=mem if proc_mem else None,
        util_pct=util_pct,
    )


def concat_samples(*frames: pd.DataFrame) -> pd.DataFrame:
    """Several GPUs' samples in one frame."""
    return pd.concat(frames, ignore_index=True)


def make_run(
    spans: Sequence[dict[str, Any]] = (),
    samples: pd.DataFrame | None = None,
    meta: dict[str, Any] | None = None,
) -> Run:
    """A `Run` from span rows and a samples frame."""
    return Run(
        spans=spans_frame(spans),
        samples=samples if samples is not None else empty_frame(SAMPLE_COLUMNS),
        meta=dict(meta or {}),
    )


def row(ledger: Any, span_id: str) -> pd.Series:
    """The ledger row of one step."""
    found = ledger.steps[ledger.steps["span_id"] == span_id]
    assert len(found) == 1, f"{span_id!r}: {len(found)} rows"
    return found.iloc[0]


def value(ledger: Any, span_id: str, column: str) -> float:
    """One figure of one step."""
    return float(row(ledger, span_id)[column])


def device_totals(samples: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Each GPU's measured total of every quantity, from the timeline the engine builds."""
    from profiler.energy.timeline import build_timelines

    return {line.gpu: {q: line.total(q) for q in line.curves} for line in build_timelines(samples)}


def assert_inclusive_is_self_plus_descendants(ledger: Any, columns: Sequence[str]) -> None:
    """Check `inclusive == self + sum of the children's inclusive` on every row (NaN counts as 0)."""
    steps = ledger.steps
    for column in columns:
        inclusive = dict(zip(steps["span_id"], steps[column].fillna(0.0), strict=True))
        expected = dict(zip(steps["span_id"], steps[f"self_{column}"].fillna(0.0), strict=True))
        for span_id, parent_id in zip(steps["span_id"], steps["parent_span_id"], strict=True):
            if parent_id is not None and parent_id in expected:
                expected[parent_id] += inclusive[span_id]
        for span_id, total in expected.items():
            assert math.isclose(inclusive[span_id], total, rel_tol=1e-12, abs_tol=1e-9), (column, span_id)


def otlp_span(
    span_id: str,
    parent: str | None = None,
    *,
    start: float,
    end: float,
    name: str = "step",
    trace: str = "4bf92f3577b34da6a3ce929d0e0e4736",
    attributes: dict[str, Any] | None = None,
    status_code: int = 0,
) -> dict[str, Any]:
    """One span as OTLP JSON writes it (hex ids, nanosecond strings, typed attribute values)."""
    encoded: dict[str, Any] = {
        "traceId": trace,
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(ns(start)),
        "endTimeUnixNano": str(ns(end)),
        "attributes": [{"key": k, "value": _any_value(v)} for k, v in (attributes or {}).items()],
        "status": {"code": status_code},
    }
    if parent is not None:
        encoded["parentSpanId"] = parent
    return encoded


def _any_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def otlp_document(spans: Sequence[dict[str, Any]], resource: dict[str, Any] | None = None) -> dict[str, Any]:
    """A `TracesData` document holding `spans` (one line of a spans.jsonl file)."""
    return {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": k, "value": _any_value(v)} for k, v in (resource or {}).items()]
                },
                "scopeSpans": [{"scope": {"name": "tests"}, "spans": list(spans)}],
            }
        ]
    }


def assert_tree_is_consistent(ledger: Any) -> None:
    """Every step's depth is its parent's plus one (so the tree has no cycle), roots at depth 0."""
    steps = ledger.steps
    depth = dict(zip(steps["span_id"], steps["depth"], strict=True))
    for span_id, parent_id in zip(steps["span_id"], steps["parent_span_id"], strict=True):
        expected = 0 if parent_id is None else depth[parent_id] + 1
        assert depth[span_id] == expected, (span_id, parent_id)
