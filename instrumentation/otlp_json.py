"""Encode finished OTel spans as OTLP JSON (`TracesData`), as the OTLP JSON mapping requires:
lowercase hex ids, 64-bit integers as strings, enums as integers, camelCase keys."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

from instrumentation.semconv import PROCESS_PID

# Python's SpanKind starts at INTERNAL=0; OTLP's enum starts at UNSPECIFIED=0, INTERNAL=1.
_KIND_OFFSET = 1


def encode_value(value: Any) -> dict[str, Any]:
    """Encode one attribute value as an OTLP `AnyValue`."""
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value if math.isfinite(value) else str(value)}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": encode_attributes(value)}}
    if isinstance(value, Sequence):
        return {"arrayValue": {"values": [encode_value(v) for v in value]}}
    return {"stringValue": str(value)}


def encode_attributes(attributes: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Encode an attribute mapping as a list of OTLP `KeyValue`s."""
    return [{"key": key, "value": encode_value(value)} for key, value in (attributes or {}).items()]


def encode_span(span: ReadableSpan) -> dict[str, Any]:
    """Encode one finished span."""
    context = span.context
    encoded: dict[str, Any] = {
        "traceId": format(context.trace_id, "032x"),
        "spanId": format(context.span_id, "016x"),
        "name": span.name,
        "kind": span.kind.value + _KIND_OFFSET,
        "startTimeUnixNano": str(span.start_time or 0),
        "endTimeUnixNano": str(span.end_time or 0),
        "attributes": encode_attributes(span.attributes),
        "flags": 0x100 | int(context.trace_flags),  # bit 8: the parent's remote flag is known
        "status": {"code": span.status.status_code.value},
    }
    if span.parent is not None:
        encoded["parentSpanId"] = format(span.parent.span_id, "016x")
    if span.status.description:
        encoded["status"]["message"] = span.status.description
    if span.events:
        encoded["events"] = [{"timeUnixNano": str(e.timestamp), "name": e.name,
                              "attributes": encode_attributes(e.attributes)} for e in span.events]
    if span.links:
        encoded["links"] = [{"traceId": format(link.context.trace_id, "032x"),
                             "spanId": format(link.context.span_id, "016x"),
                             "attributes": encode_attributes(link.attributes)} for link in span.links]
    for field, count in (("droppedAttributesCount", span.dropped_attributes),
                         ("droppedEventsCount", span.dropped_events), ("droppedLinksCount", span.dropped_links)):
        if count:
            encoded[field] = count
    return encoded


def encode_traces_data(spans: Sequence[ReadableSpan], *, process_pid: int | None = None) -> dict[str, Any]:
    """Group spans by resource and scope into one `TracesData` document.

    Args:
        spans: the finished spans.
        process_pid: written as `process.pid` on each resource that lacks one. The exporter gives its
            own: a span is exported by the process that ended it, the one it ran in, whereas a
            resource made before a fork names the parent.
    """
    by_resource: dict[int, tuple[Any, dict[tuple[str, str | None], list[dict[str, Any]]]]] = {}
    for span in spans:
        resource_key = id(span.resource)
        if resource_key not in by_resource:
            by_resource[resource_key] = (span.resource, {})
        scope = span.instrumentation_scope
        scope_key = (scope.name, scope.version) if scope is not None else ("", None)
        by_resource[resource_key][1].setdefault(scope_key, []).append(encode_span(span))
    resource_spans = []
    for resource, scopes in by_resource.values():
        scope_spans = []
        for (name, version), encoded in scopes.items():
            scope: dict[str, Any] = {"name": name}
            if version:
                scope["version"] = version
            scope_spans.append({"scope": scope, "spans": encoded})
        attributes = resource.attributes if resource else {}
        if process_pid is not None and PROCESS_PID not in attributes:
            attributes = {**attributes, PROCESS_PID: process_pid}
        resource_spans.append({"resource": {"attributes": encode_attributes(attributes)},
                               "scopeSpans": scope_spans})
    return {"resourceSpans": resource_spans}
