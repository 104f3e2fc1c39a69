"""Jaeger JSON: the UI's "Download JSON" / query API answer, trace objects and bare spans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import profiler
from profiler.errors import TraceFormatError
from profiler.traces.readers.jaeger import decode_tags, looks_like_jaeger
from tests.paths import DATA

DOWNLOAD = DATA / "jaeger_ui_download.json"
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def run() -> profiler.Run:
    return profiler.load(DOWNLOAD)


def test_every_span_of_every_trace_is_read(run: profiler.Run) -> None:
    assert run.meta["format"] == "jaeger"
    assert len(run.spans) == 6
    # A 64-bit trace id (16 hex digits) is widened to the 128-bit form OTLP uses.
    assert set(run.spans["trace_id"]) == {TRACE, "00000000000000006e0c63257de34c92"}


def test_times_are_microseconds_and_parents_come_from_child_of(run: profiler.Run) -> None:
    spans = run.spans.set_index("span_id")
    chat = spans.loc["a1b2c3d4e5f60718"]
    assert chat["start_ns"] == 1_760_000_000_100_000_000
    assert chat["end_ns"] == 1_760_000_000_100_000_000 + 1_500_000_000
    assert chat["parent_span_id"] == "00f067aa0ba902b7"
    # FOLLOWS_FROM is a link, not a parent: the CHILD_OF reference wins.
    assert spans.loc["c3d4e5f60718293a", "parent_span_id"] == "b2c3d4e5f6071829"
    assert spans.loc["00f067aa0ba902b7", "parent_span_id"] is None


def test_tags_are_typed_and_genai_meaning_is_read(run: profiler.Run) -> None:
    spans = run.spans.set_index("span_id")
    chat = spans.loc["a1b2c3d4e5f60718"]
    assert chat["kind"] == "chat" and chat["model"] == "gpt-4o-2024-08-06" and chat["provider"] == "openai"
    assert chat["attributes"]["gen_ai.request.temperature"] == 0.2
    second = spans.loc["d4e5f60718293a4b"]
    assert second["input_tokens"] == 500 and second["cache_read_tokens"] == 200  # int64 sent as strings
    assert chat["session_id"] == "conv-jaeger-1"
    assert spans.loc["c3d4e5f60718293a", "session_id"] == "conv-jaeger-1"  # inherits its trace's session


def test_status_comes_from_otel_status_code_or_the_error_tag(run: profiler.Run) -> None:
    spans = run.spans.set_index("span_id")
    assert spans.loc["b2c3d4e5f6071829", "status"] == "error"
    assert spans.loc["a1b2c3d4e5f60718", "status"] == "unset"


def test_the_process_is_the_resource(tmp_path: Path) -> None:
    trace = {"traceID": "ab" * 16, "processes": {"p9": {"serviceName": "svc", "tags": [
        {"key": "session.id", "type": "string", "value": "from-the-process"}]}}, "spans": [
        {"traceID": "ab" * 16, "spanID": "cd" * 8, "operationName": "step", "references": [],
         "startTime": 1_760_000_000_000_000, "duration": 10, "tags": {"plain": "mapping"}, "processID": "p9"}]}
    path = tmp_path / "trace.json"
    path.write_text(json.dumps(trace))
    span = profiler.load(path).spans.iloc[0]
    assert span["session_id"] == "from-the-process"
    assert span["attributes"] == {"plain": "mapping"}
    assert decode_tags([{"key": "n", "type": "int64", "value": "7"}, {"key": "b", "type": "bool", "value": "true"},
                        {"key": "f", "type": "float64", "value": "0.5"}]) == {"n": 7, "b": True, "f": 0.5}


def test_attribution_counts_the_chats_not_the_agent_aggregate(run: profiler.Run) -> None:
    ledger = profiler.attribute(run)
    assert ledger.totals["input_tokens"] == 1500 and ledger.totals["output_tokens"] == 120
    assert ledger.totals["model_calls"] == 2
    assert ledger.totals["errors"] == 1
    assert ledger.totals["api_cost_usd"] > 0


def test_trace_objects_one_per_line_and_bare_spans_are_read(tmp_path: Path) -> None:
    document = json.loads(DOWNLOAD.read_text())
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(trace) + "\n" for trace in document["data"]))
    assert len(profiler.load(path).spans) == 6
    first = document["data"][0]
    bare = [{**span, "process": first["processes"][span["processID"]]} for span in first["spans"]]
    path = tmp_path / "spans.jsonl"
    path.write_text("".join(json.dumps(span) + "\n" for span in bare))
    run = profiler.load(path)
    assert len(run.spans) == 5 and run.meta["format"] == "jaeger"


def test_an_empty_answer_is_zero_spans(tmp_path: Path) -> None:
    path = tmp_path / "empty.json"
    path.write_text(json.dumps({"data": [], "total": 0, "limit": 0, "offset": 0, "errors": None}))
    run = profiler.load(path)
    assert len(run.spans) == 0
    assert profiler.attribute(run).totals["model_calls"] == 0


def test_an_answer_with_only_errors_names_the_file_and_jaegers_message(tmp_path: Path) -> None:
    path = tmp_path / "missing.json"
    path.write_text(json.dumps({"data": None, "total": 0, "limit": 0, "offset": 0,
                                "errors": [{"code": 404, "msg": "trace not found"}]}))
    with pytest.raises(TraceFormatError, match=r"missing.json:1: .*trace not found"):
        profiler.load(path)


def test_only_jaeger_shaped_values_are_recognised() -> None:
    assert looks_like_jaeger({"data": [{"traceID": "1", "spans": []}]})
    assert looks_like_jaeger({"traceID": "1", "spans": [], "processes": {}})
    assert looks_like_jaeger({"traceID": "1", "spanID": "2", "operationName": "x"})
    assert not looks_like_jaeger({"data": [1, 2]})
    assert not looks_like_jaeger({"resourceSpans": []})
