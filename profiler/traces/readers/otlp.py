"""OTLP JSON traces: `TracesData` / `ExportTraceServiceRequest` documents, bare `ResourceSpans`,
string or integer enums, ids in hex of either case (or base64, from non-compliant producers)."""

from __future__ import annotations

import base64
import binascii
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from profiler.traces.span_table import SpanRecord

_STATUS = {0: "unset", 1: "ok", 2: "error"}
_STATUS_NAMES = {"STATUS_CODE_UNSET": "unset", "STATUS_CODE_OK": "ok", "STATUS_CODE_ERROR": "error",
                 "UNSET": "unset", "OK": "ok", "ERROR": "error"}


_intern = sys.intern
#: The latest time a span table can hold (int64 nanoseconds, in 2262); later times are unreadable.
MAX_NS = 2**63 - 1
_HEX_DIGITS = "0123456789abcdef"


def decode_any_value(value: Any) -> Any:
    """Decode an OTLP JSON `AnyValue` into a Python value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int_value(value["intValue"])
    if "boolValue" in value:
        return value["boolValue"]
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return None
    if "arrayValue" in value:
        return [decode_any_value(v) for v in (value["arrayValue"] or {}).get("values") or ()]
    if "kvlistValue" in value:
        return decode_attributes((value["kvlistValue"] or {}).get("values"))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def int_value(inner: Any) -> Any:
    """An OTLP `intValue` as an int. One that is no integer is kept as it was written where it is a
    number or text (an infinite float, `"abc"`), for the reader of its meaning to judge and name;
    None where it is neither."""
    if type(inner) is int:
        return inner
    try:
        return int(inner)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite float
        return inner if isinstance(inner, (str, float)) else None


def decode_attributes(items: Iterable[Any] | None) -> dict[str, Any]:
    """Decode a list of OTLP `KeyValue`s into a dict (keys interned: a million spans share them)."""
    if not items:
        return {}
    try:  # the common, well-formed case in one comprehension
        return {_intern(item["key"]): value["stringValue"] if "stringValue" in (value := item["value"])
                else int(value["intValue"]) if "intValue" in value else decode_any_value(value) for item in items}
    except (TypeError, KeyError, AttributeError, ValueError, OverflowError):
        pass
    attrs: dict[str, Any] = {}
    if not isinstance(items, list):
        return attrs  # a malformed attributes field: no attributes rather than a crash
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("key"), str):
            attrs[_intern(item["key"])] = decode_any_value(item.get("value"))
    return attrs


def normalise_id(value: Any, hex_len: int) -> str | None:
    """Return an id as lowercase hex; accept upper case, `0x` prefixes and base64."""
    if type(value) is not str or not value:
        return None
    if len(value) == hex_len and not value.strip(_HEX_DIGITS):
        return value  # the common case: already lowercase hex of the right length
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) == hex_len:
        try:
            int(text, 16)
            return text.lower()
        except ValueError:
            pass
    elif 0 < len(text) < hex_len and not text.lower().strip(_HEX_DIGITS):
        return text.lower().zfill(hex_len)  # leading zeros dropped (Jaeger's 64-bit trace ids, `0x1f`)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return text.lower()
    return raw.hex() if len(raw) * 2 == hex_len else text.lower()


def status_of(status: Any) -> str:
    """Map an OTLP status (integer or string enum) to ok / error / unset."""
    # `status_code`: ConsoleSpanExporter's name for it
    code = status.get("code", status.get("status_code", 0)) if isinstance(status, dict) else status
    if isinstance(code, int):
        return _STATUS.get(code, "unset")
    if isinstance(code, str):
        if code.isascii() and code.isdigit():
            return _STATUS.get(int(code), "unset")
        return _STATUS_NAMES.get(code.upper().replace("STATUSCODE.", "STATUS_CODE_"), "unset")
    return "unset"


def status_of_code(code: Any) -> str:
    """`status_of` for the bare `code` of an OTLP status, with the common integer case first."""
    return _STATUS[code] if type(code) is int and code in _STATUS else status_of({"code": code})


def resource_spans_of(document: Any) -> Iterator[dict[str, Any]]:
    """Yield the `ResourceSpans` of a document, whichever wrapper it has (lists of documents, at
    any depth, without recursion)."""
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif not isinstance(item, dict):
            continue
        elif "resourceSpans" in item or "resource_spans" in item:
            for resource_spans in item.get("resourceSpans") or item.get("resource_spans") or []:
                if isinstance(resource_spans, dict):
                    yield resource_spans
        elif "scopeSpans" in item or "scope_spans" in item:
            yield item
        elif isinstance(item.get("result"), dict):  # Jaeger's api/v3 answer wraps OTLP in `result`
            stack.append(item["result"])


def looks_like_otlp(document: Any) -> bool:
    """Whether a decoded JSON value is OTLP traces (possibly empty): a list, by its first item."""
    while isinstance(document, list):
        document = document[0] if document else None
    if not isinstance(document, dict):
        return False
    if any(key in document for key in _OTLP_KEYS):
        return True
    result = document.get("result")
    return isinstance(result, dict) and any(key in result for key in _OTLP_KEYS)


_OTLP_KEYS = ("resourceSpans", "resource_spans", "scopeSpans", "scope_spans")


def records_of(document: Any) -> Iterator[SpanRecord]:
    """Yield every span of one OTLP JSON document (those that have not ended with `end_ns` None)."""
    for resource_spans in resource_spans_of(document):
        resource_field = resource_spans.get("resource")
        resource = decode_attributes(resource_field.get("attributes") if isinstance(resource_field, dict) else None)
        scopes = resource_spans.get("scopeSpans") or resource_spans.get("scope_spans") or []
        for scope_spans in scopes if isinstance(scopes, list) else ():
            if not isinstance(scope_spans, dict):
                continue
            spans = scope_spans.get("spans") or ()
            for span in spans if isinstance(spans, list) else ():
                record = _record(span, resource)
                if record is not None:
                    yield record


def _record(span: Any, resource: dict[str, Any]) -> SpanRecord | None:
    if not isinstance(span, dict):
        return None
    trace_id = span.get("traceId") or span.get("trace_id")
    if type(trace_id) is not str or len(trace_id) != 32 or trace_id.strip(_HEX_DIGITS):
        trace_id = normalise_id(trace_id, 32)
    span_id = span.get("spanId") or span.get("span_id")
    if type(span_id) is not str or len(span_id) != 16 or span_id.strip(_HEX_DIGITS):
        span_id = normalise_id(span_id, 16)
    if trace_id is None or span_id is None:
        return None
    start = span.get("startTimeUnixNano")
    start = _nanos(start if start is not None else span.get("start_time_unix_nano"))
    if start is None:
        return None
    end = span.get("endTimeUnixNano")
    end = _nanos(end if end is not None else span.get("end_time_unix_nano"))
    parent = span.get("parentSpanId") or span.get("parent_span_id")
    if parent and (type(parent) is not str or len(parent) != 16 or parent.strip(_HEX_DIGITS)):
        parent = normalise_id(parent, 16)
    status = span.get("status")
    code = status.get("code", 0) if type(status) is dict else status
    return SpanRecord(
        _intern(trace_id), span_id, parent or None, _intern(str(span.get("name") or "")), start, end or None,
        status_of_code(code) if code is not None else "unset",
        decode_attributes(span.get("attributes")), resource)


def _nanos(value: Any) -> int | None:
    try:
        nanos = int(value)  # a string (the JSON mapping of int64) or a number
    except (TypeError, ValueError, OverflowError):
        return None
    return nanos if 0 < nanos <= MAX_NS else None
