"""The OpenTelemetry side: decorators, the session, and the span processor and exporter for users
who own a `TracerProvider` (adding `SessionSpanProcessor(run_dir=...)` is all it takes)."""

from instrumentation.decorators import agent, llm, record_usage, step, tool
from instrumentation.exporter import RunDirExporter
from instrumentation.processor import SessionSpanProcessor

__all__ = ["RunDirExporter", "SessionSpanProcessor", "agent", "llm", "record_usage", "step", "tool"]
