"""OTLP requests for the receiver's tests: protobuf spans and Claude Code-shaped log events, and a POST."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

BASE_NS = 1_760_000_000_000_000_000
S = 1_000_000_000
TRACE_ID = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def set_attributes(target: Any, attrs: dict[str, Any]) -> None:
    """Add `attrs` to a protobuf repeated KeyValue field, each value in its own OTLP type."""
    for key, value in attrs.items():
        item = target.add(key=key)
        if isinstance(value, bool):
            item.value.bool_value = value
        elif isinstance(value, int):
            item.value.int_value = value
        elif isinstance(value, float):
            item.value.double_value = value
        else:
            item.value.string_value = str(value)


def span_request(spans: list[dict[str, Any]], *, service: str = "test-agent") -> ExportTraceServiceRequest:
    """One resource and scope holding the given spans: dicts of `span_id` (int), `parent` (int or
    None), `name`, `start`/`end` (seconds after BASE_NS) and `attrs`; `trace_id` bytes optional."""
    request = ExportTraceServiceRequest()
    resource = request.resource_spans.add()
    set_attributes(resource.resource.attributes, {"service.name": service})
    scope = resource.scope_spans.add()
    scope.scope.name = "test-scope"
    for spec in spans:
        span = scope.spans.add(trace_id=spec.get("trace_id", TRACE_ID), span_id=spec["span_id"].to_bytes(8, "big"),
                               name=spec["name"], kind=spec.get("kind", 1),
                               start_time_unix_nano=BASE_NS + round(spec["start"] * S),
                               end_time_unix_nano=BASE_NS + round(spec["end"] * S))
        if spec.get("parent") is not None:
            span.parent_span_id = spec["parent"].to_bytes(8, "big")
        set_attributes(span.attributes, spec.get("attrs", {}))
    return request


def chat_attrs(model: str = "gpt-4o", inp: int = 1000, out: int = 100, **extra: Any) -> dict[str, Any]:
    """GenAI attributes of one model call."""
    return {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": model,
            "gen_ai.usage.input_tokens": inp, "gen_ai.usage.output_tokens": out, **extra}


def agent_turn(first_id: int = 1) -> ExportTraceServiceRequest:
    """An agent span over two model calls and a tool call."""
    agent, chat1, tool, chat2 = range(first_id, first_id + 4)
    return span_request([
        {"span_id": agent, "parent": None, "name": "invoke_agent planner", "start": 0, "end": 10,
         "attrs": {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}},
        {"span_id": chat1, "parent": agent, "name": "chat gpt-4o", "start": 1, "end": 3, "kind": 3,
         "attrs": chat_attrs(inp=1000, out=100)},
        {"span_id": tool, "parent": agent, "name": "execute_tool search", "start": 3, "end": 5,
         "attrs": {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"}},
        {"span_id": chat2, "parent": agent, "name": "chat gpt-4o", "start": 5, "end": 8, "kind": 3,
         "attrs": chat_attrs(inp=2500, out=50)},
    ])


def claude_code_record(scope: Any, *, model: str, input_tokens: Any, output_tokens: Any, cache_read: Any,
                       cache_creation: Any, cost_usd: Any, duration_ms: Any, end_s: float,
                       session: str = "cc-session-1", sequence: int = 1) -> None:
    """Add one `claude_code.api_request` record as Claude Code writes it (some numbers as strings)."""
    record = scope.log_records.add(time_unix_nano=BASE_NS + round(end_s * S))
    record.body.string_value = "claude_code.api_request"
    set_attributes(record.attributes, {
        "event.name": "api_request", "event.timestamp": "2025-10-09T08:53:20.000Z", "event.sequence": sequence,
        "session.id": session, "prompt.id": "prompt-1", "user.email": "someone@example.com", "model": model,
        "input_tokens": input_tokens, "output_tokens": output_tokens, "cache_read_tokens": cache_read,
        "cache_creation_tokens": cache_creation, "cost_usd": cost_usd, "duration_ms": duration_ms,
    })


def claude_code_logs() -> ExportLogsServiceRequest:
    """Two model requests, a tool result and a user prompt, from one Claude Code session."""
    request = ExportLogsServiceRequest()
    resource = request.resource_logs.add()
    set_attributes(resource.resource.attributes, {"service.name": "claude-code", "service.version": "2.0.14"})
    scope = resource.scope_logs.add()
    scope.scope.name = "com.anthropic.claude_code.events"
    claude_code_record(scope, model="claude-sonnet-4-5-20250929", input_tokens="1000", output_tokens="50",
                       cache_read="2000", cache_creation="300", cost_usd="0.005475", duration_ms="2500", end_s=3.0,
                       sequence=1)
    prompt = scope.log_records.add(time_unix_nano=BASE_NS + 4 * S)
    prompt.body.string_value = "claude_code.user_prompt"
    set_attributes(prompt.attributes, {"event.name": "user_prompt", "session.id": "cc-session-1",
                                       "prompt_length": 42})
    tool = scope.log_records.add(time_unix_nano=BASE_NS + 5 * S)
    tool.body.string_value = "claude_code.tool_result"
    set_attributes(tool.attributes, {"event.name": "tool_result", "session.id": "cc-session-1",
                                     "tool_name": "Bash", "success": "true", "duration_ms": "1200"})
    claude_code_record(scope, model="claude-haiku-4-5-20251001", input_tokens=40, output_tokens=7, cache_read=0,
                       cache_creation=0, cost_usd=0.000075, duration_ms=400, end_s=6.0, sequence=2)
    return request


def post(endpoint: str, path: str, body: bytes, content_type: str = "application/x-protobuf", *,
         headers: dict[str, str] | None = None, chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
    """POST `body` and return (status, headers, body); one connection per call."""
    url = urlsplit(endpoint)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    try:
        sent = {"Content-Type": content_type, **(headers or {})}
        if chunked:
            connection.request("POST", path, body=iter([body[: len(body) // 2], body[len(body) // 2:]]),
                               headers=sent, encode_chunked=True)
        else:
            connection.request("POST", path, body=body, headers=sent)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def read_lines(run_dir: Path) -> list[dict[str, Any]]:
    """The run's spans.jsonl, one document per line."""
    return [json.loads(line) for line in (run_dir / "spans.jsonl").read_text().splitlines()]


def all_spans(run_dir: Path) -> list[dict[str, Any]]:
    """Every span written to the run's spans.jsonl."""
    return [span for document in read_lines(run_dir) for resource in document["resourceSpans"]
            for scope in resource["scopeSpans"] for span in scope["spans"]]
