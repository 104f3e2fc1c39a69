"""Opt-in recording of prompts, completions and tool arguments, with a redaction hook.

Off unless the user opts in: `profiler.session(capture_content=True)` or the OpenTelemetry setting
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true. Every value passes through the session's
`redact(key, text)` hook first (return the text to keep, changed or not, or None to drop it), and is
cut to `MAX_CHARS`.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from instrumentation import _state, semconv

MAX_CHARS = 16_384
Redactor = Callable[[str, str], "str | None"]


def env_opt_in() -> bool:
    """Whether the OTel content-capture setting asks for content (read now, and kept for later calls)."""
    global _env_opt_in
    _env_opt_in = os.environ.get(semconv.CAPTURE_CONTENT_ENV, "").strip().lower() in ("true", "1", "yes")
    return _env_opt_in


_env_opt_in = False
env_opt_in()


def capture_enabled() -> tuple[bool, Redactor | None]:
    """(capture?, redactor) for a call ending now. The environment is read at import and whenever a
    session opens, not on every call."""
    session = _state.current_session()
    if session is not None and session.capture_content is not None:
        return session.capture_content, session.redact
    return _env_opt_in, session.redact if session is not None else None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_CHARS else text[:MAX_CHARS] + f"…[{len(text) - MAX_CHARS} chars cut]"


def content_attributes(operation: str, func: Callable[..., Any] | None, args: tuple[Any, ...],
                       kwargs: Mapping[str, Any], result: Any, redact: Redactor | None) -> dict[str, str]:
    """The content attributes of one finished call (tool arguments and result, model messages)."""
    found: dict[str, Any] = {}
    if operation == semconv.OP_EXECUTE_TOOL:
        found[semconv.TOOL_CALL_ARGUMENTS] = _arguments(func, args, kwargs)
        found[semconv.TOOL_CALL_RESULT] = result
    elif operation == semconv.OP_CHAT:
        messages = kwargs.get("messages")
        if messages is None:
            messages = next((a for a in args if isinstance(a, list) and a and isinstance(a[0], Mapping)), None)
        if messages is not None:
            found[semconv.INPUT_MESSAGES] = messages
        output = _output_text(result)
        if output is not None:
            found[semconv.OUTPUT_MESSAGES] = [{"role": "assistant", "parts": [{"type": "text", "content": output}]}]
    attributes = {}
    for key, value in found.items():
        text = _text(value)
        if redact is not None:
            kept = redact(key, text)
            if kept is None:
                continue
            text = kept
        attributes[key] = _cut(text)
    return attributes


def _arguments(func: Callable[..., Any] | None, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if func is None:
        return {"args": list(args), **kwargs}
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": list(args), **kwargs}
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


def _output_text(result: Any) -> str | None:
    def get(obj: Any, key: str) -> Any:
        return obj.get(key) if isinstance(obj, Mapping) else getattr(obj, key, None)

    choices = get(result, "choices")
    if choices:
        return get(get(choices[0], "message"), "content")
    content = get(result, "content")
    if isinstance(content, list):
        return "".join(str(get(block, "text") or "") for block in content)
    text = get(result, "output_text")
    return text if isinstance(text, str) else None
