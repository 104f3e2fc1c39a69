"""ConsoleSpanExporter output (`ReadableSpan.to_json()`), from the OpenTelemetry Python SDK itself
and from the checked-in fixture shaped like Microsoft Agent Framework's console output."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

import profiler
from profiler.traces.readers.console import iso_to_ns, looks_like_console
from tests.paths import DATA

T = 1_772_398_038_000_000_000
S = 1_000_000_000


def _sdk_console_file(path: Path, *, print_on_start: bool) -> dict[str, str]:
    """Record spans with the real SDK's ConsoleSpanExporter into `path`; return span ids by name."""
    out = io.StringIO()

    class PrintOnStart(SpanProcessor):
        def on_start(self, span, parent_context=None) -> None:  # noqa: ANN001 - SDK signature
            out.write(span.to_json() + os.linesep)

    provider = TracerProvider(resource=Resource.create({"service.name": "svc", "session.id": "sess-42"}),
                              shutdown_on_exit=False)
    if print_on_start:
        provider.add_span_processor(PrintOnStart())
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    tracer = provider.get_tracer("tests")
    root = tracer.start_span("invoke_agent helper", start_time=T, attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 30})
    ctx = trace.set_span_in_context(root)
    chat = tracer.start_span("chat gpt-4o", context=ctx, kind=SpanKind.CLIENT, start_time=T + S, attributes={
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 30,
        "gen_ai.usage.cache_read.input_tokens": 100, "server.address": "api.openai.com",
        "gen_ai.response.finish_reasons": ("stop",)})
    chat.end(end_time=T + 2 * S + 123_456_000)
    tool = tracer.start_span("execute_tool lookup", context=ctx, start_time=T + 3 * S,
                             attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"})
    tool.set_status(Status(StatusCode.ERROR, "boom"))
    tool.end(end_time=T + 4 * S)
    hanging = tracer.start_span("execute_tool wait", context=ctx, start_time=T + 5 * S)  # never ends
    root.end(end_time=T + 6 * S)
    path.write_text(out.getvalue(), encoding="utf-8")
    ids = {"root": root, "chat": chat, "tool": tool, "hanging": hanging}
    return {name: format(span.get_span_context().span_id, "016x") for name, span in ids.items()}


@pytest.mark.parametrize("print_on_start", [False, True])
def test_the_sdk_console_exporter_output_reads_back(tmp_path: Path, print_on_start: bool) -> None:
    path = tmp_path / "console.txt"
    ids = _sdk_console_file(path, print_on_start=print_on_start)
    run = profiler.load(path)
    spans = run.spans.set_index("span_id")
    assert run.meta["format"] == "console"
    assert set(spans.index) == {ids["root"], ids["chat"], ids["tool"]}
    chat = spans.loc[ids["chat"]]
    assert chat["parent_span_id"] == ids["root"]
    assert chat["start_ns"] == T + S
    assert chat["end_ns"] == T + 2 * S + 123_456_000  # microseconds kept exactly
    assert chat["kind"] == "chat" and chat["model"] == "gpt-4o" and chat["provider"] == "openai"
    assert chat["input_tokens"] == 300 and chat["cache_read_tokens"] == 100
    assert chat["session_id"] == "sess-42"  # from the resource
    assert spans.loc[ids["tool"], "status"] == "error"
    ledger = profiler.attribute(run)
    assert ledger.totals["input_tokens"] == 300 and ledger.totals["model_calls"] == 1
    if print_on_start:  # printed at start, never finished: reported, not invented
        assert run.meta["unfinished_spans"] == 1
        assert any("never ended" in w and "execute_tool wait" in w for w in run.warnings)
    else:  # the plain exporter prints spans only when they end
        assert run.meta["unfinished_spans"] == 0


def test_the_maf_style_fixture_keeps_the_ended_record_and_skips_the_sibling_aggregate() -> None:
    run = profiler.load(DATA / "console_exporter_maf_style.jsonl")
    assert run.meta["records"] == 4 and run.meta["unfinished_spans"] == 1
    assert sorted(run.spans["name"]) == ["chat gpt-4o-mini", "chat gpt-4o-mini", "execute_tool get_weather",
                                         "invoke_agent Weather agent"]
    assert (run.spans["end_ns"] > run.spans["start_ns"]).all()
    ledger = profiler.attribute(run)
    assert ledger.totals["input_tokens"] == 287 + 145
    assert ledger.totals["output_tokens"] == 41 + 60
    assert ledger.totals["model_calls"] == 2
    assert ledger.totals["errors"] == 1


def test_a_console_span_printed_twice_after_it_ended_is_one_span(tmp_path: Path) -> None:
    text = (DATA / "console_exporter_maf_style.jsonl").read_text()
    path = tmp_path / "twice.log"
    path.write_text(text + "\n" + text)
    run = profiler.load(path)
    assert len(run.spans) == 4
    assert run.meta["duplicate_records"] == 4


def test_a_json_array_of_console_spans_is_read(tmp_path: Path) -> None:
    import json

    from profiler.traces.readers.framing import iter_json_values

    values = [v for _, v in iter_json_values(DATA / "console_exporter_maf_style.jsonl", lambda _: None)]
    path = tmp_path / "spans.json"
    path.write_text(json.dumps(values))
    assert len(profiler.load(path).spans) == 4


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-03-01T20:47:18.711501Z", 1_772_398_038_711_501_000),
    ("2026-03-01T20:47:18Z", 1_772_398_038_000_000_000),
    ("2026-03-01T20:47:18.123456789Z", 1_772_398_038_123_456_789),
    ("2026-03-01T21:47:18.5+01:00", 1_772_398_038_500_000_000),
    ("2026-03-01T15:47:18.5-0500", 1_772_398_038_500_000_000),
    ("2026-03-01 20:47:18", 1_772_398_038_000_000_000),
    (1_772_398_038_000_000_000, 1_772_398_038_000_000_000),
    (None, None),
    ("yesterday", None),
    ("2026-02-30T00:00:00Z", None),
])
def test_iso_times_to_nanoseconds(text: object, expected: int | None) -> None:
    assert iso_to_ns(text) == expected


def test_only_console_shaped_objects_are_recognised() -> None:
    assert looks_like_console({"name": "x", "context": {"trace_id": "0x1", "span_id": "0x2"}})
    assert not looks_like_console({"name": "x"})
    assert not looks_like_console({"resourceSpans": []})
    assert not looks_like_console([])
