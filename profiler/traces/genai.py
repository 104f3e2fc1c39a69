"""Read GenAI meaning out of span attributes, whatever dialect wrote them.

One function per concept, each trying the aliases of docs/dialects.md#attribute-aliases in order.
`profiler.traces.span_table` answers all of them for a batch of decoded spans at once, with the same
answers; every trace format's spans go through it, so our own files and other tools' files are
understood the same way. Which spans' usage is billed is `profiler.attribution.billing`'s.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from instrumentation import semconv
from instrumentation.usage import MAX_TOKENS_PER_CALL
from profiler.model import INFERENCE_KINDS

_OPENINFERENCE_KINDS = {
    "LLM": "chat",
    "EMBEDDING": "embeddings",
    "TOOL": "execute_tool",
    "AGENT": "invoke_agent",
    "CHAIN": "invoke_workflow",
    "RETRIEVER": "retrieval",
}
_TRACELOOP_KINDS = {"workflow": "invoke_workflow", "task": "step", "agent": "invoke_agent",
                    "tool": "execute_tool"}
_TRACELOOP_REQUEST_TYPES = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings"}
_LANGFUSE_TYPES = {"GENERATION": "chat", "AGENT": "invoke_agent", "TOOL": "execute_tool",
                   "EMBEDDING": "embeddings"}
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

_INPUT = (semconv.INPUT_TOKENS, "gen_ai.usage.prompt_tokens", "llm.token_count.prompt",
          "ai.usage.inputTokens", "ai.usage.promptTokens", "ai.usage.tokens")
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
          "llm.request.model_name", "llm.model_name", "ai.model.id", "langfuse.observation.model.name")
_PROVIDER = (semconv.PROVIDER, "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider")
SESSION_KEYS = semconv.SESSION_KEYS
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
#: Alias -> (concept, rank): lets `span_table` resolve every concept in one pass over a span's attributes.
ALIAS_RANK: dict[str, tuple[str, int]] = {
    key: (concept, rank)
    for concept, keys in (("input_tokens", _INPUT), ("output_tokens", _OUTPUT),
                          ("cache_read_tokens", _CACHE_READ), ("cache_write_tokens", _CACHE_WRITE),
                          ("reasoning_tokens", _REASONING),
                          ("model", _MODEL), ("provider", _PROVIDER), ("session", SESSION_KEYS),
                          ("cost", _COST))
    for rank, key in enumerate(keys)
}
_LOCAL_HOSTS = ("localhost", "127.", "0.0.0.0", "::1", "[::1]", "host.docker.internal")
#: API hosts (the host itself or any subdomain) -> provider, for spans that name only the endpoint.
_PROVIDER_HOSTS = {
    "api.openai.com": "openai",
    "openai.azure.com": "azure.ai.openai",
    "api.anthropic.com": "anthropic",
    "generativelanguage.googleapis.com": "gcp.gemini",
    "aiplatform.googleapis.com": "gcp.vertex_ai",
    "api.mistral.ai": "mistral_ai",
    "api.groq.com": "groq",
    "api.deepseek.com": "deepseek",
    "api.x.ai": "x_ai",
    "api.cohere.com": "cohere",
    "api.perplexity.ai": "perplexity",
}
#: Prefixes that say where a model is served, not which model it is (pydantic-ai's `openai:gpt-4o`,
#: LiteLLM's and OpenRouter's `anthropic/claude-...`, Google's `models/gemini-...`).
_SERVING_PREFIXES = frozenset({
    "openai", "anthropic", "google", "google-gla", "google-vertex", "gemini", "vertex_ai", "vertexai",
    "gcp.vertex_ai", "gcp.gemini", "models", "azure", "azure_ai", "bedrock", "groq", "mistral", "mistral_ai",
    "cohere", "deepseek", "openrouter", "together", "together_ai", "fireworks", "fireworks_ai", "ollama", "vllm",
    "xai", "x_ai", "huggingface", "perplexity"})
#: A snapshot date (`-2024-08-06`, `-20241022`) or `-latest` at the end of a model name.
_MODEL_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8}|latest)$")
#: Langfuse's usage blob: `input` excludes the cache and any other `input_*` part (so does `output`).
LANGFUSE_USAGE = "langfuse.observation.usage_details"


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


def count_of(value: Any, ceiling: float = math.inf) -> float:
    """A count (or a cost) as float; NaN when absent, unreadable, negative, not finite, or above
    `ceiling` (an integer: above int64 too)."""
    if type(value) is int:  # the common case (bool is not int here: `type` is exact)
        return float(value) if 0 <= value < 2**63 and value <= ceiling else math.nan
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        count = float(value)
    except (TypeError, ValueError, OverflowError):
        return math.nan
    return count if math.isfinite(count) and 0 <= count <= ceiling else math.nan


def token_count_of(value: Any) -> float:
    """A token count as float; NaN when absent, unreadable, or impossible: negative, not finite,
    or above `MAX_TOKENS_PER_CALL` (10^9 for one call)."""
    return count_of(value, MAX_TOKENS_PER_CALL)


def usage_of(attrs: Mapping[str, Any]) -> dict[str, float]:
    """Return the five token counts, input inclusive of cache as OTel writes it.

    When cache reads plus writes exceed the input count, the producer wrote Anthropic's raw,
    exclusive convention; the cache counts are then added to the input.
    """
    usage = {
        "input_tokens": token_count_of(first(attrs, _INPUT)),
        "output_tokens": token_count_of(first(attrs, _OUTPUT)),
        "cache_read_tokens": token_count_of(first(attrs, _CACHE_READ)),
        "cache_write_tokens": token_count_of(first(attrs, _CACHE_WRITE)),
        "reasoning_tokens": token_count_of(first(attrs, _REASONING)),
    }
    cached = sum(v for v in (usage["cache_read_tokens"], usage["cache_write_tokens"]) if not math.isnan(v))
    if not math.isnan(usage["input_tokens"]) and cached > usage["input_tokens"]:
        usage["input_tokens"] += cached
    if all(math.isnan(v) for v in usage.values()):
        usage = langfuse_usage(attrs) or usage
    return usage


def langfuse_usage(attrs: Mapping[str, Any]) -> dict[str, float] | None:
    """The five counts from Langfuse's usage details (a JSON object), input inclusive of cache."""
    details = attrs.get(LANGFUSE_USAGE)
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except (ValueError, RecursionError):
            return None
    if not isinstance(details, dict):
        return None
    counts = {str(k): token_count_of(v) for k, v in details.items()}

    def side(name: str) -> float:  # `input` plus `input_*` parts and Anthropic's `cache_*_input_tokens`
        parts = [v for k, v in counts.items() if not math.isnan(v)
                 and (k == name or k.startswith(f"{name}_") or k.endswith(f"_{name}_tokens"))]
        return float(sum(parts)) if parts else math.nan

    def pick(*keys: str) -> float:
        return next((counts[k] for k in keys if not math.isnan(counts.get(k, math.nan))), math.nan)

    return {
        "input_tokens": side("input"),
        "output_tokens": side("output"),
        "cache_read_tokens": pick("input_cached_tokens", "input_cache_read", "cache_read_input_tokens"),
        "cache_write_tokens": pick("input_cache_creation", "input_cache_write",
                                   "cache_creation_input_tokens"),
        "reasoning_tokens": pick("output_reasoning_tokens", "output_reasoning"),
    }


def model_of(attrs: Mapping[str, Any]) -> str | None:
    """Return the model that served the call; `unknown` and empty names count as missing."""
    return next((name for key in _MODEL if (name := model_name(attrs.get(key))) is not None), None)


def model_name(value: Any) -> str | None:
    """A model name as written, stripped; None for an empty name or `unknown` (see `model_of`)."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped if stripped and stripped.lower() != "unknown" else None


def model_keys(attrs: Mapping[str, Any], model: Any = None) -> frozenset[str]:
    """Every name a span gives its model, normalised, so that two instrumentations' spans of one
    call can be matched: the request and the response model in any dialect (and `model`, the span
    table's answer), in lower case, without a serving prefix (`openai:gpt-4o`, `anthropic/claude-...`,
    `models/gemini-...`), each also without a snapshot date or `-latest` (a request for `gpt-4o` is
    answered by `gpt-4o-2024-08-06`). Two spans name the same model when their keys meet; a span
    that names none has none."""
    names = [model_name(attrs.get(key)) for key in _MODEL]
    names.append(model_name(model))
    return frozenset(form for name in names if name is not None for form in _model_forms(name))


def _model_forms(name: str) -> tuple[str, ...]:
    name = name.lower()
    while True:  # a prefix may repeat: `openrouter/anthropic/claude-3.5-sonnet`
        cut = min((i for i in (name.find("/"), name.find(":")) if i > 0), default=-1)
        if cut < 0 or name[:cut] not in _SERVING_PREFIXES or cut == len(name) - 1:
            break
        name = name[cut + 1:]
    undated = _MODEL_SNAPSHOT.sub("", name)
    return (name, undated) if undated and undated != name else (name,)


def provider_of(attrs: Mapping[str, Any]) -> str | None:
    """Return the provider, normalised to the GenAI well-known values; else inferred from the endpoint."""
    return normalise_provider(first(attrs, _PROVIDER)) or provider_from_address(attrs)


def provider_from_address(attrs: Mapping[str, Any]) -> str | None:
    address = attrs.get(semconv.SERVER_ADDRESS)
    if not isinstance(address, str):
        return None
    labels = address.strip().lower().split(".")
    for start in range(len(labels)):
        provider = _PROVIDER_HOSTS.get(".".join(labels[start:]))
        if provider is not None:
            return provider
    return None


def normalise_provider(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    if value.startswith("az.ai."):
        value = "azure.ai." + value[len("az.ai."):]
    return _PROVIDER_ALIASES.get(value, value) or None


def reported_cost_of(attrs: Mapping[str, Any]) -> float:
    """Return a USD cost that the producer recorded, or NaN."""
    return count_of(first(attrs, _COST))


def is_remote(kind: str, provider: str | None, attrs: Mapping[str, Any]) -> bool:
    """Whether a step runs on someone else's hardware (a hosted API), so no local GPU share."""
    return kind in INFERENCE_KINDS and calls_away(attrs.get(semconv.SERVER_ADDRESS), provider)


def calls_away(address: Any, provider: str | None) -> bool:
    """Whether a model call goes to another machine: by its endpoint, else by its provider."""
    if isinstance(address, str) and address:
        return not address.lower().startswith(_LOCAL_HOSTS)
    return provider is not None and provider not in SELF_HOSTED_PROVIDERS
