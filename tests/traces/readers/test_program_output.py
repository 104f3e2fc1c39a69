"""A program's stdout as a trace file: the spans ConsoleSpanExporter printed, between the program's own
prints. What is not trace JSON is skipped with one warning that counts it, as long as the file holds
traces; a file that holds none is refused at its first line, and a trace's own JSON that is broken
is an error wherever it is."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

import profiler
from profiler.errors import TraceFormatError
from profiler.traces import load as load_module
from tests.cli.helpers import invoke

PRINTS = ["Starting the weather agent", "[INFO] model=gpt-4o", "{'city': 'Paris', 'temp_c': 21}",
          "[1/2] calling a tool", "", "   done."]
JSON_LOG = json.dumps({"level": "info", "event": "turn finished"})  # a program that logs JSON lines


def agent_stdout(prints_between: Callable[[io.StringIO, int], None]) -> str:
    """What an agent prints on stdout with OTel's ConsoleSpanExporter: two model calls and a tool
    inside an agent span, the program's own prints around each."""
    out = io.StringIO()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=out)))
    tracer = provider.get_tracer("agent")
    with tracer.start_as_current_span("invoke_agent weather", attributes={"gen_ai.operation.name": "invoke_agent"}):
        for turn in range(2):
            prints_between(out, turn)
            with tracer.start_as_current_span("chat gpt-4o", attributes={
                    "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                    "gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1000 + turn,
                    "gen_ai.usage.output_tokens": 50}):
                pass
            prints_between(out, turn)
        with tracer.start_as_current_span("execute_tool get_weather",
                                          attributes={"gen_ai.operation.name": "execute_tool"}):
            pass
    provider.shutdown()
    return out.getvalue()


def with_prints(out: io.StringIO, turn: int) -> None:
    out.write("\n".join(PRINTS) + "\n")
    if turn:
        out.write(JSON_LOG + "\n")


def stdout_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.out"
    path.write_text(text, encoding="utf-8")
    return path


def test_console_spans_between_a_programs_prints_are_read_with_one_warning(tmp_path: Path) -> None:
    path = stdout_file(tmp_path, agent_stdout(with_prints))
    run = profiler.load(path)
    assert sorted(run.spans["name"]) == ["chat gpt-4o", "chat gpt-4o", "execute_tool get_weather",
                                         "invoke_agent weather"]
    ledger = profiler.attribute(run)
    assert ledger.totals["model_calls"] == 2 and ledger.totals["input_tokens"] == 2001
    # 4 printing moments x 5 lines with text, and the JSON log printed twice.
    assert run.warnings == [f"{path}: skipped 20 line(s) and 2 JSON value(s) that are not trace JSON (a program's "
                            "own output between its spans?); the first at line 1: expected a JSON object or array "
                            "(a trace), found 'Starting the weather agent'"]


def test_sessionprof_report_reads_a_programs_stdout(tmp_path: Path) -> None:
    path = stdout_file(tmp_path, agent_stdout(with_prints))
    result = invoke("report", path, "--format", "json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["totals"]["model_calls"] == 2
    assert [w for w in report["checks"]["warnings"] if "skipped 20 line(s) and 2 JSON value(s)" in w]
    table = invoke("report", path)
    assert table.exit_code == 0 and "warning: " in table.stdout and "not trace JSON" in table.stdout


def test_a_print_that_starts_like_json_does_not_swallow_the_span_after_it(tmp_path: Path) -> None:
    def brackets(out: io.StringIO, turn: int) -> None:
        out.write("[WARN] retrying\n{'partial': True,\n[\n")  # the lone `[` is a valid start: left open

    run = profiler.load(stdout_file(tmp_path, agent_stdout(brackets)))
    assert len(run.spans) == 4
    assert len(run.warnings) == 1 and "skipped" in run.warnings[0]


def test_a_stdout_without_spans_is_refused_at_its_first_line(tmp_path: Path) -> None:
    path = stdout_file(tmp_path, "\n".join(PRINTS) + "\n" + JSON_LOG + "\n")
    with pytest.raises(TraceFormatError) as err:
        profiler.load(path)
    assert str(err.value) == f"{path}:1: expected a JSON object or array (a trace), found 'Starting the weather agent'"
    result = invoke("report", path)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"sessionprof: error: {err.value}"


def test_json_values_that_are_not_traces_alone_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match=r"agent.out:2: expected OTLP JSON .* found a JSON int"):
        profiler.load(stdout_file(tmp_path, "\n42\n" + JSON_LOG + "\n"))


def test_a_broken_trace_among_prints_is_still_an_error(tmp_path: Path) -> None:
    text = agent_stdout(with_prints)
    damaged = text.replace('"name": "execute_tool get_weather",', '"name": "execute_tool get_weather"', 1)
    with pytest.raises(TraceFormatError, match=r"agent.out:\d+: invalid JSON \(Expecting ',' delimiter"):
        profiler.load(stdout_file(tmp_path, damaged))


@pytest.mark.parametrize(("extra", "first"), [
    ("# spans\n", "1: expected a JSON object or array (a trace), found '# spans'"),
    ('{"hello": "world"}\n', "1: expected OTLP JSON traces"),
    ("42\n", "1: expected OTLP JSON traces"),
])
def test_a_trace_file_with_a_stray_line_keeps_its_spans(tmp_path: Path, extra: str, first: str) -> None:
    line = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "GET /", "startTimeUnixNano": "1760000000000000000",
         "endTimeUnixNano": "1760000001000000000"}]}]}]})
    run = profiler.load(stdout_file(tmp_path, extra + line + "\n"))
    assert len(run.spans) == 1
    assert len(run.warnings) == 1 and f"the first at line {first}" in run.warnings[0]


def test_a_file_that_only_reaches_its_traces_after_too_much_other_text_is_refused_early(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(load_module, "_MAX_SKIPPED_BEFORE_TRACE", 50)
    text = "".join(f"line {i}\n" for i in range(60)) + agent_stdout(with_prints)
    with pytest.raises(TraceFormatError, match=r"agent.out:1: expected a JSON object"):
        profiler.load(stdout_file(tmp_path, text))
    assert len(profiler.load(stdout_file(tmp_path, text[text.index("line 20"):])).spans) == 4
