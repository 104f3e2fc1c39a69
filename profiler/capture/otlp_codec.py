"""OTLP/HTTP bodies: content types, bounded gzip, protobuf and JSON decoding, span checks, answers."""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Iterable
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

BodyFormat = Literal["protobuf", "json"]

#: The media types of OTLP/HTTP (the spec names the first and the last; `application/protobuf` is
#: what some SDKs send), by what they carry.
CONTENT_TYPES: dict[str, BodyFormat] = {"application/x-protobuf": "protobuf", "application/protobuf": "protobuf",
                                        "application/json": "json"}
RESPONSE_TYPES: dict[BodyFormat, str] = {"protobuf": "application/x-protobuf", "json": "application/json"}

#: gRPC status codes for the `google.rpc.Status` body of an error answer, by HTTP status.
_GRPC_CODES = {400: 3, 404: 5, 405: 12, 411: 3, 413: 8, 415: 3, 500: 13, 503: 14}
_TRACE_ID_BYTES = 16
_SPAN_ID_BYTES = 8


class PayloadError(ValueError):
    """A request the receiver refuses whole, with the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        """Keep the HTTP status (400, 413, 415, ...) beside the one-line message for the client."""
        super().__init__(message)
        self.status = status


def body_format(content_type: str | None) -> BodyFormat:
    """The format a Content-Type names (parameters such as `charset` are ignored).

    Raises:
        PayloadError: 415 for a type OTLP/HTTP does not use.
    """
    media = (content_type or "").split(";", 1)[0].strip().lower()
    found = CONTENT_TYPES.get(media)
    if found is None:
        raise PayloadError(415, f"unsupported content type {media or '(none)'!r}: OTLP/HTTP takes "
                                "application/x-protobuf or application/json")
    return found


def inflate(body: bytes, encoding: str | None, limit_bytes: int) -> bytes:
    """The body with its Content-Encoding undone, never more than `limit_bytes` long.

    A gzip bomb (a small body that inflates to gigabytes) is cut off at the limit: inflation goes a
    bounded piece at a time, so memory never holds more than the limit.

    Raises:
        PayloadError: 415 for an encoding other than gzip or identity, 400 for a broken gzip stream,
            413 when the inflated body passes the limit.
    """
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return body
    if coding not in ("gzip", "x-gzip"):
        raise PayloadError(415, f"unsupported content encoding {coding!r}: OTLP/HTTP takes gzip or none")
    data = bytearray()
    rest = body
    while True:  # a gzip body may hold several members, one after another
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data += inflater.decompress(rest, limit_bytes - len(data) + 1)
        except zlib.error as err:
            raise PayloadError(400, f"the gzip body cannot be inflated: {err}") from None
        if len(data) > limit_bytes:
            raise PayloadError(413, f"the body inflates to more than {limit_bytes} bytes")
        if not inflater.eof:
            raise PayloadError(400, "the gzip body is cut short")
        rest = inflater.unused_data
        if not rest:
            return bytes(data)


def parse_request(body: bytes, fmt: BodyFormat, message_type: type[Message]) -> Any:
    """Decode an Export*ServiceRequest from protobuf or OTLP JSON.

    OTLP JSON spells trace and span ids in hex where the protobuf JSON mapping expects base64; they
    are turned into bytes first. An id that is neither (base64 of the right length is also taken,
    as the trace readers do) becomes empty, so the span checks reject that span alone.

    Raises:
        PayloadError: 400 when the body cannot be decoded as that message.
    """
    if fmt == "protobuf":
        try:
            return message_type.FromString(body)
        except (DecodeError, RuntimeError, ValueError) as err:
            raise PayloadError(400, f"the body is not a protobuf {message_type.__name__}: {err}") from None
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise PayloadError(400, f"the body is not JSON: {err}") from None
    if not isinstance(document, dict):
        raise PayloadError(400, f"the body is not a JSON {message_type.__name__} object")
    _ids_to_base64(document)
    try:
        return json_format.ParseDict(document, message_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, TypeError, ValueError, RecursionError) as err:
        raise PayloadError(400, f"the body is not an OTLP JSON {message_type.__name__}: {err}") from None


def _ids_to_base64(document: dict[str, Any]) -> None:
    """Rewrite every OTLP JSON id in the document as the base64 that `ParseDict` reads, in place."""
    for resource in _objects(document.get("resourceSpans")):
        for scope in _objects(resource.get("scopeSpans")):
            for span in _objects(scope.get("spans")):
                _fix_ids(span, (("traceId", _TRACE_ID_BYTES), ("spanId", _SPAN_ID_BYTES),
                                ("parentSpanId", _SPAN_ID_BYTES)))
                for link in _objects(span.get("links")):
                    _fix_ids(link, (("traceId", _TRACE_ID_BYTES), ("spanId", _SPAN_ID_BYTES)))
    for resource in _objects(document.get("resourceLogs")):
        for scope in _objects(resource.get("scopeLogs")):
            for record in _objects(scope.get("logRecords")):
                _fix_ids(record, (("traceId", _TRACE_ID_BYTES), ("spanId", _SPAN_ID_BYTES)))


def _objects(value: Any) -> Iterable[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else ()


def _fix_ids(holder: dict[str, Any], fields: tuple[tuple[str, int], ...]) -> None:
    for name, size in fields:
        if name in holder:
            raw = _id_bytes(holder[name], size)
            holder[name] = base64.b64encode(raw).decode("ascii")


def _id_bytes(value: Any, size: int) -> bytes:
    """An id's bytes from hex (either case) or base64; empty when it is neither or the wrong size."""
    if not isinstance(value, str) or not value:
        return b""
    if len(value) == 2 * size:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return b""
    return raw if len(raw) == size else b""


def span_problem(span: Any) -> str | None:
    """Why a protobuf span cannot go into a run (bad ids, no times), or None when it can."""
    if len(span.trace_id) != _TRACE_ID_BYTES or not any(span.trace_id):
        return "its trace id is not 16 bytes, or is all zero"
    if len(span.span_id) != _SPAN_ID_BYTES or not any(span.span_id):
        return "its span id is not 8 bytes, or is all zero"
    if len(span.parent_span_id) not in (0, _SPAN_ID_BYTES):
        return "its parent span id is not 8 bytes"
    if not span.start_time_unix_nano or not span.end_time_unix_nano:
        return "it has no start or no end time"
    if span.end_time_unix_nano < span.start_time_unix_nano:
        return "it ends before it starts"
    return None


def drop_invalid_spans(request: ExportTraceServiceRequest) -> tuple[int, int, str]:
    """Remove the spans that cannot go into a run, and scopes and resources left empty.

    Returns:
        (spans kept, spans rejected, the first rejection as one line or "").
    """
    kept = rejected = 0
    first = ""
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            bad = []
            for index, span in enumerate(scope.spans):
                problem = span_problem(span)
                if problem is not None:
                    bad.append(index)
                    first = first or f"span {span.name!r}: {problem}"
            for index in reversed(bad):
                del scope.spans[index]
            kept += len(scope.spans)
            rejected += len(bad)
        _drop_empty(resource.scope_spans, "spans")
    _drop_empty(request.resource_spans, "scope_spans")
    return kept, rejected, first


def _drop_empty(items: Any, child: str) -> None:
    for index in reversed([i for i, item in enumerate(items) if not getattr(item, child)]):
        del items[index]


def traces_document(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The request as one OTLP JSON `TracesData` line: camelCase keys, 64-bit integers as strings,
    enums as integers, and trace and span ids in lowercase hex (not the base64 of protobuf JSON)."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource in document.get("resourceSpans", ()):
        for scope in resource.get("scopeSpans", ()):
            for span in scope.get("spans", ()):
                _hex_ids(span)
                for link in span.get("links", ()):
                    _hex_ids(link)
    return document


def _hex_ids(holder: dict[str, Any]) -> None:
    for name in ("traceId", "spanId", "parentSpanId"):
        if name in holder:
            holder[name] = base64.b64decode(holder[name]).hex()


def count_metric_points(request: ExportMetricsServiceRequest) -> int:
    """The data points in a metrics request (each metric's one kind of data)."""
    points = 0
    for resource in request.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                kind = metric.WhichOneof("data")
                if kind is not None:
                    points += len(getattr(metric, kind).data_points)
    return points


def count_log_records(request: ExportLogsServiceRequest) -> int:
    """The log records in a logs request."""
    return sum(len(scope.log_records) for resource in request.resource_logs for scope in resource.scope_logs)


def encode_message(message: Message, fmt: BodyFormat) -> bytes:
    """An answer message in the format the request came in."""
    if fmt == "protobuf":
        return message.SerializeToString()
    return json.dumps(json_format.MessageToDict(message), separators=(",", ":")).encode("utf-8")


def encode_status(http_status: int, message: str, fmt: BodyFormat) -> bytes:
    """The body of an error answer: a `google.rpc.Status` with a gRPC code and the message.

    Encoded here (field 1: code, field 2: message) rather than through googleapis-common-protos, which
    only this one message would need.
    """
    code = _GRPC_CODES.get(http_status, 2)
    if fmt == "json":
        return json.dumps({"code": code, "message": message}, separators=(",", ":")).encode("utf-8")
    text = message.encode("utf-8")
    return bytes([0x08, code, 0x12]) + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)
