"""Jaeger JSON: the UI's "Download JSON" and the query API (`/api/traces`, `/api/traces/{id}`).

    {"data": [{"traceID": "5b8a...", "spans": [{"traceID": "5b8a...", "spanID": "051f...",
      "operationName": "chat gpt-4o", "references": [{"refType": "CHILD_OF", "traceID": "5b8a...",
      "spanID": "a2fb..."}], "startTime": 1760000000000000, "duration": 1200000,
      "tags": [{"key": "gen_ai.usage.input_tokens", "type": "int64", "value": 120}],
      "logs": [...], "processID": "p1", "warnings": null}],
      "processes": {"p1": {"serviceName": "agent", "tags": [...]}}}],
     "total": 0, "limit": 0, "offset": 0, "errors": null}

Also accepted: one trace object (`{"traceID", "spans", "processes"}`) per JSON value, and bare span
objects with an inline `process`. Times are microseconds. The parent is the `CHILD_OF` reference
(else a legacy `parentSpanID`); `FOLLOWS_FROM` references are links, not parents. Status comes from
the `otel.status_code` tag, else `error=true`.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from typing import Any

from profiler.errors import TraceFormatError
from profiler.traces.readers.otlp import MAX_NS, normalise_id
from profiler.traces.span_table import SpanRecord

_intern = sys.intern
_STATUS = {"ERROR": "error", "OK": "ok", "UNSET": "unset"}


def looks_like_jaeger(value: Any) -> bool:
    """Whether a decoded JSON value is Jaeger JSON: a query answer, a trace or a span."""
    if not isinstance(value, dict):
        return False
    if "data" in value and ("errors" in value or "total" in value or _is_trace_list(value["data"])):
        return True
    return "traceID" in value and ("spans" in value or "spanID" in value)


def _is_trace_list(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(t, dict) and "spans" in t for t in data[:1])


def records_of(value: Any) -> Iterator[SpanRecord]:
    """Yield every span in one Jaeger JSON value (Jaeger stores finished spans only).

    Raises:
        TraceFormatError: the answer carries Jaeger's own errors and no data.
    """
    if "traceID" in value and "spanID" in value and "spans" not in value:
        record = _record(value, {})
        if record is not None:
            yield record
        return
    if "spans" in value:
        traces = [value]
    else:
        traces = value.get("data") or []
        errors = value.get("errors")
        if errors and not traces:
            errors = errors if isinstance(errors, list) else [errors]
            messages = "; ".join(" ".join(str(e.get("msg", e) if isinstance(e, dict) else e).split())
                                 for e in errors)  # one line, whatever the server wrote
            raise TraceFormatError(f"the Jaeger answer has errors and no traces: {messages}")
    for trace in traces if isinstance(traces, list) else ():
        if not isinstance(trace, dict):
            continue
        processes = trace.get("processes") if isinstance(trace.get("processes"), dict) else {}
        resources = {key: _resource(process) for key, process in processes.items()}
        spans = trace.get("spans")
        for span in spans if isinstance(spans, list) else ():
            if isinstance(span, dict):
                record = _record(span, resources)
                if record is not None:
                    yield record


def _resource(process: Any) -> dict[str, Any]:
    if not isinstance(process, dict):
        return {}
    resource = decode_tags(process.get("tags"))
    if process.get("serviceName"):
        resource.setdefault("service.name", process["serviceName"])
    return resource


def decode_tags(tags: Any) -> dict[str, Any]:
    """Decode Jaeger tags (`[{key, type, value}]`, or a plain mapping) into a dict."""
    if isinstance(tags, dict):
        return {_intern(str(k)): v for k, v in tags.items()}
    attrs: dict[str, Any] = {}
    for tag in tags if isinstance(tags, list) else ():
        if not isinstance(tag, dict) or not isinstance(tag.get("key"), str):
            continue
        attrs[_intern(tag["key"])] = _tag_value(tag.get("type"), tag.get("value"))
    return attrs


def _tag_value(kind: Any, value: Any) -> Any:
    kind = str(kind or "string").lower()
    try:
        if kind == "int64" and not isinstance(value, bool):
            return int(value)
        if kind == "float64":
            return float(value)
        if kind == "bool" and isinstance(value, str):
            return value.strip().lower() == "true"
    except (TypeError, ValueError, OverflowError):
        return value
    return value


def _record(span: dict[str, Any], resources: dict[str, dict[str, Any]]) -> SpanRecord | None:
    trace_id = normalise_id(span.get("traceID"), 32)
    span_id = normalise_id(span.get("spanID"), 16)
    start_us = _number(span.get("startTime"))
    if trace_id is None or span_id is None or start_us is None:
        return None
    duration_us = _number(span.get("duration")) or 0
    attrs = decode_tags(span.get("tags"))
    process_id = span.get("processID")
    if isinstance(span.get("process"), dict):
        resource = _resource(span["process"])
    else:
        resource = resources.get(process_id, {}) if isinstance(process_id, str) else {}
    start_ns = int(start_us * 1000)
    if start_ns > MAX_NS:
        return None
    return SpanRecord(
        trace_id=_intern(trace_id),
        span_id=span_id,
        parent_span_id=_parent(span, trace_id),
        name=_intern(str(span.get("operationName") or "")),
        start_ns=start_ns,
        end_ns=min(start_ns + int(max(duration_us, 0) * 1000), MAX_NS),
        status=_status(attrs),
        attrs=attrs,
        resource=resource,
    )


def _parent(span: dict[str, Any], trace_id: str) -> str | None:
    references = span.get("references")
    for ref in references if isinstance(references, list) else ():
        if isinstance(ref, dict) and str(ref.get("refType", "")).upper() == "CHILD_OF":
            ref_trace = normalise_id(ref.get("traceID"), 32) if ref.get("traceID") else trace_id
            if ref_trace == trace_id:
                return normalise_id(ref.get("spanID"), 16)
    parent = span.get("parentSpanID")
    return normalise_id(parent, 16) if isinstance(parent, str) and parent.strip("0") else None


def _status(attrs: dict[str, Any]) -> str:
    code = attrs.get("otel.status_code")
    if isinstance(code, str) and code.upper() in _STATUS:
        return _STATUS[code.upper()]
    error = attrs.get("error")
    if error is True or (isinstance(error, str) and error.lower() == "true"):
        return "error"
    return "unset"


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        return None
    return number if number > 0 and math.isfinite(number) else None
