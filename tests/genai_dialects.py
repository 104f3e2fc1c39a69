"""Spans as real instrumentations write them, in OTLP JSON: the anthropic SDK's own spans, OpenLLMetry's
and OpenInference's Anthropic instrumentors, pydantic-ai and the official OpenAI instrumentor, each
with its own attribute names and its own way of nesting (docs/dialects.md#attribute-aliases).

A `Call` is one request to a model; each builder describes it the way its instrumentation does.
Times are seconds after `tests.builders.BASE_NS`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.builders import otlp_document, otlp_span


@dataclass(frozen=True)
class Call:
    """One model request and what the provider answered."""

    request_model: str
    response_model: str
    uncached_input: int
    output: int
    cache_read: int = 0
    cache_write: int = 0

    @property
    def input(self) -> int:
        """Input tokens inclusive of the cache, as OTel counts them."""
        return self.uncached_input + self.cache_read + self.cache_write


#: Four turns of an agent on Claude: the context grows and is read back from the cache.
CLAUDE_CALLS = (
    Call("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 1200, 80, cache_write=2000),
    Call("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 300, 120, cache_read=2000, cache_write=1280),
    Call("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 250, 60, cache_read=3280),
    Call("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 400, 200, cache_read=3280, cache_write=250),
)
#: Four turns on gpt-4o, most of each prompt served from OpenAI's automatic prompt cache.
GPT_CALLS = (
    Call("gpt-4o", "gpt-4o-2024-08-06", 1500, 90),
    Call("gpt-4o", "gpt-4o-2024-08-06", 200, 150, cache_read=1536),
    Call("gpt-4o", "gpt-4o-2024-08-06", 350, 40, cache_read=1664),
    Call("gpt-4o", "gpt-4o-2024-08-06", 300, 210, cache_read=2048),
)


def span_id(kind: int, index: int) -> str:
    """A 16-hex-digit span id: `kind` tells the instrumentations apart, `index` the calls."""
    return f"{kind:04x}{index:012x}"


def trace_id(index: int) -> str:
    """A 32-hex-digit trace id."""
    return f"{index + 1:032x}"


def anthropic_sdk(sid: str, parent: str | None, call: Call, *, start: float, end: float, trace: str,
                  **extra: Any) -> dict[str, Any]:
    """The anthropic SDK's own call span (`anthropic.messages.create`): GenAI semconv names, input
    inclusive of the cache, cache writes under the newer `cache_write` name."""
    return otlp_span(sid, parent, start=start, end=end, trace=trace, name="anthropic.messages.create", attributes={
        "server.address": "api.anthropic.com", "gen_ai.provider.name": "anthropic", "gen_ai.operation.name": "chat",
        "gen_ai.request.model": call.request_model, "gen_ai.response.model": call.response_model,
        "gen_ai.usage.input_tokens": call.input, "gen_ai.usage.output_tokens": call.output,
        "gen_ai.usage.cache_read.input_tokens": call.cache_read,
        "gen_ai.usage.cache_write.input_tokens": call.cache_write, **extra})


def openllmetry_anthropic(sid: str, parent: str | None, call: Call, *, start: float, end: float, trace: str,
                          **extra: Any) -> dict[str, Any]:
    """OpenLLMetry's Anthropic instrumentor (`anthropic.chat`): `gen_ai.system`, `llm.request.type`
    `completion` even for messages, prompt tokens inclusive of the cache, `*_input_tokens` cache names."""
    return otlp_span(sid, parent, start=start, end=end, trace=trace, name="anthropic.chat", attributes={
        "gen_ai.system": "Anthropic", "llm.request.type": "completion",
        "gen_ai.request.model": call.request_model, "gen_ai.response.model": call.response_model,
        "gen_ai.usage.prompt_tokens": call.input, "gen_ai.usage.completion_tokens": call.output,
        "llm.usage.total_tokens": call.input + call.output,
        "gen_ai.usage.cache_read_input_tokens": call.cache_read,
        "gen_ai.usage.cache_creation_input_tokens": call.cache_write, **extra})


def openinference_anthropic(sid: str, parent: str | None, call: Call, *, start: float, end: float, trace: str,
                            **extra: Any) -> dict[str, Any]:
    """OpenInference's Anthropic instrumentor (`Messages`): span kind LLM, `llm.*` names."""
    return otlp_span(sid, parent, start=start, end=end, trace=trace, name="Messages", attributes={
        "openinference.span.kind": "LLM", "llm.provider": "anthropic", "llm.system": "anthropic",
        "llm.model_name": call.request_model, "llm.token_count.prompt": call.input,
        "llm.token_count.completion": call.output, "llm.token_count.total": call.input + call.output,
        "llm.token_count.prompt_details.cache_read": call.cache_read,
        "llm.token_count.prompt_details.cache_write": call.cache_write, **extra})


def pydantic_ai_chat(sid: str, parent: str | None, call: Call, *, start: float, end: float, trace: str,
                     **extra: Any) -> dict[str, Any]:
    """pydantic-ai's model request span (`chat gpt-4o`): cache reads among its usage details."""
    return otlp_span(sid, parent, start=start, end=end, trace=trace, name=f"chat {call.request_model}", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": call.request_model,
        "gen_ai.response.model": call.response_model, "gen_ai.usage.input_tokens": call.input,
        "gen_ai.usage.output_tokens": call.output, "gen_ai.usage.details.cache_read_tokens": call.cache_read,
        **extra})


def pydantic_ai_agent_run(sid: str, calls: Sequence[Call], *, start: float, end: float, trace: str,
                          **extra: Any) -> dict[str, Any]:
    """pydantic-ai's `agent run` span, which repeats the sum of its calls' usage."""
    return otlp_span(sid, None, start=start, end=end, trace=trace, name="agent run", attributes={
        "gen_ai.agent.name": "agent", "model_name": calls[0].request_model,
        "gen_ai.usage.input_tokens": sum(c.input for c in calls),
        "gen_ai.usage.output_tokens": sum(c.output for c in calls), **extra})


def openai_v2(sid: str, parent: str | None, call: Call, *, start: float, end: float, trace: str,
              **extra: Any) -> dict[str, Any]:
    """The official OpenAI instrumentor (`opentelemetry-instrumentation-openai-v2`) before it
    reported cached tokens: input and output only."""
    return otlp_span(sid, parent, start=start, end=end, trace=trace, name=f"chat {call.request_model}", attributes={
        "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": call.request_model,
        "gen_ai.response.model": call.response_model, "gen_ai.usage.input_tokens": call.input,
        "gen_ai.usage.output_tokens": call.output, "server.address": "api.openai.com", **extra})


def write_trace(path: Path, spans: Sequence[dict[str, Any]], resource: dict[str, Any] | None = None) -> Path:
    """Write `spans` as one OTLP JSON line (a spans.jsonl file)."""
    path.write_text(json.dumps(otlp_document(spans, resource)) + "\n", encoding="utf-8")
    return path
