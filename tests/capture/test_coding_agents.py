"""Claude Code's OTLP log events become model-call and tool spans with exact tokens and dollars."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from genai_prices import Usage, calc_price
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

import profiler
from profiler.attribution.engine import attribute
from profiler.capture.coding_agents import spans_from_logs
from profiler.capture.receiver import OtlpReceiver
from tests.capture.otlp_helpers import BASE_NS, S, all_spans, claude_code_logs, claude_code_record, post


def _price(model: str, uncached: int, out: int, read: int, written: int) -> float:
    usage = Usage(input_tokens=uncached + read + written, output_tokens=out, cache_read_tokens=read or None,
                  cache_write_tokens=written or None)
    return float(calc_price(usage, model, provider_id="anthropic").total_price)


@pytest.mark.parametrize("fmt", ["protobuf", "json"])
def test_claude_code_requests_are_billed_per_request_with_cache_tokens(tmp_path: Path, fmt: str) -> None:
    request = claude_code_logs()
    with OtlpReceiver(tmp_path / "run") as receiver:
        if fmt == "protobuf":
            status, _, _ = post(receiver.endpoint, "/v1/logs", request.SerializeToString())
        else:
            body = json.dumps(json_format.MessageToDict(request)).encode()
            status, _, _ = post(receiver.endpoint, "/v1/logs", body, "application/json")
    assert status == 200
    assert (receiver.stats.log_records, receiver.stats.model_calls_from_logs, receiver.stats.tool_calls_from_logs) \
        == (4, 2, 1)
    ledger = attribute(profiler.load(tmp_path / "run"))
    totals = ledger.totals
    assert totals["model_calls"] == 2 and totals["tool_calls"] == 1 and totals["sessions"] == 1
    # Claude Code's input excludes the cache; the ledger's input (OTel's) includes it.
    assert totals["input_tokens"] == 1000 + 2000 + 300 + 40 and totals["output_tokens"] == 57
    assert totals["cache_read_tokens"] == 2000 and totals["cache_write_tokens"] == 300
    expected = _price("claude-sonnet-4-5-20250929", 1000, 50, 2000, 300) + _price("claude-haiku-4-5-20251001",
                                                                                   40, 7, 0, 0)
    assert totals["api_cost_usd"] == pytest.approx(expected, rel=1e-12)
    assert Decimal(str(_price("claude-sonnet-4-5-20250929", 1000, 50, 2000, 300))) == Decimal("0.005475")
    calls = ledger.steps[ledger.steps["kind"] == "chat"].set_index("model")
    sonnet = calls.loc["claude-sonnet-4-5-20250929"]
    assert sonnet["name"] == "chat claude-sonnet-4-5-20250929" and sonnet["session_id"] == "cc-session-1"
    assert sonnet["api_cost_source"] == "computed:genai-prices"
    # It ends when the event was recorded and lasts its duration_ms.
    assert (sonnet["start_ns"], sonnet["end_ns"]) == (BASE_NS + 500_000_000, BASE_NS + 3 * S)
    tool = ledger.steps[ledger.steps["kind"] == "execute_tool"].iloc[0]
    assert tool["name"] == "execute_tool Bash" and tool["wall_s"] == pytest.approx(1.2)


def test_a_model_genai_prices_does_not_know_is_billed_at_the_reported_cost(tmp_path: Path) -> None:
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    claude_code_record(scope, model="claude-future-9", input_tokens=10, output_tokens=5, cache_read=0,
                       cache_creation=0, cost_usd="0.125", duration_ms=100, end_s=1.0)
    with OtlpReceiver(tmp_path / "run") as receiver:
        assert post(receiver.endpoint, "/v1/logs", request.SerializeToString())[0] == 200
    ledger = attribute(profiler.load(tmp_path / "run"))
    call = ledger.steps[ledger.steps["kind"] == "chat"].iloc[0]
    assert call["api_cost_usd"] == 0.125 and call["api_cost_source"] == "provider"


def test_a_batch_sent_again_is_counted_once(tmp_path: Path) -> None:
    body = claude_code_logs().SerializeToString()
    with OtlpReceiver(tmp_path / "run") as receiver:
        assert post(receiver.endpoint, "/v1/logs", body)[0] == 200
        assert post(receiver.endpoint, "/v1/logs", body)[0] == 200  # an exporter's retry
    assert len(all_spans(tmp_path / "run")) == 6
    assert attribute(profiler.load(tmp_path / "run")).totals["model_calls"] == 2


def test_the_span_keeps_no_personal_attribute_and_says_where_it_came_from() -> None:
    harvest = spans_from_logs(claude_code_logs(), now_ns=0)
    spans = [s for r in harvest.document["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]]
    first = {a["key"]: a["value"] for a in spans[0]["attributes"]}
    assert first["sessionprof.source.event"] == {"stringValue": "claude_code.api_request"}
    assert first["gen_ai.conversation.id"] == {"stringValue": "cc-session-1"}
    assert first["gen_ai.usage.cost"] == {"doubleValue": 0.005475}
    assert "user.email" not in first and "cost_usd" not in first
    assert harvest.document["resourceSpans"][0]["resource"]["attributes"][0] == {
        "key": "service.name", "value": {"stringValue": "claude-code"}}


def test_a_record_without_a_time_or_counts_still_makes_an_honest_span() -> None:
    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.body.string_value = "claude_code.api_request"
    attrs = record.attributes
    attrs.add(key="model").value.string_value = "claude-sonnet-4-5"
    attrs.add(key="input_tokens").value.string_value = "not a number"
    attrs.add(key="event.timestamp").value.string_value = "2025-10-09T08:53:20.250Z"
    span = spans_from_logs(request, now_ns=7).document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    keys = {a["key"] for a in span["attributes"]}
    assert "gen_ai.usage.input_tokens" not in keys and "gen_ai.usage.output_tokens" not in keys  # absent, not 0
    # No record time: the event's own timestamp; no duration: a point in time.
    assert span["endTimeUnixNano"] == span["startTimeUnixNano"] == str(BASE_NS + 250_000_000)
    assert span["name"] == "chat claude-sonnet-4-5" and span["kind"] == 3
