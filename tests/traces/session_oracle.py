"""The session rule for one span, written plainly: the oracle the batch reader is checked against."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from instrumentation.semconv import SESSION_KEYS
from profiler.traces.genai import first


def session_of(attrs: Mapping[str, Any], resource: Mapping[str, Any], trace_id: str) -> str:
    """The session (conversation) a span belongs to: a session key on the span, else on its
    resource, else its trace."""
    value = first(attrs, SESSION_KEYS)
    if value is None:
        value = first(resource, SESSION_KEYS)
    return str(value) if value is not None else trace_id
