"""Token usage from what a model call returns: OpenAI chat-completions and responses objects,
Anthropic messages, or plain dicts of either shape. Input counts come out inclusive of cache, as
the OTel GenAI conventions write them (Anthropic's raw `input_tokens` exclude cache)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from instrumentation import semconv

#: The most tokens one model call can report: a thousand times the longest context window
#: (about a million tokens) and far below what would overflow a float's integers. A count above
#: it, negative or not finite, is no count: it is left out, not recorded.
MAX_TOKENS_PER_CALL = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one call (None: not reported) and what the response says about itself."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_write_tokens: int | None = None
    reasoning_tokens: int | None = None
    model: str | None = None
    provider: str | None = None
    response_id: str | None = None

    def attributes(self) -> dict[str, Any]:
        """The GenAI span attributes (v1.41 names) for this usage."""
        pairs = (
            (semconv.INPUT_TOKENS, self.input_tokens),
            (semconv.OUTPUT_TOKENS, self.output_tokens),
            (semconv.CACHE_READ_TOKENS, self.cache_read_tokens),
            (semconv.CACHE_CREATION_TOKENS, self.cache_write_tokens),
            (semconv.REASONING_TOKENS, self.reasoning_tokens),
            (semconv.RESPONSE_MODEL, self.model),
            (semconv.RESPONSE_ID, self.response_id),
        )
        return {key: value for key, value in pairs if value is not None}


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def token_count(value: Any) -> int | None:
    """A token count as an int; None where it is absent or cannot be real (negative, not finite,
    above `MAX_TOKENS_PER_CALL`)."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: infinity
        return None
    return number if 0 <= number <= MAX_TOKENS_PER_CALL else None


def extract_usage(response: Any) -> Usage | None:
    """Read usage from a response object or dict; None when it carries no usage."""
    usage = _get(response, "usage")
    if usage is None:
        return None
    model = _get(response, "model")
    response_id = _get(response, "id")
    model = model if isinstance(model, str) else None
    response_id = response_id if isinstance(response_id, str) else None
    if _get(usage, "prompt_tokens") is not None or _get(usage, "completion_tokens") is not None:
        return _openai_chat(usage, model, response_id)
    if _is_anthropic(response, usage):
        return _anthropic(usage, model, response_id)
    if _get(usage, "input_tokens") is not None or _get(usage, "output_tokens") is not None:
        return _openai_responses(usage, model, response_id)
    return None


def _is_anthropic(response: Any, usage: Any) -> bool:
    if _get(response, "type") == "message":
        return True
    return any(
        (isinstance(usage, Mapping) and key in usage) or (not isinstance(usage, Mapping) and hasattr(usage, key))
        for key in ("cache_read_input_tokens", "cache_creation_input_tokens")
    )


def _openai_chat(usage: Any, model: str | None, response_id: str | None) -> Usage:
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    return Usage(
        input_tokens=token_count(_get(usage, "prompt_tokens")),
        output_tokens=token_count(_get(usage, "completion_tokens")),
        cache_read_tokens=token_count(_get(prompt_details, "cached_tokens")),
        cache_write_tokens=token_count(_get(prompt_details, "cache_write_tokens")),
        reasoning_tokens=token_count(_get(completion_details, "reasoning_tokens")),
        model=model,
        provider="openai",
        response_id=response_id,
    )


def _openai_responses(usage: Any, model: str | None, response_id: str | None) -> Usage:
    return Usage(
        input_tokens=token_count(_get(usage, "input_tokens")),
        output_tokens=token_count(_get(usage, "output_tokens")),
        cache_read_tokens=token_count(_get(_get(usage, "input_tokens_details"), "cached_tokens")),
        cache_write_tokens=token_count(_get(_get(usage, "input_tokens_details"), "cache_write_tokens")),
        reasoning_tokens=token_count(_get(_get(usage, "output_tokens_details"), "reasoning_tokens")),
        model=model,
        provider="openai",
        response_id=response_id,
    )


def _anthropic(usage: Any, model: str | None, response_id: str | None) -> Usage:
    raw_input = token_count(_get(usage, "input_tokens"))
    cache_read = token_count(_get(usage, "cache_read_input_tokens"))
    cache_write = token_count(_get(usage, "cache_creation_input_tokens"))
    # Anthropic's input_tokens exclude cache; OTel's include it.
    inclusive = None if raw_input is None else raw_input + (cache_read or 0) + (cache_write or 0)
    return Usage(
        input_tokens=inclusive,
        output_tokens=token_count(_get(usage, "output_tokens")),
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        model=model,
        provider="anthropic",
        response_id=response_id,
    )
