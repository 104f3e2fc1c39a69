"""OTLP JSON traces: `TracesData` / `ExportTraceServiceRequest` documents, bare `ResourceSpans`,
string or integer enums, ids in hex of either case (or base64, from non-compliant producers)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from profiler.genai import span_row

_STATUS = {0: "unset", 1: "ok", 2: "error"}
_STATUS_NAMES = {"STATUS_CODE_UNSET": "unset", "STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error",
                 "UNSET": "unset", "OK": "ok", "ERROR": "error"}


def decode_any_value(value: Any) -> Any:
    """Decode an OTLP JSON `AnyValue` into a Python value."""
    if not isinstance(value, dict):
        return value
    for key, inner in value.items():
        if key == "stringValue" or key == "boolValue":
            return inner
        if key == "intValue":
            try:
                return int(inner)
            except (TypeError, ValueError):
                return None
        if key == "doubleValue":
            try:
                return float(inner)
            except (TypeError, ValueError):
                return None
        if key == "arrayValue":
            return [decode_any_value(v) for v in (inner or {}).get("values", [])]
        if key == "kvlistValue":
            return decode_attributes((inner or {}).get("values", []))
        if key == "bytesValue":
            return inner
    return None


def decode_attributes(items: Iterable[Any] | None) -> dict[str, Any]:
    """Decode a list of OTLP `KeyValue`s into a dict."""
    attrs: dict[str, Any] = {}
    for item in items or ():
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            attrs[item["key"]] = decode_any_value(item.get("value"))
    return attrs


def normalise_id(value: Any, hex_len: int) -> str | None:
    """Return an id as lowercase hex; accept upper case, `0x` prefixes and base64."""
    if not isinstance(value, str) or not value:
        return None
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) == hex_len:
        try:
            int(text, 16)
            return text.lower()
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return text.lower()
    return raw.hex() if len(raw) * 2 == hex_len else text.lower()


def status_of(status: Any) -> str:
    """Map an OTLP status (integer or string enum) to ok / error / unset."""
    code = status.get("code", 0) if isinstance(status, dict) else status
    if isinstance(code, int):
        return _STATUS.get(code, "unset")
    if isinstance(code, str):
        if code.isdigit():
            return _STATUS.get(int(code), "unset")
        return _STATUS_NAMES.get(code.upper().replace("STATUSCODE.", "STATUS_CODE_"), "unset")
    return "unset"


def resource_spans_of(document: Any) -> Iterator[dict[str, Any]]:
    """Yield the `ResourceSpans` of a document, whichever wrapper it has."""
    if isinstance(document, list):
        for item in document:
            yield from resource_spans_of(item)
        return
    if not isinstance(document, dict):
        return
    if "resourceSpans" in document or "resource_spans" in document:
        for item in document.get("resourceSpans") or document.get("resource_spans") or []:
            if isinstance(item, dict):
                yield item
    elif "scopeSpans" in document or "scope_spans" in document:
        yield document


def looks_like_otlp(document: Any) -> bool:
    """Whether a decoded JSON value is OTLP traces (possibly empty)."""
    if isinstance(document, list):
        return any(looks_like_otlp(item) for item in document[:1])
    return isinstance(document, dict) and any(
        key in document for key in ("resourceSpans", "resource_spans", "scopeSpans", "scope_spans")
    )


def rows_from_document(document: Any, on_unfinished: Callable[[dict[str, Any]], None]) -> Iterator[dict[str, Any]]:
    """Yield a `Run.spans` row for every span in one OTLP JSON document."""
    for resource_spans in resource_spans_of(document):
        resource = decode_attributes((resource_spans.get("resource") or {}).get("attributes"))
        for scope_spans in resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or []:
            for span in (scope_spans or {}).get("spans") or []:
                row = _row(span, resource)
                if row is None:
                    continue
                if row["end_ns"] is None:
                    on_unfinished(row)
                else:
                    yield row


def _row(span: Any, resource: dict[str, Any]) -> dict[str, Any] | None:
    if not isinstance(span, dict):
        return None
    trace_id = normalise_id(span.get("traceId") or span.get("trace_id"), 32)
    span_id = normalise_id(span.get("spanId") or span.get("span_id"), 16)
    if trace_id is None or span_id is None:
        return None
    start = _nanos(span.get("startTimeUnixNano", span.get("start_time_unix_nano")))
    end = _nanos(span.get("endTimeUnixNano", span.get("end_time_unix_nano")))
    if start is None:
        return None
    attrs = decode_attributes(span.get("attributes"))
    row = span_row(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=normalise_id(span.get("parentSpanId") or span.get("parent_span_id"), 16),
        name=str(span.get("name") or ""),
        start_ns=start,
        end_ns=end if end else start,
        status=status_of(span.get("status")),
        attrs=attrs,
        resource=resource,
    )
    if not end:
        row["end_ns"] = None
    return row


def _nanos(value: Any) -> int | None:
    try:
        nanos = int(value)
    except (TypeError, ValueError):
        return None
    return nanos if nanos > 0 else None
