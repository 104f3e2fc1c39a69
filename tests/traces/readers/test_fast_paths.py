"""The fast paths the readers take for big files give the same answers as the plain ones."""

from __future__ import annotations

import itertools
import json
import math
import random
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from profiler.attribution.billing import mark_billable
from profiler.attribution.tree import parent_positions
from profiler.model import SPAN_COLUMNS, frame_from_rows
from profiler.pricing.api import ApiPricer
from profiler.traces import genai
from profiler.traces.readers import otlp, otlp_typed
from profiler.traces.span_table import SpanBatch, SpanRecord, span_columns, span_row
from tests.traces.session_oracle import session_of

_KEYS = sorted(genai.ALIAS_RANK) + ["gen_ai.operation.name", "server.address", "other.key"]
_VALUES = st.one_of(st.none(), st.just(""), st.just("unknown"), st.just(" gpt-4o "), st.just("openai"),
                    st.just("az.ai.inference"), st.integers(-5, 10**7), st.floats(allow_nan=True),
                    st.text(max_size=6), st.booleans(), st.just("localhost:8000"), st.just("api.openai.com"),
                    st.just("vllm"), st.just(["openai"]))


@settings(max_examples=150, deadline=None)
@given(attrs=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=12),
       resource=st.dictionaries(st.sampled_from(["session.id", "service.name"]), st.text(max_size=4),
                                max_size=2))
def test_span_row_agrees_with_the_one_concept_functions(
        attrs: dict[str, Any], resource: dict[str, Any]) -> None:
    row = span_row(trace_id="t" * 32, span_id="s" * 16, parent_span_id=None, name="chat x", start_ns=5,
                   end_ns=3, status="ok", attrs=attrs, resource=resource)
    usage = genai.usage_of(attrs)
    for column, value in usage.items():
        assert (math.isnan(value) and math.isnan(row[column])) or row[column] == value, column
    assert row["model"] == genai.model_of(attrs)
    assert row["provider"] == genai.provider_of(attrs)
    assert row["kind"] == genai.operation_of(attrs, "chat x")
    assert row["remote"] == genai.is_remote(row["kind"], row["provider"], attrs)
    assert row["session_id"] == session_of(attrs, resource, "t" * 32)
    cost = genai.reported_cost_of(attrs)
    assert (math.isnan(cost) and math.isnan(row["reported_cost_usd"])) or row["reported_cost_usd"] == cost
    assert row["end_ns"] == 5


def test_linear_api_prices_are_exactly_genai_prices() -> None:
    rng = random.Random(4)
    fast = ApiPricer()
    models = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-20250514"),
              (None, "claude-opus-4.6-1m"), ("google", "gemini-2.5-pro"), (None, "gpt-5"),
              ("x", "not-a-model")]
    for provider, model in models:
        for _ in range(15):
            inp = rng.randint(0, 400_000)
            read = rng.choice([0, rng.randint(0, inp)])
            write = rng.choice([0, rng.randint(0, inp - read)])
            start_ns = rng.randint(1_700_000_000, 1_770_000_000) * 10**9
            key = (model, provider, inp, rng.randint(0, 5000), read, write, start_ns // 86_400_000_000_000)
            got = fast.price(model=model, provider=provider, input_tokens=key[2], output_tokens=key[3],
                             cache_read_tokens=read, cache_write_tokens=write, start_ns=start_ns)
            want = ApiPricer()._lookup(key, start_ns)  # the plain, per-call genai-prices path
            assert got.source == want.source and got.detail == want.detail
            assert (math.isnan(got.cost_usd) and math.isnan(want.cost_usd)) or got.cost_usd == want.cost_usd


def _frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    base = {"trace_id": "t", "parent_span_id": None, "kind": "step", "start_ns": 0, "end_ns": 10}
    return frame_from_rows([{**base, **row} for row in rows], SPAN_COLUMNS)


def test_an_agent_beside_the_chats_it_sums_does_not_bill() -> None:
    # Microsoft Agent Framework: chat spans are children of the agent's parent, inside its window.
    spans = _frame([
        {"span_id": "exec"},
        {"span_id": "agent", "parent_span_id": "exec", "kind": "invoke_agent", "start_ns": 1, "end_ns": 9,
         "input_tokens": 30.0},
        {"span_id": "c1", "parent_span_id": "exec", "kind": "chat", "start_ns": 2, "end_ns": 4,
         "input_tokens": 10.0},
        {"span_id": "c2", "parent_span_id": "exec", "kind": "chat", "start_ns": 5, "end_ns": 8,
         "input_tokens": 20.0},
    ])
    assert mark_billable(spans).tolist() == [False, False, True, True]


def test_an_agent_whose_model_calls_were_not_traced_still_bills_beside_another_agents_chats() -> None:
    spans = _frame([
        {"span_id": "root"},
        {"span_id": "a1", "parent_span_id": "root", "kind": "invoke_agent", "start_ns": 1, "end_ns": 4,
         "input_tokens": 10.0},
        {"span_id": "c1", "parent_span_id": "root", "kind": "chat", "start_ns": 2, "end_ns": 3,
         "input_tokens": 10.0},
        {"span_id": "a2", "parent_span_id": "root", "kind": "invoke_agent", "start_ns": 5, "end_ns": 9,
         "input_tokens": 7.0},
    ])
    assert mark_billable(spans).tolist() == [False, False, True, True]


def test_parent_positions_with_span_ids_unique_or_repeated_across_traces() -> None:
    unique = _frame([{"span_id": "a"}, {"span_id": "b", "parent_span_id": "a"},
                     {"span_id": "c", "parent_span_id": "a", "trace_id": "other"},
                     {"span_id": "d", "parent_span_id": "d"}])
    assert parent_positions(unique).tolist() == [-1, 0, -1, -1]
    repeated = _frame([{"span_id": "a"}, {"span_id": "a", "trace_id": "u"},
                       {"span_id": "b", "parent_span_id": "a", "trace_id": "u"}])
    assert parent_positions(repeated).tolist() == [-1, -1, 1]
    assert parent_positions(_frame([])).dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(spans=st.lists(st.tuples(st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=8),
                                st.sampled_from(["chat x", "execute_tool t", "step"]),
                                st.sampled_from([{}, {"session.id": "r"}, {"process.pid": 7}])),
                      max_size=25),
       other_values=st.lists(_VALUES, min_size=1, max_size=8))
def test_a_batch_of_spans_reads_as_each_span_alone(spans: list[tuple[dict[str, Any], str, dict[str, Any]]],
                                                   other_values: list[Any]) -> None:
    # Spans of the same attribute keys share a plan in `span_columns`; mixing shapes in one batch
    # must not let one span's answers leak into another's. Each span comes twice more: once with
    # the same keys and other values, once as it is, so that every shape holds different answers.
    shapes = [dict(attrs) for attrs, _, _ in spans]
    shapes += [dict(zip(attrs, itertools.cycle(other_values))) for attrs in shapes] + shapes[::-1]
    spans = spans * 2 + spans[::-1]
    records = [SpanRecord(f"{i:032x}", f"{i:016x}", None, name, 10, 20 + i, "ok", attrs, resource)
               for i, (attrs, (_, name, resource)) in enumerate(zip(shapes, spans, strict=True))]
    columns = span_columns(SpanBatch.of(records))
    for i, record in enumerate(records):
        alone = span_row(trace_id=record.trace_id, span_id=record.span_id, parent_span_id=None,
                         name=record.name, start_ns=10, end_ns=record.end_ns, status="ok",
                         attrs=record.attrs, resource=record.resource)
        for column, value in alone.items():
            got = columns[column][i]
            both_nan = isinstance(value, float) and math.isnan(value) and math.isnan(got)
            assert got == value or both_nan, column


# ----------------------------------------------------------------------------------------------
# The typed OTLP line decoder against the general OTLP reader

# Canonical values repeated, so that most generated lines take the typed path.
_TRACE_IDS = st.sampled_from(["0af7651916cd43dd8448eb211c80319c"] * 12
                             + ["0AF7651916CD43DD8448EB211C80319C", "", "0x1f", "b7ad6b7169203331", 7])
_SPAN_IDS = st.sampled_from(["b7ad6b7169203331", "00f067aa0ba902b7"] * 6
                            + ["B7AD6B7169203331", "", "0x1f", "0af7651916cd43dd8448eb211c80319c", 7])
_TIMES = st.sampled_from(["1760000000000000000", "1760000000500000000", 1760000000200000000] * 4
                         + ["0", "-5", "1e3", " 12", "x", "9" * 25, -10, 2**64, None, 1.5e18, 0.5])
_ANY_VALUES = st.sampled_from(
    [{"stringValue": "chat"}, {"stringValue": "gpt-4o"}, {"stringValue": ""}, {"stringValue": " unknown "},
     {"intValue": "12"}, {"intValue": 7}, {"intValue": "-4"}, {"intValue": "0"}] * 3
    + [{"stringValue": None}, {"stringValue": 5}, {"intValue": "1e3"}, {"intValue": "x"}, {"intValue": " 7"},
       {"intValue": 2**65}, {"intValue": True}, {"intValue": 1.5}, {"boolValue": True}, {"doubleValue": 0.5},
       {"doubleValue": "NaN"}, {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}},
       {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": True}}]}}, {"bytesValue": "AAE="},
       {}, None])
_ATTRIBUTE = st.fixed_dictionaries(
    {"key": st.sampled_from(["gen_ai.usage.input_tokens", "gen_ai.request.model", "gen_ai.operation.name",
                             "session.id", "process.pid", "x"])},
    optional={"value": _ANY_VALUES})
_SPAN = st.fixed_dictionaries(
    {"traceId": _TRACE_IDS, "spanId": _SPAN_IDS, "startTimeUnixNano": _TIMES},
    optional={"endTimeUnixNano": _TIMES, "parentSpanId": st.one_of(_SPAN_IDS, st.none()),
              "name": st.sampled_from(["chat gpt-4o", "execute_tool t", "", "x"] * 3 + [None, 3]),
              "attributes": st.one_of(st.lists(_ATTRIBUTE, max_size=4), st.none()),
              "status": st.sampled_from([None, {}, {"code": 0}, {"code": 1}, {"code": 2}] * 2
                                        + [{"code": -1}, {"code": "STATUS_CODE_ERROR"}, {"code": "2"},
                                           {"status_code": "ERROR"}, "error"]),
              "trace_id": _TRACE_IDS})
_DOCUMENT = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries(
    {"scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(_SPAN, min_size=1, max_size=3)}),
                            min_size=1, max_size=2)},
    optional={"resource": st.fixed_dictionaries(
        {}, optional={"attributes": st.lists(_ATTRIBUTE, max_size=2)})}),
    min_size=1, max_size=2)})


def _general(document: dict[str, Any]) -> dict[str, list[Any]]:
    return span_columns(SpanBatch.of(list(otlp.records_of(document))))


def _same(a: dict[str, list[Any]], b: dict[str, list[Any]]) -> bool:
    return json.dumps(a, sort_keys=True, default=repr) == json.dumps(b, sort_keys=True, default=repr)


@settings(max_examples=400, deadline=None)
@given(document=_DOCUMENT, raw_text=st.booleans(), line_end=st.sampled_from([b"\n", b"\r\n", b""]))
def test_the_typed_decoder_reads_a_line_as_the_general_reader_does(
        document: dict[str, Any], raw_text: bool, line_end: bytes) -> None:
    # As the file holds it: text as UTF-8 (or escaped), the line's end included.
    try:
        line = json.dumps(document, ensure_ascii=not raw_text).encode() + line_end
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 file holds it unescaped
        assume(False)
    batch = otlp_typed.batch_of_line(line)
    event("typed" if batch is not None and batch.span_id else "general" if batch is None else "no spans")
    if batch is not None:  # None: a line the typed decoder leaves to the general reader
        assert _same(span_columns(batch), _general(document))


def test_the_typed_decoder_takes_the_canonical_form_and_leaves_the_rest() -> None:
    span = {"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": "b7ad6b7169203331",
            "startTimeUnixNano": "1760000000000000000", "endTimeUnixNano": "1760000001000000000",
            "name": "chat m",
            "attributes": [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                           {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                           {"key": "flag", "value": {"boolValue": True}}],
            "status": {"code": 2}}
    canonical = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [span]}]}]}
    batch = otlp_typed.batch_of_line(json.dumps(canonical).encode())
    assert batch is not None and batch.attrs == [
        {"gen_ai.usage.input_tokens": 12, "gen_ai.operation.name": "chat", "flag": True}]
    assert batch.status == ["error"] and batch.end_ns == [1760000001000000000]
    for variant in ({**span, "traceId": span["traceId"].upper()}, {**span, "startTimeUnixNano": 1.5},
                    {**span, "name": None}):
        document = {"resourceSpans": [{"scopeSpans": [{"spans": [variant]}]}]}
        assert otlp_typed.batch_of_line(json.dumps(document).encode()) is None
        assert len(_general(document)["span_id"]) == 1  # the general reader still reads it
    assert otlp_typed.batch_of_line(b'{"resource_spans": []}') is None
    assert otlp_typed.batch_of_line(b'{"data": [{"traceID": "1", "spans": []}]}') is None
    assert otlp_typed.batch_of_line(b"{not json") is None
