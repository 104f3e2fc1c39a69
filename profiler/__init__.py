"""agent-session-profiler: what did this agent session cost, and which step spent it?

    import profiler

    @profiler.tool
    def search(query): ...

    with profiler.session("demo") as run:
        agent_loop()
    print(run.report())

`profiler.instrument()` records every span of the process (installed OpenTelemetry instrumentors
and SDKs included) without a session; `sessionprof run -- python agent.py` does it with no code.

Importing `profiler` and using its decorators loads OpenTelemetry only; the names that need pandas
(`load`, `attribute`, `Ledger`, ...) are imported on first use.
"""

from __future__ import annotations

import importlib
import logging
from typing import TYPE_CHECKING, Any

from instrumentation import agent, llm, record_usage, step, tool
from profiler.errors import ConfigError, GpuReadError, GpuUnavailableError, ProfilerError, TraceFormatError

if TYPE_CHECKING:
    from instrumentation.auto import Capture, instrument
    from profiler.attribution.engine import attribute
    from profiler.attribution.ledger import Ledger
    from profiler.capture.session import Session, session
    from profiler.model import Run
    from profiler.pricing.prices import Prices, load_prices
    from profiler.traces.load import load

logging.getLogger(__name__).addHandler(logging.NullHandler())

#: Public names handed on lazily, and the module each lives in.
_LAZY = {
    "Capture": "instrumentation.auto",
    "instrument": "instrumentation.auto",
    "attribute": "profiler.attribution.engine",
    "Ledger": "profiler.attribution.ledger",
    "session": "profiler.capture.session",
    "Session": "profiler.capture.session",
    "Run": "profiler.model",
    "Prices": "profiler.pricing.prices",
    "load_prices": "profiler.pricing.prices",
    "load": "profiler.traces.load",
}

__all__ = ["Capture", "ConfigError", "GpuReadError", "GpuUnavailableError", "Ledger", "Prices", "ProfilerError",
           "Run", "Session", "TraceFormatError", "agent", "attribute", "instrument", "llm", "load", "load_prices",
           "record_usage", "session", "step", "tool"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'profiler' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
