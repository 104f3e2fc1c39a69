"""The OpenTelemetry Python SDK's `ConsoleSpanExporter` output: one `ReadableSpan.to_json()` object
per span, usually pretty-printed and separated by blank lines.

    {"name": "chat gpt-4o", "context": {"trace_id": "0x5b8a...", "span_id": "0x051f...",
     "trace_state": "[]"}, "kind": "SpanKind.CLIENT", "parent_id": "0x...", "start_time":
     "2026-03-01T20:47:18.711501Z", "end_time": "2026-03-01T20:47:18.903499Z",
     "status": {"status_code": "UNSET"}, "attributes": {...}, "events": [...], "links": [...],
     "resource": {"attributes": {...}, "schema_url": ""}}

Not OTLP: ids carry `0x`, times are ISO-8601 strings (UTC, microseconds), attribute values are
plain JSON. Some processors print a span when it starts (`end_time: null`) and again when it ends;
the loader keeps the ended record and reports spans that never ended.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import date
from typing import Any

from profiler.traces.readers.otlp import MAX_NS, normalise_id, status_of
from profiler.traces.span_table import SpanRecord

_intern = sys.intern
_ISO = re.compile(
    r"\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:[.,](\d{1,9}))?\d*"  # date, time, fraction
    r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?\s*$"  # offset
)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY_NS = 86_400 * 10**9


def looks_like_console(value: Any) -> bool:
    """Whether a decoded JSON value is one `ReadableSpan.to_json()` object."""
    if not isinstance(value, dict):
        return False
    context = value.get("context")
    return isinstance(context, dict) and "span_id" in context and "trace_id" in context and "name" in value


def iso_to_ns(text: Any) -> int | None:
    """Parse an ISO-8601 time to unix nanoseconds, keeping up to 9 fractional digits.

    A time without an offset is taken as UTC (the SDK always writes UTC). Numbers are taken as
    unix nanoseconds already. Returns None for null or unreadable values.
    """
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, (int, float)):
        return int(text) if 0 < text <= MAX_NS else None
    if not isinstance(text, str):
        return None
    match = _ISO.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        days = date(int(year), int(month), int(day)).toordinal() - _EPOCH_ORDINAL
    except ValueError:
        return None
    if int(hour) > 23 or int(minute) > 59 or int(second) > 60:
        return None
    nanos = days * _DAY_NS + (int(hour) * 3600 + int(minute) * 60 + int(second)) * 10**9
    if fraction:
        nanos += int(fraction.ljust(9, "0"))
    if offset and offset not in ("Z", "z"):
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        minutes = int(digits[:2]) * 60 + (int(digits[2:4]) if len(digits) >= 4 else 0)
        nanos -= sign * minutes * 60 * 10**9
    return nanos if 0 < nanos <= MAX_NS else None


def records_of(value: Any) -> Iterator[SpanRecord]:
    """Yield the span of one console record (with `end_ns` None if it had not ended when printed)."""
    record = _record(value)
    if record is not None:
        yield record


def _record(span: dict[str, Any]) -> SpanRecord | None:
    context = span.get("context") or {}
    trace_id = normalise_id(context.get("trace_id"), 32)
    span_id = normalise_id(context.get("span_id"), 16)
    start = iso_to_ns(span.get("start_time"))
    if trace_id is None or span_id is None or start is None:
        return None
    end = iso_to_ns(span.get("end_time"))
    attrs = span.get("attributes")
    attrs = {_intern(k): v for k, v in attrs.items()} if isinstance(attrs, dict) else {}
    resource = span["resource"].get("attributes") if isinstance(span.get("resource"), dict) else None
    parent = span.get("parent_id")
    return SpanRecord(
        trace_id=_intern(trace_id),
        span_id=span_id,
        parent_span_id=normalise_id(parent, 16) if parent else None,
        name=_intern(str(span.get("name") or "")),
        start_ns=start,
        end_ns=end,
        status=status_of(span.get("status")),
        attrs=attrs,
        resource=resource if isinstance(resource, dict) else {},
    )
