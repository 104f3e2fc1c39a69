"""Read GenAI meaning out of span attributes, whatever dialect wrote them.

One function per concept, each trying the aliases of `reference/genai-attributes.md` in order, and
`span_columns`, which answers all of them for a batch of decoded spans at once (`span_row` for one).
Every trace format's spans go through it, so our own files and other tools' files are understood
the same way. Which spans' usage is billed is `profiler.billing`'s.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

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
#: Alias -> (concept, rank): lets `span_row` resolve every concept in one pass over a span's attributes.
_ALIAS_RANK: dict[str, tuple[str, int]] = {
    key: (concept, rank)
    for concept, keys in (("input_tokens", _INPUT), ("output_tokens", _OUTPUT),
                          ("cache_read_tokens", _CACHE_READ), ("cache_write_tokens", _CACHE_WRITE),
                          ("reasoning_tokens", _REASONING),
                          ("model", _MODEL), ("provider", _PROVIDER), ("session", _SESSION), ("cost", _COST))
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
#: Langfuse's usage blob: `input` excludes the cache and any other `input_*` part (so does `output`).
_LANGFUSE_USAGE = "langfuse.observation.usage_details"


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
    if type(value) is int:  # the common case (bool is not int here: `type` is exact)
        return float(value) if 0 <= value < 2**63 else math.nan
    if value is None or isinstance(value, bool):
        return math.nan
    try:
        count = float(value)
    except (TypeError, ValueError, OverflowError):
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
    cached = sum(v for v in (usage["cache_read_tokens"], usage["cache_write_tokens"]) if not math.isnan(v))
    if not math.isnan(usage["input_tokens"]) and cached > usage["input_tokens"]:
        usage["input_tokens"] += cached
    if all(math.isnan(v) for v in usage.values()):
        usage = _langfuse_usage(attrs) or usage
    return usage


def _langfuse_usage(attrs: Mapping[str, Any]) -> dict[str, float] | None:
    """The five counts from Langfuse's usage details (a JSON object), input inclusive of cache."""
    details = attrs.get(_LANGFUSE_USAGE)
    if isinstance(details, str):
        try:
            details = json.loads(details)
        except ValueError:
            return None
    if not isinstance(details, dict):
        return None
    counts = {str(k): _count(v) for k, v in details.items()}

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
    return next((name for key in _MODEL if (name := _model_name(attrs.get(key))) is not None), None)


def provider_of(attrs: Mapping[str, Any]) -> str | None:
    """Return the provider, normalised to the GenAI well-known values; else inferred from the endpoint."""
    return _normalise_provider(first(attrs, _PROVIDER)) or _provider_from_address(attrs)


def _provider_from_address(attrs: Mapping[str, Any]) -> str | None:
    address = attrs.get(semconv.SERVER_ADDRESS)
    if not isinstance(address, str):
        return None
    labels = address.strip().lower().split(".")
    for start in range(len(labels)):
        provider = _PROVIDER_HOSTS.get(".".join(labels[start:]))
        if provider is not None:
            return provider
    return None


def _normalise_provider(value: Any) -> str | None:
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
    return kind in INFERENCE_KINDS and _calls_away(attrs.get(semconv.SERVER_ADDRESS), provider)


def _calls_away(address: Any, provider: str | None) -> bool:
    """Whether a model call goes to another machine: by its endpoint, else by its provider."""
    if isinstance(address, str) and address:
        return not address.lower().startswith(_LOCAL_HOSTS)
    return provider is not None and provider not in SELF_HOSTED_PROVIDERS


class SpanRecord(NamedTuple):
    """One span as a reader decoded it, before its GenAI meaning is read (see `span_columns`)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int | None
    """None for a span that has not ended."""
    status: str
    attrs: dict[str, Any]
    resource: Mapping[str, Any]


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
    """Turn one decoded span into a row of `Run.spans` (see `model.SPAN_COLUMNS`): `span_columns`
    for a single span."""
    batch = SpanBatch.of([SpanRecord(trace_id, span_id, parent_span_id, name, start_ns, end_ns, status, attrs,
                                     resource)])
    return {column: values[0] for column, values in span_columns(batch).items()}


class SpanBatch(NamedTuple):
    """Decoded spans held column by column: the fields of `SpanRecord`, a list each."""

    trace_id: list[str]
    span_id: list[str]
    parent_span_id: list[str | None]
    name: list[str]
    start_ns: list[int]
    end_ns: list[int | None]
    status: list[str]
    attrs: list[dict[str, Any]]
    resource: list[Mapping[str, Any]]

    @classmethod
    def of(cls, records: Sequence[SpanRecord] = ()) -> SpanBatch:
        """A batch of these records (an empty batch by default)."""
        return cls(*map(list, zip(*records))) if records else cls(*([] for _ in SpanRecord._fields))

    def extend(self, other: Sequence[SpanRecord] | SpanBatch) -> None:
        """Append records, or another batch."""
        columns = other if isinstance(other, SpanBatch) else zip(*other)
        for mine, theirs in zip(self, columns):
            mine.extend(theirs)


def span_columns(batch: SpanBatch) -> dict[str, list[Any]]:
    """Turn decoded spans into the columns of `Run.spans` (all but `bills_usage`), a list each.

    Same answers as `operation_of`, `usage_of`, `model_of`, `provider_of`, `session_of` and
    `reported_cost_of`, but a batch at a time (see `span_arrays`).
    """
    return {column: values.tolist() if isinstance(values, np.ndarray) else values
            for column, values in span_arrays(batch).items()}


def span_arrays(batch: SpanBatch) -> dict[str, list[Any] | np.ndarray]:
    """`span_columns`, with the number and bool columns as numpy arrays of their `SPAN_COLUMNS` dtype
    (the times as lists where one is not an int64): no Python object per value.

    Spans whose attributes have the same keys (most spans of a file, which one instrumentation
    wrote) share one plan of which alias answers each concept, and each concept is read down a
    column instead of span by span, for only the spans whose keys can answer it.
    """
    n = len(batch.trace_id)
    trace_ids, span_ids, parents, names, starts, ends, statuses, attrs, resources = batch
    operation = semconv.OPERATION
    kinds = [attrs_.get(operation) for attrs_ in attrs]
    found: dict[str, list[Any]] = {concept: [None] * n for concept in _OBJECT_CONCEPTS}
    numbers = _NumberColumns(n)
    pids: list[Any] = [None] * n
    session_roots = np.zeros(n, dtype=bool)
    by_name: dict[str, str] = {}  # the operation of spans that only their name can tell
    with_address: list[int] = []
    with_langfuse_usage: list[int] = []
    for shape, rows in _rows_by_shape(attrs).items():
        group_attrs = [attrs[i] for i in rows]
        _read_kinds(kinds, rows, group_attrs, names, shape, by_name)
        if semconv.SERVER_ADDRESS in shape:
            with_address.extend(rows)
        if _LANGFUSE_USAGE in shape:
            with_langfuse_usage.extend(rows)
        for concept, keys in _plan(shape):
            values = _pick(group_attrs, keys, concept == "model")
            if concept in _NUMBER_CONCEPTS:
                numbers.add(concept, rows, values)
                continue
            if concept == "provider":
                values = _normalised_providers(values)
            elif concept == "session":
                values = [str(value) if value is not None else None for value in values]
            column = found[concept]
            for i, value in zip(rows, values):
                column[i] = value
        if semconv.SESSION_ROOT in shape:
            session_roots[rows] = [bool(attrs_.get(semconv.SESSION_ROOT, False)) for attrs_ in group_attrs]
        if semconv.PROCESS_PID in shape:
            for i, attrs_ in zip(rows, group_attrs):
                pids[i] = attrs_[semconv.PROCESS_PID]

    providers = found["provider"]
    for i in with_address:  # spans that name no provider may name its endpoint
        if providers[i] is None:
            providers[i] = _provider_from_address(attrs[i])
    sessions = found["session"]
    _add_resource_facts(sessions, pids, resources, trace_ids)
    tokens = {column: numbers.column(column) for column in TOKEN_COLUMNS}
    # The exclusive-cache rule of `usage_of`: cache counts above the input mean the input excluded them.
    cached = np.nan_to_num(tokens["cache_read_tokens"]) + np.nan_to_num(tokens["cache_write_tokens"])
    exclusive = cached > tokens["input_tokens"]  # False where the input is NaN
    tokens["input_tokens"][exclusive] += cached[exclusive]
    inference = [i for i, kind in enumerate(kinds) if kind in INFERENCE_KINDS]
    remote = np.zeros(n, dtype=bool)
    remote[inference] = _remote_calls([attrs[i].get(semconv.SERVER_ADDRESS) for i in inference],
                                      [providers[i] for i in inference])
    start_ns, end_ns = _times(starts, ends)
    columns: dict[str, list[Any] | np.ndarray] = {
        "trace_id": trace_ids,
        "span_id": span_ids,
        "parent_span_id": [parent or None for parent in parents],
        "session_id": sessions,
        "name": names,
        "kind": kinds,
        "status": statuses,
        "start_ns": start_ns,
        "end_ns": end_ns,
        "model": found["model"],
        "provider": providers,
        "reported_cost_usd": numbers.column("cost"),
        "remote": remote,
        "session_root": session_roots,
        "pid": _counts(pids),
        "attributes": attrs,
        **tokens,
    }
    _add_langfuse_usage(columns, attrs, with_langfuse_usage)
    return columns


def _normalised_providers(values: list[Any]) -> list[str | None]:
    """`_normalise_provider` of each value (a file names few providers)."""
    return _per_distinct(_normalise_provider, values)


def _remote_calls(addresses: list[Any], providers: list[str | None]) -> list[bool]:
    """`is_remote` of model calls, given each one's `server.address` and provider."""
    return _per_distinct(lambda pair: _calls_away(*pair), list(zip(addresses, providers)))


def _per_distinct(function: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """`function` of each value, called once per distinct value (each value where one cannot be
    hashed: a list attribute). Equal values must have equal answers, as they do here."""
    try:
        known = {value: function(value) for value in set(values)}
    except TypeError:
        return list(map(function, values))
    return list(map(known.__getitem__, values))


def _rows_by_shape(attrs: list[dict[str, Any]]) -> dict[tuple[str, ...], list[int]]:
    """The positions of the spans of each attribute shape (their keys, in order)."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, shape in enumerate(map(tuple, attrs)):
        group = groups.get(shape)
        if group is None:
            groups[shape] = [i]
        else:
            group.append(i)
    return groups


def _read_kinds(kinds: list[Any], rows: list[int], group_attrs: list[dict[str, Any]], names: list[str],
                shape: tuple[str, ...], by_name: dict[str, str]) -> None:
    """Set the operation of the spans of one shape, where their `gen_ai.operation.name` does not give it."""
    if semconv.OPERATION in shape:
        for i, attrs_ in zip(rows, group_attrs):
            kind = kinds[i]
            if not isinstance(kind, str) or not kind:
                kinds[i] = operation_of(attrs_, names[i])
        return
    named_only = _OPERATION_KEYS.isdisjoint(shape)  # another dialect's way of saying it, or the name's
    for i, attrs_ in zip(rows, group_attrs):
        name = names[i]
        kind = by_name.get(name) if named_only else None
        if kind is None:
            kind = operation_of(attrs_, name)
            if named_only:
                by_name[name] = kind
        kinds[i] = kind


class _NumberColumns:
    """The counts and costs of a batch, gathered a shape at a time and set in one numpy step each;
    NaN for the spans whose keys do not answer them."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.rows: dict[str, list[int]] = {concept: [] for concept in _NUMBER_CONCEPTS}
        self.values: dict[str, list[float]] = {concept: [] for concept in _NUMBER_CONCEPTS}

    def add(self, concept: str, rows: list[int], values: list[Any]) -> None:
        self.rows[concept].extend(rows)
        self.values[concept].extend(map(_count, values))

    def column(self, concept: str) -> np.ndarray:
        column = np.full(self.n, math.nan)
        column[self.rows[concept]] = self.values[concept]
        return column


def _add_resource_facts(sessions: list[str | None], pids: list[Any], resources: list[Mapping[str, Any]],
                        trace_ids: list[str]) -> None:
    """Give spans without a session of their own, or without a pid, their resource's; a span
    whose resource names no session either falls back to its trace."""
    of_resource: dict[int, tuple[str | None, Any]] = {}  # a resource is shared by many spans
    for i, session in enumerate(sessions):
        if session is None or not pids[i]:
            resource = resources[i]
            known = of_resource.get(id(resource))
            if known is None:
                value = first(resource, _SESSION) if resource else None
                known = of_resource[id(resource)] = (
                    str(value) if value is not None else None, resource.get(semconv.PROCESS_PID) if resource else None)
            if session is None:
                sessions[i] = known[0] if known[0] is not None else trace_ids[i]
            if not pids[i]:
                pids[i] = known[1]


def _counts(values: list[Any]) -> np.ndarray:
    """`_count` of each value (NaN for None) as a float64 array."""
    if values.count(None) == len(values):  # none known (pids, mostly): no call per span
        return np.full(len(values), math.nan)
    return np.fromiter(map(_count, values), dtype=np.float64, count=len(values))


def _times(starts: list[int], ends: list[int | None]) -> tuple[np.ndarray | list[Any], np.ndarray | list[Any]]:
    """Start and end times, an end before its start moved to the start: int64 arrays, or lists
    where a time is missing or beyond int64 (which the span table then refuses as it would)."""
    try:
        start_ns = np.array(starts, dtype=np.int64)
        end_ns = np.array(ends, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return starts, [end if end is None or end > start else start for start, end in zip(starts, ends)]
    return start_ns, np.maximum(end_ns, start_ns)


#: The attributes `operation_of` reads; spans with none of them are told apart by their name alone.
_OPERATION_KEYS = frozenset({semconv.OPERATION, "openinference.span.kind", "llm.request.type", "traceloop.span.kind",
                             "ai.operationId", "langfuse.observation.type"})
_OBJECT_CONCEPTS = ("model", "provider", "session")
_NUMBER_CONCEPTS = frozenset({*TOKEN_COLUMNS, "cost"})
_PLANS: dict[tuple[str, ...], tuple[tuple[str, tuple[str, ...]], ...]] = {}
_MAX_PLANS = 4096


def _plan(shape: tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """For spans with these attribute keys: each concept they answer, with its keys best first."""
    plan = _PLANS.get(shape)
    if plan is None:
        by_concept: dict[str, list[tuple[int, str]]] = {}
        for key in shape:
            hit = _ALIAS_RANK.get(key)
            if hit is not None:
                by_concept.setdefault(hit[0], []).append((hit[1], key))
        plan = tuple((concept, tuple(key for _, key in sorted(keys))) for concept, keys in by_concept.items())
        if len(_PLANS) >= _MAX_PLANS:  # a file of ever-new shapes must not grow the cache forever
            _PLANS.clear()
        _PLANS[shape] = plan
    return plan


def _pick(group_attrs: list[dict[str, Any]], keys: tuple[str, ...], is_model: bool) -> list[Any]:
    """The best alias's value per span: the first of `keys` that is set (for a model: a usable name)."""
    if is_model:
        values = [_model_name(attrs_[keys[0]]) for attrs_ in group_attrs]
    else:
        values = [None if (value := attrs_[keys[0]]) == "" else value for attrs_ in group_attrs]
    if len(keys) > 1:
        for j, value in enumerate(values):
            if value is None:
                values[j] = _first_set(group_attrs[j], keys[1:], is_model)
    return values


def _first_set(attrs: Mapping[str, Any], keys: tuple[str, ...], is_model: bool) -> Any:
    if not is_model:
        return first(attrs, keys)
    return next((name for key in keys if (name := _model_name(attrs[key])) is not None), None)


def _model_name(value: Any) -> str | None:
    """A model name as written, stripped; None for an empty name or `unknown` (see `model_of`)."""
    if not isinstance(value, str):
        return None
    stripped = value.strip()
    return stripped if stripped and stripped.lower() != "unknown" else None


def _add_langfuse_usage(columns: dict[str, Any], attrs: list[dict[str, Any]], rows: list[int]) -> None:
    """Spans (of `rows`: those with Langfuse's usage blob) with no usage of their own take their
    counts from the blob."""
    for i in rows:
        if all(math.isnan(columns[c][i]) for c in TOKEN_COLUMNS):
            for column, value in (_langfuse_usage(attrs[i]) or {}).items():
                columns[column][i] = value
