"""Every OTLP JSON framing and dialect named in issue #4 gives the same spans."""

from __future__ import annotations

import copy
import gzip
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import profiler

TRACE = "5b8efff798038103d269b633813fc60c"
BASE_NS = 1_760_000_000_000_000_000
S = 1_000_000_000


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": value}}


def _span(span_id: str, parent: str | None, name: str, start: int, end: int, attrs: dict[str, Any],
          status: int = 0) -> dict[str, Any]:
    span = {"traceId": TRACE, "spanId": span_id, "name": name, "kind": 1,
            "startTimeUnixNano": str(BASE_NS + start * S), "endTimeUnixNano": str(BASE_NS + end * S),
            "attributes": [_kv(k, v) for k, v in attrs.items()], "status": {"code": status}}
    if parent:
        span["parentSpanId"] = parent
    return span


SPANS = [
    _span("eee19b7ec3c1b174", None, "invoke_agent planner", 0, 10, {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "conv-1",
        "gen_ai.usage.input_tokens": 1500, "gen_ai.usage.output_tokens": 150}),
    _span("eee19b7ec3c1b175", "eee19b7ec3c1b174", "chat gpt-4o", 1, 3, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": "conv-1", "gen_ai.usage.input_tokens": 1000, "gen_ai.usage.output_tokens": 100}),
    _span("eee19b7ec3c1b176", "eee19b7ec3c1b174", "execute_tool search", 3, 5, {
        "gen_ai.operation.name": "execute_tool", "gen_ai.conversation.id": "conv-1"}, status=2),
    _span("eee19b7ec3c1b177", "eee19b7ec3c1b174", "chat gpt-4o", 5, 9, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": "conv-1", "gen_ai.usage.input_tokens": 500, "gen_ai.usage.output_tokens": 50}),
]
RESOURCE = {"attributes": [_kv("service.name", "agent")]}


def _resource_spans(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resource": RESOURCE, "scopeSpans": [{"scope": {"name": "tests"}, "spans": spans}]}


def _request(spans: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceSpans": [_resource_spans(spans)]}


def _string_enums(span: dict[str, Any]) -> dict[str, Any]:
    span = copy.deepcopy(span)
    span["kind"] = "SPAN_KIND_CLIENT"
    span["status"] = {"code": {0: "STATUS_CODE_UNSET", 2: "STATUS_CODE_ERROR"}[span["status"]["code"]]}
    return span


def _upper_ids(span: dict[str, Any]) -> dict[str, Any]:
    span = copy.deepcopy(span)
    for key in ("traceId", "spanId", "parentSpanId"):
        if key in span:
            span[key] = span[key].upper()
    return span


def _int_values(span: dict[str, Any]) -> dict[str, Any]:
    span = copy.deepcopy(span)
    for item in span["attributes"]:
        if "intValue" in item["value"]:
            item["value"]["intValue"] = int(item["value"]["intValue"])
    span["startTimeUnixNano"] = int(span["startTimeUnixNano"])
    span["endTimeUnixNano"] = int(span["endTimeUnixNano"])
    return span


def _snake_case(span: dict[str, Any]) -> dict[str, Any]:
    renamed = {"traceId": "trace_id", "spanId": "span_id", "parentSpanId": "parent_span_id",
               "startTimeUnixNano": "start_time_unix_nano", "endTimeUnixNano": "end_time_unix_nano"}
    return {renamed.get(k, k): v for k, v in span.items()}


VARIANTS: dict[str, tuple[str, Callable[[], str | bytes]]] = {
    "single ExportTraceServiceRequest document": ("trace.json", lambda: json.dumps(_request(SPANS), indent=2)),
    "JSON Lines, one request per span": ("spans.jsonl", lambda: "".join(json.dumps(_request([s])) + "\n"
                                                                         for s in SPANS)),
    "pretty-printed requests concatenated": ("spans.json", lambda: "".join(json.dumps(_request([s]), indent=2)
                                                                          for s in SPANS)),
    "bare ResourceSpans, pretty and concatenated": ("rs.jsonl", lambda: "\n".join(
        json.dumps(_resource_spans([s]), indent=2) for s in SPANS)),
    "bare ResourceSpans, one a line": ("rs1.jsonl", lambda: "\n".join(json.dumps(_resource_spans([s]))
                                                                      for s in SPANS) + "\n"),
    "string enums": ("enums.json", lambda: json.dumps(_request([_string_enums(s) for s in SPANS]))),
    "upper-case ids": ("upper.json", lambda: json.dumps(_request([_upper_ids(s) for s in SPANS]))),
    "integers as numbers": ("ints.json", lambda: json.dumps(_request([_int_values(s) for s in SPANS]))),
    "snake_case keys": ("snake.json", lambda: json.dumps({"resource_spans": [{"resource": RESOURCE, "scope_spans": [
        {"spans": [_snake_case(s) for s in SPANS]}]}]})),
    "a JSON array of requests": ("array.json", lambda: json.dumps([_request([s]) for s in SPANS])),
    "Jaeger api/v3 result wrapper": ("v3.json", lambda: json.dumps({"result": _request(SPANS)})),
    "empty objects between lines": ("gaps.jsonl", lambda: "{}\n\n" + "\n{}\n".join(json.dumps(_request([s]))
                                                                                  for s in SPANS) + "\n"),
    "CRLF line ends": ("crlf.jsonl", lambda: "".join(json.dumps(_request([s])) + "\r\n" for s in SPANS)),
    "gzip, JSON Lines": ("spans.jsonl.gz", lambda: gzip.compress(
        "".join(json.dumps(_request([s])) + "\n" for s in SPANS).encode())),
    "gzip without the .gz name": ("spans.otlp", lambda: gzip.compress(json.dumps(_request(SPANS), indent=1).encode())),
}


def _write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_variant_reads_the_same_spans(tmp_path: Path, variant: str) -> None:
    name, make = VARIANTS[variant]
    run = profiler.load(_write(tmp_path, name, make()))
    assert run.warnings == []
    assert run.meta["format"] == "otlp"
    spans = run.spans.sort_values("span_id")
    assert spans["trace_id"].tolist() == [TRACE] * 4
    assert spans["span_id"].tolist() == ["eee19b7ec3c1b174", "eee19b7ec3c1b175", "eee19b7ec3c1b176",
                                         "eee19b7ec3c1b177"]
    assert spans["parent_span_id"].tolist() == [None] + ["eee19b7ec3c1b174"] * 3
    assert spans["kind"].tolist() == ["invoke_agent", "chat", "execute_tool", "chat"]
    assert spans["status"].tolist() == ["unset", "unset", "error", "unset"]
    assert spans["start_ns"].tolist() == [BASE_NS, BASE_NS + S, BASE_NS + 3 * S, BASE_NS + 5 * S]
    assert spans["session_id"].tolist() == ["conv-1"] * 4
    ledger = profiler.attribute(run)
    assert ledger.totals["input_tokens"] == 1500 and ledger.totals["output_tokens"] == 150
    assert ledger.totals["model_calls"] == 2
