"""Reading GenAI meaning out of span attributes: every alias of docs/dialects.md, in order,
through `span_row` (one span read by `span_table.span_columns`, which every reader's spans go through)
and through the one-concept functions alike."""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
import pytest

from profiler.attribution.billing import mark_billable
from profiler.model import SPAN_COLUMNS
from profiler.traces import genai
from profiler.traces.span_table import span_row
from tests.builders import chat, span, spans_frame
from tests.traces.session_oracle import session_of

TRACE = "0af7651916cd43dd8448eb211c80319c"


def row_of(
    attrs: dict[str, Any], name: str = "some span", resource: dict[str, Any] | None = None
) -> dict[str, Any]:
    return span_row(
        trace_id=TRACE,
        span_id="b7ad6b7169203331",
        parent_span_id=None,
        name=name,
        start_ns=1,
        end_ns=2,
        status="unset",
        attrs=attrs,
        resource=resource or {},
    )


def test_span_row_fills_exactly_the_span_columns_but_bills_usage() -> None:
    assert set(row_of({})) == set(SPAN_COLUMNS) - {"bills_usage"}


# ----------------------------------------------------------------------------------------------
# Tokens

INPUT = [
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "ai.usage.inputTokens",
    "ai.usage.promptTokens",
    "ai.usage.tokens",
]
OUTPUT = [
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "ai.usage.outputTokens",
    "ai.usage.completionTokens",
]
CACHE_READ = [
    "gen_ai.usage.cache_read.input_tokens",
    "llm.token_count.prompt_details.cache_read",
    "gen_ai.usage.cache_read_input_tokens",
    "gen_ai.usage.prompt_tokens_details.cached_tokens",
    "gen_ai.usage.cached_tokens",
    "gen_ai.usage.cached_input_tokens",
    "ai.usage.cachedInputTokens",
    "gen_ai.usage.details.cache_read_tokens",
]
CACHE_WRITE = [
    "gen_ai.usage.cache_write.input_tokens",
    "gen_ai.usage.cache_creation.input_tokens",
    "llm.token_count.prompt_details.cache_write",
    "gen_ai.usage.cache_creation_input_tokens",
    "gen_ai.usage.prompt_tokens_details.cache_creation_tokens",
]
REASONING = [
    "gen_ai.usage.reasoning.output_tokens",
    "llm.token_count.completion_details.reasoning",
    "gen_ai.usage.reasoning_tokens",
    "llm.usage.reasoning_tokens",
    "gen_ai.usage.completion_tokens_details.reasoning_tokens",
    "ai.usage.reasoningTokens",
]
TOKEN_ALIASES = {
    "input_tokens": INPUT,
    "output_tokens": OUTPUT,
    "cache_read_tokens": CACHE_READ,
    "cache_write_tokens": CACHE_WRITE,
    "reasoning_tokens": REASONING,
}


def _alias_cases(aliases: dict[str, list[str]]) -> list[tuple[str, str, int]]:
    return [(column, key, rank) for column, keys in aliases.items() for rank, key in enumerate(keys)]


@pytest.mark.parametrize(("column", "key", "rank"), _alias_cases(TOKEN_ALIASES))
def test_every_token_alias_is_read(column: str, key: str, rank: int) -> None:
    attrs = {key: 7}
    assert row_of(attrs)[column] == 7.0
    assert genai.usage_of(attrs)[column] == 7.0
    others = set(TOKEN_ALIASES) - {column}
    assert all(math.isnan(row_of(attrs)[c]) for c in others if c != "input_tokens")


@pytest.mark.parametrize(("column", "key", "rank"), [c for c in _alias_cases(TOKEN_ALIASES) if c[2] > 0])
def test_an_earlier_token_alias_wins_over_a_later_one(column: str, key: str, rank: int) -> None:
    first = TOKEN_ALIASES[column][rank - 1]
    attrs = {key: 5, first: 9}  # the later alias comes first in the dict: order of keys must not matter
    assert row_of(attrs)[column] == 9.0
    assert genai.usage_of(attrs)[column] == 9.0


def test_langfuse_usage_details_count_cache_inside_the_input() -> None:
    details = {
        "input": 100,
        "output": 20,
        "cache_read_input_tokens": 400,
        "cache_creation_input_tokens": 50,
        "output_reasoning_tokens": 5,
    }
    for value in (json.dumps(details), details):
        attrs = {"langfuse.observation.usage_details": value}
        for usage in (row_of(attrs), genai.usage_of(attrs)):
            assert usage["input_tokens"] == 550.0
            assert usage["output_tokens"] == 25.0
            assert usage["cache_read_tokens"] == 400.0
            assert usage["cache_write_tokens"] == 50.0
            assert usage["reasoning_tokens"] == 5.0
    openai_style = {
        "langfuse.observation.usage_details": json.dumps(
            {"input": 200, "input_cached_tokens": 800, "output": 10}
        )
    }
    assert row_of(openai_style)["input_tokens"] == 1000.0
    assert row_of(openai_style)["cache_read_tokens"] == 800.0
    # Flat GenAI attributes win over the Langfuse blob.
    both = {"gen_ai.usage.input_tokens": 3, **openai_style}
    assert row_of(both)["input_tokens"] == 3.0
    assert math.isnan(row_of({"langfuse.observation.usage_details": "not json"})["input_tokens"])


def test_exclusive_cache_counts_are_added_to_the_input() -> None:
    # Anthropic's raw convention: input excludes cache reads and writes.
    attrs = {
        "gen_ai.usage.input_tokens": 100,
        "gen_ai.usage.cache_read.input_tokens": 500,
        "gen_ai.usage.cache_creation.input_tokens": 50,
    }
    assert row_of(attrs)["input_tokens"] == 650.0
    assert genai.usage_of(attrs)["input_tokens"] == 650.0
    # The OTel convention (inclusive) is left alone.
    inclusive = {"gen_ai.usage.input_tokens": 1000, "gen_ai.usage.cache_read.input_tokens": 800}
    assert row_of(inclusive)["input_tokens"] == 1000.0
    # Cache counts without an input count do not invent one.
    assert math.isnan(row_of({"gen_ai.usage.cache_read.input_tokens": 5})["input_tokens"])


@pytest.mark.parametrize("raw", [-3, math.inf, math.nan, True, "many", None, ""])
def test_unreadable_counts_are_missing_not_zero(raw: Any) -> None:
    assert math.isnan(row_of({"gen_ai.usage.output_tokens": raw})["output_tokens"])


def test_numeric_strings_are_counts() -> None:
    assert row_of({"gen_ai.usage.output_tokens": "42"})["output_tokens"] == 42.0


# ----------------------------------------------------------------------------------------------
# Model, provider, session, cost

MODEL = [
    "gen_ai.response.model",
    "llm.response.model_name",
    "ai.response.model",
    "gen_ai.request.model",
    "llm.request.model_name",
    "llm.model_name",
    "ai.model.id",
    "langfuse.observation.model.name",
]


@pytest.mark.parametrize(("rank", "key"), list(enumerate(MODEL)))
def test_every_model_alias_is_read_in_order(rank: int, key: str) -> None:
    assert row_of({key: " gpt-4o "})["model"] == "gpt-4o"
    assert genai.model_of({key: "gpt-4o"}) == "gpt-4o"
    if rank:
        attrs = {key: "later", MODEL[rank - 1]: "earlier"}
        assert row_of(attrs)["model"] == "earlier" and genai.model_of(attrs) == "earlier"


@pytest.mark.parametrize("placeholder", ["unknown", "UNKNOWN", "", "   "])
def test_an_unknown_model_is_missing_and_the_next_alias_is_used(placeholder: str) -> None:
    assert row_of({"gen_ai.response.model": placeholder})["model"] is None
    attrs = {"gen_ai.response.model": placeholder, "gen_ai.request.model": "claude-sonnet-4-5"}
    assert row_of(attrs)["model"] == "claude-sonnet-4-5"
    assert genai.model_of(attrs) == "claude-sonnet-4-5"


PROVIDER = ["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system", "ai.model.provider"]


@pytest.mark.parametrize(("rank", "key"), list(enumerate(PROVIDER)))
def test_every_provider_alias_is_read_in_order(rank: int, key: str) -> None:
    assert row_of({key: "anthropic"})["provider"] == "anthropic"
    if rank:
        attrs = {key: "later", PROVIDER[rank - 1]: "openai"}
        assert row_of(attrs)["provider"] == "openai" and genai.provider_of(attrs) == "openai"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("az.ai.inference", "azure.ai.inference"),
        ("az.ai.openai", "azure.ai.openai"),
        ("vertex_ai", "gcp.vertex_ai"),
        ("gemini", "gcp.gemini"),
        ("xai", "x_ai"),
        ("openai.responses", "openai"),
        ("openai.chat", "openai"),
        (" OpenAI ", "openai"),
        ("aws.bedrock", "aws.bedrock"),
    ],
)
def test_providers_are_normalised(raw: str, expected: str) -> None:
    assert row_of({"gen_ai.system": raw})["provider"] == expected
    assert genai.provider_of({"gen_ai.system": raw}) == expected


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("api.openai.com", "openai"),
        ("api.anthropic.com", "anthropic"),
        ("generativelanguage.googleapis.com", "gcp.gemini"),
        ("myresource.openai.azure.com", "azure.ai.openai"),
        ("localhost", None),
    ],
)
def test_the_provider_is_inferred_from_the_server_address_last(address: str, expected: str | None) -> None:
    attrs = {"server.address": address}
    assert row_of(attrs)["provider"] == expected
    assert genai.provider_of(attrs) == expected
    assert row_of({"server.address": address, "gen_ai.provider.name": "vllm"})["provider"] == "vllm"


SESSION = [
    "gen_ai.conversation.id",
    "session.id",
    "langfuse.session.id",
    "gen_ai.session.id",
    "gen_ai.agent.session_id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.conversation_id",
    "traceloop.association.properties.thread_id",
    "traceloop.association.properties.chat_id",
    "ai.telemetry.metadata.sessionId",
    "claude.session.id",
    "github.copilot.interaction_id",
]


@pytest.mark.parametrize(("rank", "key"), list(enumerate(SESSION)))
def test_every_session_alias_is_read_in_order(rank: int, key: str) -> None:
    assert row_of({key: "conv-1"})["session_id"] == "conv-1"
    if rank:
        attrs = {key: "later", SESSION[rank - 1]: "earlier"}
        assert row_of(attrs)["session_id"] == "earlier"
        assert session_of(attrs, {}, TRACE) == "earlier"


def test_the_session_falls_back_to_the_resource_then_the_trace() -> None:
    assert row_of({}, resource={"session.id": "from-resource"})["session_id"] == "from-resource"
    assert row_of({}, resource={"gen_ai.conversation.id": "conv"})["session_id"] == "conv"
    assert (
        row_of({"session.id": "span-level"}, resource={"session.id": "resource"})["session_id"]
        == "span-level"
    )
    assert row_of({})["session_id"] == TRACE
    assert row_of({"session.id": 12345})["session_id"] == "12345"


def test_the_process_id_comes_from_the_span_else_the_resource() -> None:
    assert row_of({}, resource={"process.pid": 4242})["pid"] == 4242.0
    assert row_of({"process.pid": "17"}, resource={"process.pid": 4242})["pid"] == 17.0
    assert math.isnan(row_of({})["pid"])  # another tool's span that does not say
    assert math.isnan(row_of({}, resource={"process.pid": "not a pid"})["pid"])


@pytest.mark.parametrize(
    "key", ["llm.cost.total", "gen_ai.usage.cost", "operation.cost", "gen_ai.usage.cost_usd"]
)
def test_every_cost_alias_is_read(key: str) -> None:
    assert row_of({key: 0.125})["reported_cost_usd"] == 0.125
    assert genai.reported_cost_of({key: 0.125}) == 0.125


# ----------------------------------------------------------------------------------------------
# Operation


@pytest.mark.parametrize(
    ("attrs", "name", "expected"),
    [
        ({"gen_ai.operation.name": "execute_tool"}, "x", "execute_tool"),
        ({"gen_ai.operation.name": "chat", "openinference.span.kind": "TOOL"}, "x", "chat"),
        ({"openinference.span.kind": "LLM"}, "x", "chat"),
        ({"openinference.span.kind": "EMBEDDING"}, "x", "embeddings"),
        ({"openinference.span.kind": "TOOL"}, "x", "execute_tool"),
        ({"openinference.span.kind": "AGENT"}, "x", "invoke_agent"),
        ({"openinference.span.kind": "CHAIN"}, "x", "invoke_workflow"),
        ({"openinference.span.kind": "RETRIEVER"}, "x", "retrieval"),
        ({"openinference.span.kind": "llm"}, "x", "chat"),
        ({"traceloop.span.kind": "workflow"}, "x", "invoke_workflow"),
        ({"traceloop.span.kind": "task"}, "x", "step"),
        ({"traceloop.span.kind": "agent"}, "x", "invoke_agent"),
        ({"traceloop.span.kind": "tool"}, "x", "execute_tool"),
        ({"llm.request.type": "chat"}, "x", "chat"),
        ({"llm.request.type": "completion"}, "x", "text_completion"),
        ({"llm.request.type": "embedding"}, "x", "embeddings"),
        ({"ai.operationId": "ai.generateText.doGenerate"}, "x", "chat"),
        ({"ai.operationId": "ai.streamText.doStream"}, "x", "chat"),
        ({"ai.operationId": "ai.embed.doEmbed"}, "x", "embeddings"),
        ({"ai.operationId": "ai.generateText"}, "x", "step"),  # the Vercel parent: an aggregate, not a call
        ({"langfuse.observation.type": "GENERATION"}, "x", "chat"),
        ({"langfuse.observation.type": "generation"}, "x", "chat"),
        ({"langfuse.observation.type": "AGENT"}, "x", "invoke_agent"),
        ({"langfuse.observation.type": "TOOL"}, "x", "execute_tool"),
        ({}, "chat gpt-4o", "chat"),
        ({}, "execute_tool search", "execute_tool"),
        ({}, "invoke_agent planner", "invoke_agent"),
        ({}, "embeddings text-embedding-3-small", "embeddings"),
        ({}, "chat", "step"),
        ({}, "chatty helper", "step"),
        ({}, "GET /v1/chat/completions", "step"),
    ],
)
def test_every_operation_dialect_is_read(attrs: dict[str, Any], name: str, expected: str) -> None:
    assert genai.operation_of(attrs, name) == expected
    assert row_of(attrs, name=name)["kind"] == expected


# ----------------------------------------------------------------------------------------------
# Remote or local


@pytest.mark.parametrize(
    ("attrs", "name", "remote"),
    [
        ({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai"}, "chat", True),
        ({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "vllm"}, "chat", False),
        (
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "server.address": "localhost",
            },
            "c",
            False,
        ),
        (
            {
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "server.address": "127.0.0.1",
            },
            "c",
            False,
        ),
        ({"gen_ai.operation.name": "chat", "server.address": "api.openai.com"}, "chat", True),
        ({"gen_ai.operation.name": "chat"}, "chat", False),
        ({"gen_ai.operation.name": "execute_tool", "gen_ai.provider.name": "openai"}, "t", False),
    ],
)
def test_remote_is_an_inference_call_to_someone_elses_hardware(
    attrs: dict[str, Any], name: str, remote: bool
) -> None:
    assert row_of(attrs, name=name)["remote"] is remote


def test_a_trace_session_root_is_flagged_and_end_never_precedes_start() -> None:
    row = span_row(
        trace_id=TRACE,
        span_id="a",
        parent_span_id="",
        name="n",
        start_ns=10,
        end_ns=5,
        status="ok",
        attrs={"sessionprof.session.root": True},
        resource={},
    )
    assert row["session_root"] is True
    assert row["end_ns"] == 10
    assert row["parent_span_id"] is None


# ----------------------------------------------------------------------------------------------
# Which spans bill


def bills(rows: list[dict[str, Any]]) -> dict[str, bool]:
    frame = spans_frame(rows)
    return dict(zip(frame["span_id"], mark_billable(frame), strict=True))


def test_inference_spans_bill_and_aggregates_above_them_do_not() -> None:
    result = bills(
        [
            span("agent", start=0, end=10, kind="invoke_agent", input_tokens=300),
            chat("c1", "agent", start=1, end=2),
            span("tool", "agent", start=3, end=4, kind="execute_tool"),
            chat("c2", "tool", start=3, end=4),  # a model call made inside a tool
        ]
    )
    assert result == {"agent": False, "c1": True, "tool": False, "c2": True}


def test_a_lone_aggregate_bills_once_even_when_nested() -> None:
    result = bills(
        [
            span("wf", start=0, end=10, kind="invoke_workflow", input_tokens=50),
            span("agent", "wf", start=1, end=9, kind="invoke_agent", input_tokens=50),
            span("other", start=20, end=30, kind="invoke_agent", input_tokens=10, trace="t2"),
        ]
    )
    assert result == {"wf": True, "agent": False, "other": True}


def test_an_inference_span_without_usage_does_not_bill() -> None:
    assert bills([chat("c", start=0, end=1, input_tokens=math.nan, output_tokens=math.nan)]) == {"c": False}


def test_mark_billable_keeps_the_frame_index() -> None:
    frame = spans_frame([chat("c", start=0, end=1)])
    frame.index = pd.Index([42])
    assert list(mark_billable(frame).index) == [42]
