"""Coding agents that report each model request as an OTLP log event (Claude Code's
`claude_code.api_request`): such records become model-call spans of the run, and tool events tool spans."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from instrumentation import semconv
from instrumentation.otlp_json import encode_attributes

_CLIENT_KIND = 3  # OTLP SPAN_KIND_CLIENT: a call to a model API
_INTERNAL_KIND = 1
_STATUS_ERROR = 2
#: The vendor extension for a cost the producer reported (USD); the trace readers take it.
REPORTED_COST = "gen_ai.usage.cost"
#: Claude Code's own ordering and grouping of its events, kept as they came.
_KEPT = ("prompt.id", "event.sequence")


@dataclass(frozen=True)
class SpanDraft:
    """A span made from a log event, before ids and times are settled."""

    name: str
    kind: int
    attributes: dict[str, Any]
    duration_ms: float | None
    error: str | None = None


def _number(value: Any) -> float | None:
    """A count or amount from an attribute that may be an int, a double or a string (Claude Code
    sends some as strings); None when absent, unreadable or negative."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def claude_code_request(attrs: Mapping[str, Any]) -> SpanDraft:
    """A `claude_code.api_request` event as a `chat` span.

    Claude Code counts input tokens as Anthropic does, without the cache reads and writes; the span
    carries OTel's input count, which includes them, beside the two cache counts. Its `cost_usd` is
    kept as the trace-carried cost (`gen_ai.usage.cost`), which the ledger uses where genai-prices
    does not know the model.
    """
    model = attrs.get("model")
    model = model if isinstance(model, str) and model else None
    out: dict[str, Any] = {semconv.OPERATION: semconv.OP_CHAT, semconv.PROVIDER: "anthropic"}
    if model is not None:
        out[semconv.REQUEST_MODEL] = out[semconv.RESPONSE_MODEL] = model
    uncached = _count(attrs.get("input_tokens"))
    read = _count(attrs.get("cache_read_tokens"))
    written = _count(attrs.get("cache_creation_tokens"))
    if uncached is not None:
        out[semconv.INPUT_TOKENS] = uncached + (read or 0) + (written or 0)
    for key, value in ((semconv.OUTPUT_TOKENS, _count(attrs.get("output_tokens"))),
                       (semconv.CACHE_READ_TOKENS, read), (semconv.CACHE_CREATION_TOKENS, written)):
        if value is not None:
            out[key] = value
    cost = _number(attrs.get("cost_usd"))
    if cost is not None:
        out[REPORTED_COST] = cost
    return SpanDraft(f"chat {model}" if model else "chat", _CLIENT_KIND, out, _number(attrs.get("duration_ms")))


def claude_code_tool(attrs: Mapping[str, Any]) -> SpanDraft:
    """A `claude_code.tool_result` event as an `execute_tool` span (failed when `success` is false)."""
    tool = attrs.get("tool_name")
    tool = tool if isinstance(tool, str) and tool else "tool"
    out: dict[str, Any] = {semconv.OPERATION: semconv.OP_EXECUTE_TOOL, semconv.TOOL_NAME: tool}
    failed = str(attrs.get("success", "true")).lower() == "false"
    error = str(attrs.get("error") or "tool failed") if failed else None
    if error is not None:
        out[semconv.ERROR_TYPE] = error[:200]
    return SpanDraft(f"execute_tool {tool}", _INTERNAL_KIND, out, _number(attrs.get("duration_ms")), error)


#: Log events that become spans: full event name -> how. Claude Code names the event in the record's
#: body and, without its prefix, in `event.name`.
EVENTS: dict[str, Callable[[Mapping[str, Any]], SpanDraft]] = {
    "claude_code.api_request": claude_code_request,
    "claude_code.tool_result": claude_code_tool,
}
MODEL_CALL_EVENTS = frozenset({"claude_code.api_request"})


@dataclass
class LogHarvest:
    """What one logs request held: the spans made from it (one OTLP JSON document, or None), and counts."""

    document: dict[str, Any] | None
    records: int
    model_calls: int
    tool_calls: int


def event_name(record: Any, attrs: Mapping[str, Any], producer: str) -> str | None:
    """The full name of the event a log record carries, when it is one that becomes a span."""
    for candidate in (record.event_name, attrs.get("event.name"), _body_text(record)):
        if isinstance(candidate, str) and candidate in EVENTS:
            return candidate
    short = attrs.get("event.name")
    if isinstance(short, str) and "claude" in producer and f"claude_code.{short}" in EVENTS:
        return f"claude_code.{short}"
    return None


def _body_text(record: Any) -> str | None:
    return record.body.string_value if record.body.WhichOneof("value") == "string_value" else None


def attributes_of(items: Any) -> dict[str, Any]:
    """Protobuf `KeyValue`s as a dict of plain values (scalars only; others are left out)."""
    out: dict[str, Any] = {}
    for item in items:
        kind = item.value.WhichOneof("value")
        if kind in ("string_value", "int_value", "double_value", "bool_value"):
            out[item.key] = getattr(item.value, kind)
    return out


def spans_from_logs(request: ExportLogsServiceRequest, now_ns: int) -> LogHarvest:
    """Turn the coding-agent events of a logs request into spans; count every record."""
    harvest = LogHarvest(None, 0, 0, 0)
    resource_spans = []
    for resource_logs in request.resource_logs:
        resource = attributes_of(resource_logs.resource.attributes)
        scope_spans = []
        for scope_logs in resource_logs.scope_logs:
            producer = f"{resource.get('service.name', '')} {scope_logs.scope.name}".lower()
            spans = []
            for record in scope_logs.log_records:
                harvest.records += 1
                attrs = attributes_of(record.attributes)
                name = event_name(record, attrs, producer)
                if name is None:
                    continue
                spans.append(_span(record, attrs, name, EVENTS[name](attrs), now_ns))
                harvest.model_calls += name in MODEL_CALL_EVENTS
                harvest.tool_calls += name not in MODEL_CALL_EVENTS
            if spans:
                scope = {"name": scope_logs.scope.name or "sessionprof.otlp-logs"}
                if scope_logs.scope.version:
                    scope["version"] = scope_logs.scope.version
                scope_spans.append({"scope": scope, "spans": spans})
        if scope_spans:
            encoded = json_format.MessageToDict(resource_logs.resource).get("attributes", [])
            resource_spans.append({"resource": {"attributes": encoded}, "scopeSpans": scope_spans})
    if resource_spans:
        harvest.document = {"resourceSpans": resource_spans}
    return harvest


def _span(record: Any, attrs: Mapping[str, Any], event: str, draft: SpanDraft, now_ns: int) -> dict[str, Any]:
    """One OTLP JSON span ending when the event was recorded and lasting its `duration_ms`."""
    end_ns = record.time_unix_nano or record.observed_time_unix_nano or _iso_ns(attrs.get("event.timestamp")) \
        or now_ns
    start_ns = end_ns - round(draft.duration_ms * 1_000_000) if draft.duration_ms is not None else end_ns
    session = attrs.get("session.id")
    attributes = dict(draft.attributes)
    if isinstance(session, str) and session:
        attributes[semconv.CONVERSATION_ID] = session
    attributes[semconv.SOURCE_EVENT] = event
    attributes.update({key: attrs[key] for key in _KEPT if key in attrs})
    trace_id, parent_id = _trace_of(record, session)
    # Derived from the record, so a batch the exporter sends again is the same span, which loading
    # counts once, rather than a second call.
    digest = hashlib.sha256(f"{trace_id} {event} {end_ns} {sorted(attrs.items())}".encode()).digest()
    span: dict[str, Any] = {
        "traceId": trace_id, "spanId": (digest[:8] if any(digest[:8]) else b"\x01" * 8).hex(), "name": draft.name,
        "kind": draft.kind, "startTimeUnixNano": str(max(0, start_ns)), "endTimeUnixNano": str(end_ns),
        "attributes": encode_attributes(attributes), "status": {"code": 0},
    }
    if parent_id:
        span["parentSpanId"] = parent_id
    if draft.error is not None:
        span["status"] = {"code": _STATUS_ERROR, "message": draft.error[:200]}
    return span


def _trace_of(record: Any, session: Any) -> tuple[str, str | None]:
    """The record's own trace (and the span it was logged in) when it carries one, else a trace per
    agent session, so that one session's calls sit together."""
    if len(record.trace_id) == 16 and any(record.trace_id):
        parent = record.span_id.hex() if len(record.span_id) == 8 and any(record.span_id) else None
        return record.trace_id.hex(), parent
    return hashlib.sha256(f"coding-agent session {session or ''}".encode()).hexdigest()[:32], None


def _iso_ns(value: Any) -> int:
    """Nanoseconds since the epoch from an ISO-8601 time with an offset (or `Z`); 0 when unreadable."""
    if not isinstance(value, str) or not value:
        return 0
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return 0
    if moment.tzinfo is None:
        return 0  # a time without an offset could be any zone: the receive time is the safer guess
    return round(moment.timestamp() * 1_000_000) * 1000
