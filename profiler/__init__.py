"""agent-session-profiler: what did this agent session cost, and which step spent it?

    import profiler

    @profiler.tool
    def search(query): ...

    with profiler.session("demo") as run:
        agent_loop()
    print(run.report())
"""

from __future__ import annotations

import logging
from typing import Any

from profiler.attribution import attribute
from profiler.errors import ConfigError, GpuReadError, GpuUnavailableError, ProfilerError, TraceFormatError
from profiler.ledger import Ledger
from profiler.loading import load
from profiler.model import Run
from profiler.pricing import Prices, load_prices

logging.getLogger(__name__).addHandler(logging.NullHandler())

# Handed on from `instrumentation` lazily, so importing `instrumentation` first never meets a
# half-initialised `profiler`.
_FROM_INSTRUMENTATION = ("agent", "tool", "llm", "step", "record_usage", "session", "Session")

__all__ = ["ConfigError", "GpuReadError", "GpuUnavailableError", "Ledger", "Prices", "ProfilerError", "Run",
           "TraceFormatError", "attribute", "load", "load_prices", *_FROM_INSTRUMENTATION]


def __getattr__(name: str) -> Any:
    if name in _FROM_INSTRUMENTATION:
        import instrumentation

        value = getattr(instrumentation, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'profiler' has no attribute {name!r}")
