"""The raw records of a run: the span and sample tables and the `Run` that holds them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import infer_dtype

#: Columns of `Run.spans`, one row per finished span, with their dtypes.
#: Token counts are float so that "not reported" (NaN) stays apart from 0.
SPAN_COLUMNS: dict[str, str] = {
    "trace_id": "object",  # 32 lowercase hex digits
    "span_id": "object",  # 16 lowercase hex digits
    "parent_span_id": "object",  # None for a root
    "session_id": "object",  # gen_ai.conversation.id, else the trace id
    "name": "object",
    "kind": "object",  # gen_ai.operation.name (chat, execute_tool, invoke_agent, ...) or "step"
    "status": "object",  # ok | error | unset
    "start_ns": "int64",  # unix epoch nanoseconds
    "end_ns": "int64",
    "model": "object",  # response model, else request model; None when unknown
    "provider": "object",  # gen_ai.provider.name, normalised
    "input_tokens": "float64",  # inclusive of cache reads and writes (OTel convention)
    "output_tokens": "float64",  # inclusive of reasoning
    "cache_read_tokens": "float64",
    "cache_write_tokens": "float64",
    "reasoning_tokens": "float64",
    "bills_usage": "bool",  # usage on this span is counted (inference spans, or a lone aggregate)
    "reported_cost_usd": "float64",  # a cost the trace itself carries, in USD
    "remote": "bool",  # runs elsewhere (a call to a hosted API): takes no share of a local GPU
    "session_root": "bool",  # the span that a profiler.session() opened
    "pid": "float64",  # process.pid of the process the span ran in (resource or attribute); NaN: unknown
    "attributes": "object",  # every other attribute, as a dict
}

#: Columns of `Run.samples`, one row per reading of one GPU.
SAMPLE_COLUMNS: dict[str, str] = {
    "t_ns": "int64",  # unix epoch nanoseconds, same clock as the spans
    "gpu": "object",  # the device's UUID (or "gpu<index>" when the source has none)
    "energy_j": "float64",  # cumulative energy counter in joules; NaN when unsupported
    "power_w": "float64",  # instantaneous power where the source has it
    "mem_used_bytes": "float64",  # device memory used (NVML v2 "used")
    "proc_mem_bytes": "float64",  # memory of this run's own processes; NaN when unknown
    "util_pct": "float64",  # percent of time a kernel ran
    "sm_clock_mhz": "float64",  # slow fields, read about once a second; NaN between reads or unsupported
    "mem_clock_mhz": "float64",
    "temp_c": "float64",
    "proc_mem_bytes_by_pid": "object",  # "pid:bytes;pid:bytes" (format_pid_memory); None when not read
}

def format_pid_memory(by_pid: dict[int, int] | None) -> str | None:
    """Encode per-process memory as one samples-file cell: `pid:bytes;pid:bytes`, by pid.

    No comma and no quote, so the cell never breaks the CSV line it sits in. None and an empty
    mapping both become None (an empty cell): with `proc_mem_bytes` read as 0, an empty cell means
    none of the run's processes holds memory on the device (see `parse_pid_memory`).
    """
    if not by_pid:
        return None
    return ";".join(f"{pid}:{used}" for pid, used in sorted(by_pid.items()))


def parse_pid_memory(cell: Any, proc_mem_bytes: float = math.nan) -> dict[int, float] | None:
    """Decode a `proc_mem_bytes_by_pid` cell; None when unknown (not read, or malformed).

    An empty cell on a row whose `proc_mem_bytes` is 0 is a known empty mapping: the process list
    was read and none of the run's processes held memory.
    """
    if not isinstance(cell, str) or not cell:
        return {} if proc_mem_bytes == 0 else None
    by_pid: dict[int, float] = {}
    for item in cell.split(";"):
        pid, _, used = item.partition(":")
        try:
            key, value = int(pid), float(used)
        except ValueError:
            return None
        if not math.isfinite(value) or value < 0:
            return None
        by_pid[key] = by_pid.get(key, 0.0) + value
    return by_pid


#: The kinds of the rows the engine adds: a session's own row (its overhead) and GPU time outside
#: every session.
SESSION_KIND = "session"
UNATTRIBUTED_KIND = "unattributed"

TOKEN_COLUMNS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens")

#: Operation names whose usage is a bill of their own (docs/dialects.md#usage-is-counted-on-inference-spans).
INFERENCE_KINDS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """Return an empty DataFrame with the given columns and dtypes."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def frame_from_rows(rows: list[dict[str, Any]] | dict[str, list[Any]], columns: dict[str, str]) -> pd.DataFrame:
    """Build a DataFrame with exactly `columns`, filling missing ones with their neutral value."""
    frame = pd.DataFrame(rows) if len(rows) else empty_frame(columns)
    for name, dtype in columns.items():
        if name not in frame.columns:
            frame[name] = _neutral(dtype, len(frame))
    frame = frame[list(columns)]
    for name, dtype in columns.items():
        if dtype == "bool":
            frame[name] = frame[name].fillna(False).astype(bool)
        elif dtype == "object":
            frame[name] = frame[name].astype(object)
            frame[name] = frame[name].where(frame[name].notna(), None)
        else:
            frame[name] = frame[name].astype(dtype)
    return frame


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Return `frame` with exactly `columns` in their dtypes: a frame built by hand (or by pandas 3,
    which stores missing strings as NaN) reads the same as one from our readers. Vectorised."""
    changed: dict[str, Any] = {}
    for name, dtype in columns.items():
        if name not in frame:
            changed[name] = _neutral(dtype, len(frame))
            continue
        column = frame[name]
        if dtype == "object":
            if column.dtype != object:
                column = changed[name] = column.astype(object)
            if name != "attributes" and _holds_missing_other_than_none(column.to_numpy()):
                changed[name] = column.where(column.notna(), None)
        elif dtype == "bool":
            if column.dtype != bool:
                changed[name] = column.fillna(False).astype(bool)
        elif str(column.dtype) != dtype:
            changed[name] = column.astype(dtype)
    # Selecting columns copies them (pandas 3: lazily, on a write), so the result never shares a
    # write with `frame`; a frame from our readers is thus not copied here at all. The shallow copy
    # drops pandas 2's mark of a selection, which would warn on every later write.
    kept = frame[[name for name in columns if name in frame and name not in changed]]
    return (kept.assign(**changed) if changed else kept)[list(columns)].copy(deep=False)


def _holds_missing_other_than_none(values: np.ndarray) -> bool:
    """Whether an object column holds NaN, pd.NA or NaT: the missing values that are not None."""
    if infer_dtype(values, skipna=False) == "string":
        return False  # strings only (ids, names): said in one quick pass, without testing each for NA
    missing = values[pd.isna(values)].tolist()
    try:
        return missing.count(None) != len(missing)  # None is found by identity
    except TypeError:  # pd.NA will not say whether it equals None: it is not None
        return True


def _neutral(dtype: str, n: int) -> Any:
    if dtype == "float64":
        return np.full(n, np.nan)
    if dtype == "bool":
        return np.zeros(n, dtype=bool)
    if dtype == "int64":
        return np.zeros(n, dtype=np.int64)
    return [None] * n if dtype == "object" and n else None


@dataclass
class Run:
    """What was recorded: spans, GPU samples and metadata. Raw records only; see `attribute()`."""

    spans: pd.DataFrame
    samples: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def gpus(self) -> list[str]:
        """The devices that have samples, in order of first appearance."""
        return list(dict.fromkeys(self.samples["gpu"].tolist()))
