"""What a run that recorded no span says: where spans were looked for, and the fix for the usual causes."""

from __future__ import annotations

from profiler.capture.recording import EMPTY_RUN_EXIT_CODE, RunResult


def explain_empty_run(result: RunResult, *, served: bool = False) -> str:
    """The message for a run with no span, one line per place looked and per common fix.

    Args:
        result: the finished run.
        served: the run came from `sessionprof serve` (no command of ours).
    """
    stats = result.receiver
    heard = f"{stats.requests} request(s)"
    if stats.log_records or stats.metric_points:
        heard += (f", {stats.log_records} log record(s) and {stats.metric_points} metric point(s), but no spans "
                  "and no model-request events")
    otlp = (f"OTLP/HTTP on {result.endpoint}: {heard}" if result.otlp_note is None
            else f"OTLP/HTTP: not offered to the command: {result.otlp_note}")
    code = (f"exit code {EMPTY_RUN_EXIT_CODE}" if result.final_exit_code == EMPTY_RUN_EXIT_CODE
            else f"the command's exit code {result.exit_code}")
    lines = [f"sessionprof: no spans were recorded, so there is nothing to attribute ({code}). Looked for:"]
    if not served:
        lines += ["  - steps from sessionprof's decorators (@profiler.agent, @profiler.tool, @profiler.llm);",
                  "  - spans of OpenTelemetry instrumentors installed in the command's Python environment;"]
    lines += [f"  - {otlp}.", "Common fixes:"]
    if not served:
        lines += ["  - a Python agent on the OpenAI SDK: pip install opentelemetry-instrumentation-openai-v2 "
                  "(or the instrumentor of your SDK or framework);",
                  "  - an agent in another language: start the OpenTelemetry SDK with an OTLP exporter; it reads "
                  "OTEL_EXPORTER_OTLP_ENDPOINT, which sessionprof run sets for the command;",
                  "  - an agent that sessionprof does not start: sessionprof serve, and point its "
                  "OTEL_EXPORTER_OTLP_ENDPOINT there."]
    else:
        lines += [f"  - set OTEL_EXPORTER_OTLP_ENDPOINT={result.endpoint} (and OTEL_EXPORTER_OTLP_PROTOCOL="
                  "http/protobuf or http/json) in the agent's environment before it starts;",
                  "  - Claude Code: also CLAUDE_CODE_ENABLE_TELEMETRY=1 and OTEL_LOGS_EXPORTER=otlp."]
    return "\n".join(lines)
