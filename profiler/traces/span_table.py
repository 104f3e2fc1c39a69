"""Decoded spans in, the columns of `Run.spans` out: `SpanRecord` is one span as a reader decoded it,
`SpanBatch` many held column by column, and `span_arrays` reads their GenAI meaning a batch at a
time, with the answers of `profiler.traces.genai`'s one-concept functions (`span_row` for a single span).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from instrumentation import semconv
from profiler.model import INFERENCE_KINDS, TOKEN_COLUMNS
from profiler.traces.genai import (
    ALIAS_RANK,
    LANGFUSE_USAGE,
    SESSION_KEYS,
    calls_away,
    count_of,
    first,
    langfuse_usage,
    model_name,
    normalise_provider,
    operation_of,
    provider_from_address,
    token_count_of,
)


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
        if not records:
            return cls(*([] for _ in SpanRecord._fields))
        return cls(*map(list, zip(*records, strict=True)))

    def extend(self, other: Sequence[SpanRecord] | SpanBatch) -> None:
        """Append records, or another batch."""
        columns = other if isinstance(other, SpanBatch) else zip(*other, strict=True)
        for mine, theirs in zip(self, columns, strict=False):  # no records: no columns either
            mine.extend(theirs)


def span_columns(batch: SpanBatch) -> dict[str, list[Any]]:
    """Turn decoded spans into the columns of `Run.spans` (all but `bills_usage`), a list each.

    Same answers as `operation_of`, `usage_of`, `model_of`, `provider_of`, the session rule and
    `reported_cost_of`, but a batch at a time (see `span_arrays`).
    """
    return {column: values.tolist() if isinstance(values, np.ndarray) else values
            for column, values in span_arrays(batch).items()}


def span_arrays(batch: SpanBatch, rejected: list[Rejected] | None = None) -> dict[str, list[Any] | np.ndarray]:
    """`span_columns`, with the number and bool columns as numpy arrays of their `SPAN_COLUMNS` dtype
    (the times as lists where one is not an int64): no Python object per value.

    Spans whose attributes have the same keys (most spans of a file, which one instrumentation
    wrote) share one plan of which alias answers each concept, and each concept is read down a
    column instead of span by span, for only the spans whose keys can answer it. A token count or
    cost that is present but cannot be real (see `genai.token_count_of`) is left out (NaN), and
    named in `rejected`, when given.
    """
    n = len(batch.trace_id)
    trace_ids, span_ids, parents, names, starts, ends, statuses, attrs, resources = batch
    operation = semconv.OPERATION
    kinds = [attrs_.get(operation) for attrs_ in attrs]
    found: dict[str, list[Any]] = {concept: [None] * n for concept in _OBJECT_CONCEPTS}
    numbers = _NumberColumns(n, rejected is not None)
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
        if LANGFUSE_USAGE in shape:
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
            for i, value in zip(rows, values, strict=True):
                column[i] = value
        if semconv.SESSION_ROOT in shape:
            session_roots[rows] = [bool(attrs_.get(semconv.SESSION_ROOT, False)) for attrs_ in group_attrs]
        if semconv.PROCESS_PID in shape:
            for i, attrs_ in zip(rows, group_attrs, strict=True):
                pids[i] = attrs_[semconv.PROCESS_PID]

    providers = found["provider"]
    for i in with_address:  # spans that name no provider may name its endpoint
        if providers[i] is None:
            providers[i] = provider_from_address(attrs[i])
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
    if rejected is not None:
        rejected.extend(Rejected(span_ids[i], names[i], concept, value) for i, concept, value in numbers.rejected)
    return columns


class Rejected(NamedTuple):
    """A token count or cost present on a span but left out: it cannot be real."""

    span_id: str
    name: str
    concept: str
    """The column it would have filled: `input_tokens`, ..., `cost`."""
    value: Any


def _normalised_providers(values: list[Any]) -> list[str | None]:
    """`normalise_provider` of each value (a file names few providers)."""
    return _per_distinct(normalise_provider, values)


def _remote_calls(addresses: list[Any], providers: list[str | None]) -> list[bool]:
    """`is_remote` of model calls, given each one's `server.address` and provider."""
    return _per_distinct(lambda pair: calls_away(*pair), list(zip(addresses, providers, strict=True)))


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
        for i, attrs_ in zip(rows, group_attrs, strict=True):
            kind = kinds[i]
            if not isinstance(kind, str) or not kind:
                kinds[i] = operation_of(attrs_, names[i])
        return
    named_only = _OPERATION_KEYS.isdisjoint(shape)  # another dialect's way of saying it, or the name's
    for i, attrs_ in zip(rows, group_attrs, strict=True):
        name = names[i]
        kind = by_name.get(name) if named_only else None
        if kind is None:
            kind = operation_of(attrs_, name)
            if named_only:
                by_name[name] = kind
        kinds[i] = kind


class _NumberColumns:
    """The counts and costs of a batch, gathered a shape at a time and set in one numpy step each;
    NaN for the spans whose keys do not answer them, and for values that cannot be real (noted in
    `rejected` as (row, concept, value) when `note` is set)."""

    def __init__(self, n: int, note: bool = False) -> None:
        self.n = n
        self.note = note
        self.rows: dict[str, list[int]] = {concept: [] for concept in _NUMBER_CONCEPTS}
        self.values: dict[str, list[float]] = {concept: [] for concept in _NUMBER_CONCEPTS}
        self.rejected: list[tuple[int, str, Any]] = []

    def add(self, concept: str, rows: list[int], values: list[Any]) -> None:
        counts = list(map(token_count_of if concept in TOKEN_COLUMNS else count_of, values))
        self.rows[concept].extend(rows)
        self.values[concept].extend(counts)
        # NaN where no value was given is no news; where one was, it was left out. (`count_of` returns
        # the `math.nan` object itself, which `list.count` finds by identity, at C speed.)
        if self.note and counts.count(math.nan) > values.count(None):
            self.rejected.extend((row, concept, value) for row, value, count in zip(rows, values, counts, strict=True)
                                 if value is not None and math.isnan(count))

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
                value = first(resource, SESSION_KEYS) if resource else None
                pid = resource.get(semconv.PROCESS_PID) if resource else None
                known = of_resource[id(resource)] = (str(value) if value is not None else None, pid)
            if session is None:
                sessions[i] = known[0] if known[0] is not None else trace_ids[i]
            if not pids[i]:
                pids[i] = known[1]


def _counts(values: list[Any]) -> np.ndarray:
    """`count_of` of each value (NaN for None) as a float64 array."""
    if values.count(None) == len(values):  # none known (pids, mostly): no call per span
        return np.full(len(values), math.nan)
    return np.fromiter(map(count_of, values), dtype=np.float64, count=len(values))


def _times(starts: list[int],
           ends: list[int | None]) -> tuple[np.ndarray | list[Any], np.ndarray | list[Any]]:
    """Start and end times, an end before its start moved to the start: int64 arrays, or lists
    where a time is missing or beyond int64 (which the span table then refuses as it would)."""
    try:
        start_ns = np.array(starts, dtype=np.int64)
        end_ns = np.array(ends, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        return starts, [end if end is None or end > start else start
                        for start, end in zip(starts, ends, strict=True)]
    return start_ns, np.maximum(end_ns, start_ns)


#: The attributes `operation_of` reads; spans with none of them are told apart by their name alone.
_OPERATION_KEYS = frozenset({semconv.OPERATION, "openinference.span.kind", "llm.request.type",
                             "traceloop.span.kind", "ai.operationId", "langfuse.observation.type"})
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
            hit = ALIAS_RANK.get(key)
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
        values = [model_name(attrs_[keys[0]]) for attrs_ in group_attrs]
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
    return next((name for key in keys if (name := model_name(attrs[key])) is not None), None)


def _add_langfuse_usage(columns: dict[str, Any], attrs: list[dict[str, Any]], rows: list[int]) -> None:
    """Spans (of `rows`: those with Langfuse's usage blob) with no usage of their own take their
    counts from the blob."""
    for i in rows:
        if all(math.isnan(columns[c][i]) for c in TOKEN_COLUMNS):
            for column, value in (langfuse_usage(attrs[i]) or {}).items():
                columns[column][i] = value
