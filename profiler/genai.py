"""Read GenAI meaning out of span attributes, whatever dialect wrote them.

One function per concept, each trying the aliases of `reference/genai-attributes.md` in order.
The readers of every trace format call `span_row`, so our own files and other tools' files are
understood the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from profiler import semconv
from profiler.model import INFERENCE_KINDS, TOKEN_COLUMNS

_OPENINFERENCE_KINDS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "CHAIN": "invoke_workflow",
    "RETRIEVER": "retrieval",
}
_TRACELOOP_KINDS = {"workflow": "invoke_workflow", "task": "step", "agent": "invoke_agent", "tool": "execute_tool"}
_TRACELOOP_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
_LANGFUSE_TYPES = {"GENERATION": "chat", "AGENT": "invoke_agent", "TOOL": "execute_tool", "EMBEDDING": "embeddings"}
_NAME_PREFIXES = (
    "chat",
    "text_completion",
    "generate_content",
    "embeddings",
    "execute_tool",
    "invoke_agent",
    "invoke_workflow",
    "create_agent",
)

_INPUT = (semconv.INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt", "ai.usage.inputTokens",
          "ai.usage.promptTokens")
_OUTPUT = (semconv.OUTPUT_TOKENS, "gen_ai.usage.completion_tokens", "llm.token_count.completion",
           "ai.usage.outputTokens", "ai.usage.completionTokens")
_CACHE_READ = (semconv.CACHE_READ_TOKENS, "llm.token_count.prompt_details.cache_read",
               "gen_ai.usage.cache_read_input_tokens", "gen_ai.usage.prompt_tokens_details.cached_tokens",
               "gen_ai.usage.cached_tokens", "gen_ai.usage.cached_input_tokens", "ai.usage.cachedInputTokens",
               "gen_ai.usage.details.cache_read_tokens")
_CACHE_WRITE = ("gen_ai.usage.cache_write.input_tokens", semconv.CACHE_CREATION_TOKENS,
                "llm.token_count.prompt_details.cache_write", "gen_ai.usage.cache_creation_input_tokens",
                "gen_ai.usage.prompt_tokens_details.cache_creation_tokens")
_REASONING = (semconv.REASONING_TOKENS, "llm.token_count.completion_details.reasoning",
              "gen_ai.usage.reasoning_tokens", "llm.usage.reasoning_tokens",
              "gen_ai.usage.completion_tokens_details.reasoning_tokens", "ai.usage.reasoningTokens")
_MODEL = (semconv.RESPONSE_MODEL, "llm.response.model_name", "ai.response.model", semconv.REQUEST_MODEL,
          "llm.request.model_name", "llm.model_name", "ai.model.id")
_PROVIDER = (semconv.PROVIDER, "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
_SESSION = (semconv.CONVERSATION_ID, "session.id", "langfuse.session.id", "gen_ai.session.id",
            "gen_ai.agent.session_id", "traceloop.association.properties.session_id",
            "ai.telemetry.metadata.sessionId", "claude.session.id", "github.copilot.interaction_id")
_COST = ("llm.cost.total", "gen_ai.usage.cost", "operation.cost", "gen_ai.usage.cost_usd")
_PROVIDER_ALIASES = {
    "vertex_ai": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "xai": "x_ai",
    "openai.responses": "openai",
    "openai.chat": "openai",
}
#: Providers that serve models from the user's own hardware: no API bill, and the GPU is local.
SELF_HOSTED_PROVIDERS = frozenset({"vllm", "ollama", "sglang", "llama.cpp", "llamacpp", "lmstudio", "tgi",
                                   "transformers", "local", "self-hosted"})
_LOCAL_HOSTS = ("localhost", "127.", "0.0.0.0", "::1", "[::1]", "host.docker.internal")


def first(attrs: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """Return the value of the first key present and not empty, else None."""
    for key in keys:
        value = attrs.get(key)
        if value is not None and value != "":
            return value
    return None


def operation_of(attrs: Mapping[str, Any], name: str) -> str:
    """Return the GenAI operation of a span (`chat`, `execute_tool`, ...), or `step`."""
    op = attrs.get(semconv.OPERATION)
    if isinstance(op, str) and op:
        return op
    kind = attrs.get("openinference.span.kind")
    if isinstance(kind, str) and kind.upper() in _OPENINFERENCE_KINDS:
        return _OPENINFERENCE_KINDS[kind.upper()]
    request_type = attrs.get("llm.request.type")
    if isinstance(request_type, str) and request_type in _TRACELOOP_REQUEST_TYPES:
        return _TRACELOOP_REQUEST_TYPES[request_type]
    kind = attrs.get("traceloop.span.kind")
    if isinstance(kind, str) and kind in _TRACELOOP_KINDS:
        return _TRACELOOP_KINDS[kind]
    op_id = attrs.get("ai.operationId")
    if isinstance(op_id, str):
        if op_id.endswith((".doGenerate", ".doStream")):
            return "chat"
        if op_id.endswith(".doEmbed"):
            return "embeddings"
    obs_type = attrs.get("langfuse.observation.type")
    if isinstance(obs_type, str) and obs_type.upper() in _LANGFUSE_TYPES:
        return _LANGFUSE_TYPES[obs_type.upper()]
    prefix = name.split(" ", 1)[0]
    if " " in name and prefix in _NAME_PREFIXES:
        return prefix
    return semconv.OP_STEP


def _count(value: Any) -> float:
    """A token count as float; NaN when absent or unreadable."""
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        count = float(value)
    except (TypeError, ValueError):
        return math.nan
    return count if math.isfinite(count) and count >= 0 else math.nan


def usage_of(attrs: Mapping[str, Any]) -> dict[str, float]:
    """Return the five token counts, input inclusive of cache as OTel writes it.

    When cache reads plus writes exceed the input count, the producer wrote Anthropic's raw,
    exclusive convention; the cache counts are then added to the input.
    """
    usage = {
        "input_tokens": _count(first(attrs, _INPUT)),
        "output_tokens": _count(first(attrs, _OUTPUT)),
        "cache_read_tokens": _count(first(attrs, _CACHE_READ)),
        "cache_write_tokens": _count(first(attrs, _CACHE_WRITE)),
        "reasoning_tokens": _count(first(attrs, _REASONING)),
    }
    cached = np.nansum([usage["cache_read_tokens"], usage["cache_write_tokens"]])
    if not math.isnan(usage["input_tokens"]) and cached > usage["input_tokens"]:
        usage["input_tokens"] += cached
    return usage


def model_of(attrs: Mapping[str, Any]) -> str | None:
    """Return the model that served the call; `unknown` and empty names count as missing."""
    for key in _MODEL:
        value = attrs.get(key)
        if isinstance(value, str) and value.strip() and value.strip().lower() != "unknown":
            return value.strip()
    return None


def provider_of(attrs: Mapping[str, Any]) -> str | None:
    """Return the provider, normalised to the GenAI well-known values."""
    value = first(attrs, _PROVIDER)
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if value.startswith("az.ai."):
        value = "azure.ai." + value[len("az.ai."):]
    return _PROVIDER_ALIASES.get(value, value) or None


def session_of(attrs: Mapping[str, Any], resource: Mapping[str, Any], trace_id: str) -> str:
    """Return the session (conversation) a span belongs to, falling back to its trace."""
    value = first(attrs, _SESSION)
    if value is None:
        value = first(resource, _SESSION)
    return str(value) if value is not None else trace_id


def reported_cost_of(attrs: Mapping[str, Any]) -> float:
    """Return a USD cost that the producer recorded, or NaN."""
    return _count(first(attrs, _COST))


def is_remote(kind: str, provider: str | None, attrs: Mapping[str, Any]) -> bool:
    """Whether a step runs on someone else's hardware (a hosted API), so no local GPU share."""
    if kind not in INFERENCE_KINDS:
        return False
    address = attrs.get(semconv.SERVER_ADDRESS)
    if isinstance(address, str) and address:
        return not address.lower().startswith(_LOCAL_HOSTS)
    return provider is not None and provider not in SELF_HOSTED_PROVIDERS


def span_row(
    *,
    trace_id: str,
    span_id: str,
    parent_span_id: str | None,
    name: str,
    start_ns: int,
    end_ns: int,
    status: str,
    attrs: dict[str, Any],
    resource: Mapping[str, Any],
) -> dict[str, Any]:
    """Turn one decoded span into a row of `Run.spans` (see `model.SPAN_COLUMNS`)."""
    kind = operation_of(attrs, name)
    provider = provider_of(attrs)
    row: dict[str, Any] = {
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": parent_span_id or None,
        "session_id": session_of(attrs, resource, trace_id),
        "name": name,
        "kind": kind,
        "status": status,
        "start_ns": start_ns,
        "end_ns": max(end_ns, start_ns),
        "model": model_of(attrs),
        "provider": provider,
        "reported_cost_usd": reported_cost_of(attrs),
        "remote": is_remote(kind, provider, attrs),
        "session_root": bool(attrs.get(semconv.SESSION_ROOT, False)),
        "attributes": attrs,
    }
    row.update(usage_of(attrs))
    return row


def mark_billable(spans: pd.DataFrame) -> pd.Series:
    """Decide which spans' usage is counted, so that aggregates never double the bill.

    Inference spans always count. Another span's usage (an agent repeating its children's sum)
    counts only when no inference span lies beneath it and no ancestor already counted.
    """
    has_usage = spans[list(TOKEN_COLUMNS)].notna().any(axis=1).to_numpy()
    inference = spans["kind"].isin(INFERENCE_KINDS).to_numpy()
    bills = inference & has_usage
    candidates = np.flatnonzero(has_usage & ~inference)
    if len(candidates) == 0:
        return pd.Series(bills, index=spans.index)
    index_of = {(t, s): i for i, (t, s) in enumerate(zip(spans["trace_id"], spans["span_id"]))}
    parent_pos = np.array(
        [index_of.get((t, p), -1) for t, p in zip(spans["trace_id"], spans["parent_span_id"])], dtype=np.int64
    )
    below_inference = np.zeros(len(spans), dtype=bool)
    for pos in np.flatnonzero(inference):
        up = parent_pos[pos]
        while up >= 0 and not below_inference[up]:
            below_inference[up] = True
            up = parent_pos[up]
    for pos in sorted(candidates, key=lambda p: _depth(parent_pos, p)):
        if below_inference[pos]:
            continue
        up, counted_above = parent_pos[pos], False
        while up >= 0:
            if bills[up]:
                counted_above = True
                break
            up = parent_pos[up]
        bills[pos] = not counted_above
    return pd.Series(bills, index=spans.index)


def _depth(parent_pos: np.ndarray, pos: int) -> int:
    depth = 0
    while parent_pos[pos] >= 0 and depth < 10_000:
        pos, depth = parent_pos[pos], depth + 1
    return depth
