"""`profiler.load()`: a run directory or any trace file in, a `Run` out."""

from __future__ import annotations

import gc
import logging
import re
from collections.abc import Callable
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from instrumentation.run_dir import META_FILE, SPANS_FILE
from instrumentation.usage import MAX_TOKENS_PER_CALL
from profiler.errors import TraceFormatError
from profiler.gpu.samples_file import SAMPLES_FILE, read_samples
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, empty_frame
from profiler.traces.readers import console, jaeger, otlp, otlp_typed
from profiler.traces.readers.framing import iter_json_values
from profiler.traces.readers.nvidia_smi import looks_like_nvidia_smi, read_nvidia_smi
from profiler.traces.run_meta import killed_warning, read_meta
from profiler.traces.span_ids import all_distinct, hex_span_ids
from profiler.traces.span_table import Rejected, SpanBatch, SpanRecord, span_arrays

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
        torn: list[int] = []
        run.samples = read_gpu_samples(Path(gpu_samples), warnings, tz, meta=run.meta, torn=torn)
        run.meta["gpu_samples_source"] = str(gpu_samples)
        run.meta["gpu_samples_kind"] = "nvidia-smi CSV" if looks_like_nvidia_smi(Path(gpu_samples)) else "samples file"
        _count_torn(run.meta, "samples", torn)
    for message in warnings:
        logger.warning("%s", message)
    return run


def read_gpu_samples(path: Path, warnings: list[str], tz: str | None = None, *,
                     meta: dict[str, Any] | None = None, torn: list[int] | None = None) -> pd.DataFrame:
    """Read GPU telemetry: our samples file or an nvidia-smi CSV (sniffed from its first line).
    What the file says about its power readings goes into `meta` (see `read_nvidia_smi`); the
    lines of our samples file skipped as cut short mid-write go into `torn`."""
    if not path.is_file():
        raise TraceFormatError(f"{path}: no such samples file")
    if looks_like_nvidia_smi(path):
        return read_nvidia_smi(path, warnings, tz, meta)
    return read_samples(path, warnings, torn)


def _count_torn(meta: dict[str, Any], records: str, lines: list[int]) -> None:
    """Record in `meta["torn_lines"]` how many lines of `records` were cut short mid-write."""
    if lines:
        meta.setdefault("torn_lines", {})[records] = len(lines)


def _load_run_dir(path: Path, warnings: list[str], progress: Progress | None) -> Run:
    meta: dict[str, Any] = {}
    meta_path = path / META_FILE
    if meta_path.is_file():
        meta = read_meta(meta_path, warnings)
    spans_path = path / SPANS_FILE
    if not spans_path.is_file() and not meta_path.is_file():
        raise TraceFormatError(f"{path}: not a run directory (no {SPANS_FILE} or {META_FILE})")
    meta.pop("torn_lines", None)  # counted here, by reading
    if spans_path.is_file():
        spans, trace_meta = read_trace_file(spans_path, warnings, progress)
        meta.setdefault("unfinished_spans", trace_meta.get("unfinished_spans", 0))
        if "torn_lines" in trace_meta:
            meta["torn_lines"] = dict(trace_meta["torn_lines"])
    else:
        spans = empty_frame(SPAN_COLUMNS)
    samples_path = path / SAMPLES_FILE
    torn: list[int] = []
    samples = read_samples(samples_path, warnings, torn) if samples_path.is_file() else empty_frame(SAMPLE_COLUMNS)
    _count_torn(meta, "samples", torn)
    if meta.get("status") == "running":
        warnings.append(f"{path}: the run did not finish cleanly (killed?); figures cover what was written")
    if meta.get("signal"):
        warnings.append(killed_warning(meta))
    return Run(spans=spans, samples=samples, meta=meta, source=path, warnings=warnings)


#: The trace dialects a file may hold, tried in this order on every JSON value.
_READERS: tuple[tuple[str, Callable[[Any], bool], Callable[..., Any]], ...] = (
    ("otlp", otlp.looks_like_otlp, otlp.records_of),
    ("console", console.looks_like_console, console.records_of),
    ("jaeger", jaeger.looks_like_jaeger, jaeger.records_of),
)
_EXPECTED = ("OTLP JSON traces (an object with resourceSpans or scopeSpans), Jaeger JSON (data[].spans) or "
             "ConsoleSpanExporter spans (objects with name and context)")
_MAX_NAMED = 5
_BATCH = 4096
#: Lines that are not trace JSON read before the first trace, after which the file is taken for
#: something else (a CSV, a log) and refused at its first such line without reading it all.
_MAX_SKIPPED_BEFORE_TRACE = 10_000
#: Keys of the trace formats: broken JSON that holds one is a damaged trace, not a program's print.
_TRACE_KEYS = re.compile(r'"(?:resourceSpans|resource_spans|scopeSpans|scope_spans|traceId|trace_id|spanId|span_id|'
                         r'traceID|spanID)"')


def read_trace_file(path: Path, warnings: list[str],
                    progress: Progress | None = None) -> tuple[pd.DataFrame, dict]:
    """Read every span of a trace file, whatever its framing and dialect.

    Each JSON value is recognised on its own as OTLP JSON, Jaeger JSON or a ConsoleSpanExporter
    span (a file may mix them). A file that holds traces may hold other text too (a program's
    stdout, its own prints between the spans that ConsoleSpanExporter printed): lines that are not
    JSON and JSON values that are not traces are skipped, with one warning that counts them. Rows
    are gathered column by column, so a large file is held once, as the finished table. Spans
    recorded twice keep their ended record; spans that never ended are counted
    (`unfinished_spans`) and named in a warning.

    Raises:
        TraceFormatError: a file that holds no trace, at its first line that is not one; a trace's
            JSON that is broken; the message names the line.
    """
    # Reading makes millions of containers, none in a cycle, and every collection they set off walks
    # all that is still alive, so the cyclic collector is paused (reference counting still frees):
    # with it running, reading 300k spans took 1.13x the CPU time (`benchmarks/techniques.py`).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _read_trace_file(path, warnings, progress)
    finally:
        if collecting:
            gc.enable()


def _read_trace_file(path: Path, warnings: list[str], progress: Progress | None) -> tuple[pd.DataFrame, dict]:
    total = max(path.stat().st_size, 1)
    report = (lambda consumed: progress(consumed, total)) if progress else None
    names = [name for name in SPAN_COLUMNS if name != "bills_usage"]
    pieces: dict[str, list[Any]] = {name: [] for name in names}  # per column, a list or array per batch
    batch = SpanBatch.of()
    unfinished: dict[tuple[str, str], str] = {}
    formats: dict[str, int] = {}
    rejected: list[Rejected] = []
    skipped = _Skipped(path, formats)

    def flush() -> None:
        # Records become columns a batch at a time: memory stays one batch plus the columns.
        nonlocal batch
        finished = batch
        if None in batch.end_ns:
            records = [SpanRecord(*fields) for fields in zip(*batch, strict=False)]
            for record in records:
                if record.end_ns is None:
                    unfinished.setdefault((record.trace_id, record.span_id), record.name)
            finished = SpanBatch.of([record for record in records if record.end_ns is not None])
        for column, values in span_arrays(finished, rejected).items():
            pieces[column].append(values)
        batch = SpanBatch.of()  # the pieces hold the finished batch's lists

    torn: list[int] = []
    for line_no, value in iter_json_values(path, warnings.append, report, fast=otlp_typed.batch_of_line,
                                           torn=torn, skip=skipped.text):
        if type(value) is SpanBatch:
            formats["otlp"] = formats.get("otlp", 0) + 1
            batch.extend(value)
            if len(batch.trace_id) >= _BATCH:
                flush()
            continue
        for item in value if isinstance(value, list) and not otlp.looks_like_otlp(value) else (value,):
            if isinstance(item, dict) and not item:
                continue
            reader = next(((name, records_of) for name, looks_like, records_of in _READERS if looks_like(item)),
                          None)
            if reader is None:
                skipped.value(f"{path}:{line_no}: expected {_EXPECTED}, found {_describe(item)}")
                continue
            name, records_of = reader
            formats[name] = formats.get(name, 0) + 1
            try:
                batch.extend(records_of(item))
            except TraceFormatError as err:
                raise TraceFormatError(f"{path}:{line_no}: {err}") from None
            except RecursionError:  # values nested deeper than a reader walks (attributes in attributes)
                raise TraceFormatError(f"{path}:{line_no}: JSON nested too deeply to read") from None
            if len(batch.trace_id) >= _BATCH:
                flush()
    flush()
    skipped.finish(warnings)
    records = sum(map(len, pieces["span_id"]))
    spans = _inherit_sessions(_dedupe(_frame_from_columns(pieces)))  # empties `pieces` as it goes
    never_ended: list[str] = []
    if unfinished:
        finished = set(zip(spans["trace_id"], spans["span_id"], strict=False))
        never_ended = [name for key, name in unfinished.items() if key not in finished]
    if never_ended:
        named = ", ".join(repr(n) for n in never_ended[:_MAX_NAMED])
        more = f" and {len(never_ended) - _MAX_NAMED} more" if len(never_ended) > _MAX_NAMED else ""
        warnings.append(f"{path}: {len(never_ended)} span(s) never ended ({named}{more}); "
                        "left out of the ledger")
    if rejected:
        warnings.append(_rejected_warning(path, rejected))
    meta = {"format": "+".join(formats) or "empty", "records": records,
            "duplicate_records": records - len(spans), "unfinished_spans": len(never_ended)}
    _count_torn(meta, "spans", torn)
    return spans, meta


def _rejected_warning(path: Path, rejected: list[Rejected]) -> str:
    """One warning naming the spans whose counts or costs could not be real."""
    named = "; ".join(f"span {r.name!r} ({r.span_id}) {r.concept}={_short(r.value)}" for r in rejected[:_MAX_NAMED])
    more = f" and {len(rejected) - _MAX_NAMED} more" if len(rejected) > _MAX_NAMED else ""
    return (f"{path}: {len(rejected)} token count(s) or cost(s) that cannot be real (negative, not a finite "
            f"number, or over {MAX_TOKENS_PER_CALL:,} tokens a call) left out of the sums: {named}{more}")


def _short(value: Any) -> str:
    """A value for a message: a long integer in powers of ten, long text cut."""
    text = str(value)
    if type(value) is int and len(text.lstrip("-")) > 15:
        digits = text.lstrip("-")
        return f"{text[:len(text) - len(digits)]}{digits[0]}.{digits[1:4]}e+{len(digits) - 1}"
    return text if len(text) <= 24 else text[:23] + "…"


class _Skipped:
    """What a trace file holds besides traces: counted, the first named; refused where the file
    holds no trace at all."""

    def __init__(self, path: Path, formats: dict[str, int]) -> None:
        self.path = path
        self.formats = formats  # the readers' counts: empty while no trace was read
        self.lines = 0
        self.values = 0
        self.first: str | None = None

    def text(self, line: int, lines: int, reason: str, text: str) -> None:
        """Text that is not JSON (`framing.Skip`); a trace's own JSON, broken, is an error."""
        if _TRACE_KEYS.search(text):
            raise TraceFormatError(reason)
        self.lines += lines
        self._note(reason)

    def value(self, reason: str) -> None:
        """A JSON value that is not a trace."""
        self.values += 1
        self._note(reason)

    def _note(self, reason: str) -> None:
        if self.first is None:
            self.first = reason
        if not self.formats and self.lines + self.values >= _MAX_SKIPPED_BEFORE_TRACE:
            raise TraceFormatError(self.first)

    def finish(self, warnings: list[str]) -> None:
        """Add the one warning, or refuse a file without a trace."""
        if self.first is None:
            return
        if not self.formats:
            raise TraceFormatError(self.first)
        parts = [f"{n} {what}" for n, what in ((self.lines, "line(s)"), (self.values, "JSON value(s)")) if n]
        first = self.first.removeprefix(f"{self.path}:")
        warnings.append(f"{self.path}: skipped {' and '.join(parts)} that are not trace JSON (a program's own "
                        f"output between its spans?); the first at line {first}")


def _frame_from_columns(pieces: dict[str, list[Any]]) -> pd.DataFrame:
    """Build `Run.spans` from each column's pieces (a list or an array per batch) with the schema's
    dtypes, without a row-wise detour (and without pandas turning object columns into its own
    string type)."""
    n = sum(map(len, pieces["span_id"]))
    if not n:
        return empty_frame(SPAN_COLUMNS)
    data: dict[str, Any] = {}
    for name, dtype in SPAN_COLUMNS.items():
        parts = pieces.get(name)
        if parts is None:  # a column no reader fills (`bills_usage`: decided by attribution)
            data[name] = np.full(n, None, dtype=object) if dtype == "object" else np.zeros(n, dtype=dtype)
        elif dtype == "object":
            data[name] = pd.Series(_object_column(parts, n), dtype=object, copy=False)
        elif all(isinstance(part, np.ndarray) for part in parts):
            data[name] = np.concatenate(parts).astype(dtype, copy=False)
        else:
            data[name] = np.fromiter(chain.from_iterable(parts), dtype=dtype, count=n)
        pieces[name] = []  # free each column's pieces as soon as its column is built
    return pd.DataFrame(data, copy=False)


def _object_column(parts: list[list[Any]], n: int) -> np.ndarray:
    """The `n` values of `parts` in one object array, each part let go as soon as it is copied:
    its values were just touched by the copy, so releasing them now costs a pass over memory in
    cache, not another pass over a million scattered objects later."""
    column = np.empty(n, dtype=object)
    start = 0
    for k, part in enumerate(parts):
        end = start + len(part)
        column[start:end] = np.fromiter(part, dtype=object, count=len(part))
        parts[k] = []
        start = end
    return column


def _inherit_sessions(spans: pd.DataFrame) -> pd.DataFrame:
    """Give spans without a session of their own (their session fell back to their trace id) the
    session of their trace, when the trace's other spans name exactly one; else their nearest
    ancestor's. Copilot CLI, for one, writes the conversation id on agent and chat spans only,
    which would otherwise split one conversation's tools into a session per trace."""
    fallback = (spans["session_id"] == spans["trace_id"]).to_numpy()
    if not fallback.any() or fallback.all():
        return spans
    explicit = spans.loc[~fallback, ["trace_id", "session_id"]].drop_duplicates()
    named = explicit.groupby("trace_id", sort=False)["session_id"]
    single = named.first()[named.size() == 1]
    sessions = spans["session_id"].to_numpy(dtype=object).copy()
    traces = spans["trace_id"]
    inherit = fallback & traces.isin(single.index).to_numpy()
    sessions[inherit] = traces[inherit].map(single).to_numpy(dtype=object)
    several = fallback & traces.isin(named.size().index[named.size() > 1]).to_numpy()
    if several.any():
        from profiler.attribution.tree import parent_positions

        parent = parent_positions(spans)
        for pos in np.flatnonzero(several):
            up, steps = parent[pos], 0
            while up >= 0 and fallback[up] and steps < 10_000:
                up, steps = parent[up], steps + 1
            if up >= 0 and not fallback[up]:
                sessions[pos] = sessions[up]
    spans["session_id"] = pd.Series(sessions, index=spans.index, dtype=object)
    return spans


def _dedupe(spans: pd.DataFrame) -> pd.DataFrame:
    """Keep one record per (trace, span): the one that ended last."""
    # Span ids are unique in practice, and then so is every (trace, span): the span ids alone say
    # so, sorted as numbers where they are OTLP's hex (`span_ids`), else in one hash pass, which
    # still takes half the time of looking for repeated pairs.
    numbers = hex_span_ids(spans["span_id"].to_numpy(dtype=object))
    unique = all_distinct(numbers) if numbers is not None else spans["span_id"].is_unique
    if unique or not spans.duplicated(["trace_id", "span_id"]).any():
        return spans.reset_index(drop=True)
    return (spans.sort_values("end_ns", kind="stable")
            .drop_duplicates(["trace_id", "span_id"], keep="last")
            .sort_values("start_ns", kind="stable").reset_index(drop=True))


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        keys = ", ".join(repr(key)[:40] for key in list(value)[:4])  # repr: a key may hold a newline
        return f"an object with keys {keys}" if keys else "an empty object"
    return f"a JSON {type(value).__name__}"
