"""`sessionprof run` takes OTLP from its command: any SDK's spans, Claude Code's events, the user's own
OTLP settings winning, and an empty run that explains itself."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from tests.cli.helpers import invoke

OTLP_AGENT = textwrap.dedent("""
    # An agent instrumented by hand with the OpenTelemetry SDK and the official OTLP/HTTP exporter,
    # configured by nothing but the standard environment variables.
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("hand-made-agent")
    usage = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
             "gen_ai.conversation.id": "otlp-run"}
    with tracer.start_as_current_span("invoke_agent helper", attributes={"gen_ai.operation.name": "invoke_agent",
                                                                          "gen_ai.conversation.id": "otlp-run"}):
        with tracer.start_as_current_span("chat gpt-4o", attributes={**usage, "gen_ai.usage.input_tokens": 1200,
                                                                      "gen_ai.usage.output_tokens": 80}):
            pass
        with tracer.start_as_current_span("execute_tool lookup", attributes={
                "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                "gen_ai.conversation.id": "otlp-run"}):
            pass
        with tracer.start_as_current_span("chat gpt-4o", attributes={**usage, "gen_ai.usage.input_tokens": 2000,
                                                                      "gen_ai.usage.output_tokens": 40,
                                                                      "gen_ai.usage.cache_read.input_tokens": 1024}):
            pass
    provider.shutdown()
""")

FAKE_CLAUDE = textwrap.dedent("""
    # Sends what Claude Code sends when its telemetry is on: one OTLP log event per model request.
    import os, sys, time
    if os.environ.get("CLAUDE_CODE_ENABLE_TELEMETRY") != "1" or os.environ.get("OTEL_LOGS_EXPORTER") != "otlp":
        sys.exit("telemetry is off")
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    provider = LoggerProvider(resource=Resource.create({"service.name": "claude-code"}))
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter()))
    events = provider.get_logger("com.anthropic.claude_code.events")
    for sequence, (model, tokens) in enumerate([("claude-sonnet-4-5-20250929", ("900", "120", "4000", "0")),
                                                ("claude-sonnet-4-5-20250929", ("30", "200", "4900", "100"))]):
        events.emit(timestamp=time.time_ns(), body="claude_code.api_request", attributes={
            "event.name": "api_request", "session.id": "cc-1", "event.sequence": sequence, "model": model,
            "input_tokens": tokens[0], "output_tokens": tokens[1], "cache_read_tokens": tokens[2],
            "cache_creation_tokens": tokens[3], "cost_usd": "0.01", "duration_ms": "800"})
    provider.shutdown()
""")


def _run(tmp_path: Path, *command: str) -> tuple[Any, dict[str, Any] | None]:
    """`sessionprof run` in process; returns the result and the JSON report (None when none was written)."""
    report = tmp_path / "report.json"
    result = invoke("run", "--run-dir", tmp_path / "run", "--gpu", "none", "--no-html", "-f", "json", "-o", report,
                    "--", *command)
    return result, json.loads(report.read_text()) if report.exists() else None


def test_an_otel_sdk_agent_is_recorded_over_otlp_with_nothing_but_env(tmp_path: Path) -> None:
    script = tmp_path / "agent.py"
    script.write_text(OTLP_AGENT)
    result, report = _run(tmp_path, sys.executable, str(script))
    assert result.exit_code == 0, result.output
    totals = report["totals"]
    assert (totals["model_calls"], totals["tool_calls"], totals["sessions"]) == (2, 1, 1)
    assert (totals["input_tokens"], totals["output_tokens"], totals["cache_read_tokens"]) == (3200, 120, 1024)
    expected = sum(float(calc_price(Usage(input_tokens=i, output_tokens=o, cache_read_tokens=c or None), "gpt-4o",
                                    provider_id="openai").total_price) for i, o, c in ((1200, 80, 0), (2000, 40, 1024)))
    assert totals["api_cost_usd"] == pytest.approx(expected, rel=1e-12)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["otlp_receiver"]["spans"] == 4 and meta["otlp_receiver"]["endpoint"].startswith("http://127.0.0.1:")
    assert meta["dropped"]["otlp_rejected_spans"] == 0 and "no spans were recorded" not in result.output


def test_claude_code_under_run_gives_a_per_request_bill(tmp_path: Path) -> None:
    script = tmp_path / "claude.py"
    script.write_text(FAKE_CLAUDE)
    result, report = _run(tmp_path, sys.executable, str(script))
    assert result.exit_code == 0, result.output
    totals = report["totals"]
    assert totals["model_calls"] == 2 and totals["sessions"] == 1
    assert (totals["input_tokens"], totals["output_tokens"]) == (900 + 4000 + 30 + 4900 + 100, 320)
    assert (totals["cache_read_tokens"], totals["cache_write_tokens"]) == (8900, 100)
    prices = [calc_price(Usage(input_tokens=i, output_tokens=o, cache_read_tokens=r, cache_write_tokens=w or None),
                         "claude-sonnet-4-5-20250929", provider_id="anthropic").total_price
              for i, o, r, w in ((4900, 120, 4000, 0), (5030, 200, 4900, 100))]
    assert totals["api_cost_usd"] == pytest.approx(float(sum(prices)), rel=1e-12)
    calls = [s for s in report["steps"] if s["kind"] == "chat"]
    assert [round(s["wall_s"], 3) for s in calls] == [0.8, 0.8]


def test_the_users_own_otlp_endpoint_wins_and_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    dump = tmp_path / "env.json"
    result, report = _run(tmp_path, sys.executable, "-c",
                          f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))")
    seen = json.loads(dump.read_text())
    assert seen["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://127.0.0.1:9"
    assert "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" not in seen and "CLAUDE_CODE_ENABLE_TELEMETRY" not in seen
    assert ("sessionprof: your OTLP settings win (OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9)" in result.output)
    assert "OTLP/HTTP: not offered to the command: your OTLP settings win" in result.output


def test_an_empty_run_explains_itself_and_does_not_exit_0(tmp_path: Path) -> None:
    result, report = _run(tmp_path, sys.executable, "-c", "pass")
    assert result.exit_code == 3 and report is None
    lines = result.output.splitlines()
    start = lines.index("sessionprof: no spans were recorded, so there is nothing to attribute (exit code 3). "
                        "Looked for:")
    assert lines[start + 3].startswith("  - OTLP/HTTP on http://127.0.0.1:") and lines[start + 3].endswith(
        ": 0 request(s).")
    assert ("  - a Python agent on the OpenAI SDK: pip install opentelemetry-instrumentation-openai-v2 (or the "
            "instrumentor of your SDK or framework);") in lines
    assert any("OTEL_EXPORTER_OTLP_ENDPOINT, which sessionprof run sets" in line for line in lines)


def test_an_empty_run_keeps_the_commands_own_failure_code(tmp_path: Path) -> None:
    result, _ = _run(tmp_path, sys.executable, "-c", "import sys; sys.exit(5)")
    assert result.exit_code == 5
    assert "no spans were recorded, so there is nothing to attribute (the command's exit code 5)" in result.output


def test_an_agent_that_only_decorates_keeps_its_last_steps_at_exit(tmp_path: Path) -> None:
    # It never imports profiler.session, whose import used to be what flushed the recorder at exit.
    agent = "import profiler\n@profiler.tool\ndef search():\n    pass\nsearch()\nsearch()"
    result, report = _run(tmp_path, sys.executable, "-c", agent)
    assert result.exit_code == 0, result.output
    assert report["totals"]["tool_calls"] == 2


def test_otlp_spans_that_name_no_session_are_the_runs_one_session(tmp_path: Path) -> None:
    # A plain SDK loop: each model call its own trace, no session named anywhere.
    script = tmp_path / "loop.py"
    script.write_text(textwrap.dedent("""
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        tracer = provider.get_tracer("loop")
        for tokens in (100, 200):
            tracer.start_span("chat gpt-4o", attributes={
                "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": tokens, "gen_ai.usage.output_tokens": 10}).end()
        provider.shutdown()
    """))
    result, report = _run(tmp_path, sys.executable, str(script))
    assert result.exit_code == 0, result.output
    run_session = json.loads((tmp_path / "run" / "run.json").read_text())["sessions"][0]["id"]
    assert len({s["trace_id"] for s in report["steps"] if s["kind"] == "chat"}) == 2
    assert report["totals"]["sessions"] == 1 and report["totals"]["model_calls"] == 2
    assert {s["session_id"] for s in report["steps"] if s["kind"] == "chat"} == {run_session}
