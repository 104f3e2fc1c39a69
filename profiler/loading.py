"""`profiler.load()`: a run directory or any trace file in, a `Run` out."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from profiler.errors import TraceFormatError
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, empty_frame, frame_from_rows
from profiler.readers import otlp
from profiler.readers.framing import iter_json_values
from profiler.readers.nvidia_smi import looks_like_nvidia_smi, read_nvidia_smi
from profiler.readers.samples import SAMPLES_FILE, read_samples
from profiler.run_dir import META_FILE, SPANS_FILE

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (bytes read, total bytes) while a large file loads."""


def load(path: str | Path, gpu_samples: str | Path | None = None, *, tz: str | None = None,
         progress: Progress | None = None) -> Run:
    """Read a run directory, or a trace file written by us or another tool.

    Args:
        path: a run directory (`spans.jsonl`, `samples.csv`, `run.json`) or a trace file.
        gpu_samples: GPU telemetry to join with the spans: our `samples.csv` or an nvidia-smi CSV.
            Replaces the run directory's own samples when given.
        tz: the time zone of an nvidia-smi CSV's timestamps (default: this machine's).
        progress: called now and then with (bytes read, total bytes).

    Raises:
        TraceFormatError: the file is missing or cannot be read; the message names the place.
    """
    path = Path(path)
    warnings: list[str] = []
    if path.is_dir():
        run = _load_run_dir(path, warnings, progress)
    elif path.is_file():
        spans, meta = read_trace_file(path, warnings, progress)
        run = Run(spans=spans, samples=empty_frame(SAMPLE_COLUMNS), meta=meta, source=path, warnings=warnings)
    else:
        raise TraceFormatError(f"{path}: no such file or run directory")
    if gpu_samples is not None:
        run.samples = read_gpu_samples(Path(gpu_samples), warnings, tz)
        run.meta["gpu_samples_source"] = str(gpu_samples)
    for message in warnings:
        logger.warning("%s", message)
    return run


def read_gpu_samples(path: Path, warnings: list[str], tz: str | None = None) -> pd.DataFrame:
    """Read GPU telemetry: our samples file or an nvidia-smi CSV (sniffed from its first line)."""
    if not path.is_file():
        raise TraceFormatError(f"{path}: no such samples file")
    if looks_like_nvidia_smi(path):
        return read_nvidia_smi(path, warnings, tz)
    return read_samples(path, warnings)


def _load_run_dir(path: Path, warnings: list[str], progress: Progress | None) -> Run:
    meta: dict[str, Any] = {}
    meta_path = path / META_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            warnings.append(f"{meta_path}: unreadable ({err}); run metadata ignored")
    spans_path = path / SPANS_FILE
    if not spans_path.is_file() and not meta_path.is_file():
        raise TraceFormatError(f"{path}: not a run directory (no {SPANS_FILE} or {META_FILE})")
    if spans_path.is_file():
        spans, trace_meta = read_trace_file(spans_path, warnings, progress)
        meta.setdefault("unfinished_spans", trace_meta.get("unfinished_spans", 0))
    else:
        spans = empty_frame(SPAN_COLUMNS)
    samples_path = path / SAMPLES_FILE
    samples = read_samples(samples_path, warnings) if samples_path.is_file() else empty_frame(SAMPLE_COLUMNS)
    if meta.get("status") == "running":
        warnings.append(f"{path}: the run did not finish cleanly (killed?); figures cover what was written")
    return Run(spans=spans, samples=samples, meta=meta, source=path, warnings=warnings)


def read_trace_file(path: Path, warnings: list[str], progress: Progress | None = None) -> tuple[pd.DataFrame, dict]:
    """Read every span of a trace file, whatever its framing and dialect."""
    total = max(path.stat().st_size, 1)
    unfinished: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    report = (lambda consumed: progress(consumed, total)) if progress else None
    seen_format = None
    for line_no, value in iter_json_values(path, warnings.append, report):
        if isinstance(value, dict) and not value:
            continue
        if otlp.looks_like_otlp(value):
            seen_format = "otlp"
            rows.extend(otlp.rows_from_document(value, unfinished.append))
            continue
        raise TraceFormatError(
            f"{path}:{line_no}: expected OTLP JSON traces (an object with resourceSpans or scopeSpans), "
            f"found {_describe(value)}"
        )
    spans = frame_from_rows(rows, SPAN_COLUMNS)
    spans = _dedupe(spans)
    if unfinished:
        finished = set(zip(spans["trace_id"], spans["span_id"]))
        still_open = {(r["trace_id"], r["span_id"]) for r in unfinished} - finished
        if still_open:
            warnings.append(f"{path}: {len(still_open)} span(s) never ended; left out of the ledger")
    meta = {"format": seen_format or "empty", "unfinished_spans": len({(r["trace_id"], r["span_id"])
                                                                      for r in unfinished})}
    return spans, meta


def _dedupe(spans: pd.DataFrame) -> pd.DataFrame:
    """Keep one record per (trace, span): the one that ended last."""
    if not spans.duplicated(["trace_id", "span_id"]).any():
        return spans.reset_index(drop=True)
    return (spans.sort_values("end_ns", kind="stable")
            .drop_duplicates(["trace_id", "span_id"], keep="last")
            .sort_values("start_ns", kind="stable").reset_index(drop=True))


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(list(value)[:4])
        return f"an object with keys {keys}" if keys else "an empty object"
    return f"a JSON {type(value).__name__}"
