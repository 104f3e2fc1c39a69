"""The OpenTelemetry side: decorators, the session, one-line capture of every span (`instrument()`),
and the span processor and exporter for users who own a `TracerProvider` (adding
`SessionSpanProcessor(run_dir=...)` is all it takes)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from instrumentation.decorators import agent, llm, record_usage, step, tool
from instrumentation.exporter import RunDirExporter
from instrumentation.processor import SessionSpanProcessor

if TYPE_CHECKING:
    from instrumentation.auto import Capture, instrument

__all__ = ["Capture", "RunDirExporter", "SessionSpanProcessor", "agent", "instrument", "llm", "record_usage", "step",
           "tool"]


def __getattr__(name: str) -> Any:
    # `instrument` is handed on at first use: an agent that only decorates never loads what it needs.
    if name not in ("Capture", "instrument"):
        raise AttributeError(f"module 'instrumentation' has no attribute {name!r}")
    value = getattr(importlib.import_module("instrumentation.auto"), name)
    globals()[name] = value
    return value
