"""The fast paths the readers take for big files give the same answers as the plain ones."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler import genai
from profiler.genai import mark_billable, span_row
from profiler.model import SPAN_COLUMNS, frame_from_rows
from profiler.pricing import ApiPricer
from profiler.tree import parent_positions

_KEYS = sorted(genai._ALIAS_RANK) + ["gen_ai.operation.name", "server.address", "other.key"]
_VALUES = st.one_of(st.none(), st.just(""), st.just("unknown"), st.just(" gpt-4o "), st.just("openai"),
                    st.just("az.ai.inference"), st.integers(-5, 10**7), st.floats(allow_nan=True),
                    st.text(max_size=6), st.booleans(), st.just("localhost:8000"))


@settings(max_examples=150, deadline=None)
@given(attrs=st.dictionaries(st.sampled_from(_KEYS), _VALUES, max_size=12),
       resource=st.dictionaries(st.sampled_from(["session.id", "service.name"]), st.text(max_size=4), max_size=2))
def test_span_row_agrees_with_the_one_concept_functions(attrs: dict[str, Any], resource: dict[str, Any]) -> None:
    row = span_row(trace_id="t" * 32, span_id="s" * 16, parent_span_id=None, name="chat x", start_ns=5, end_ns=3,
                   status="ok", attrs=attrs, resource=resource)
    usage = genai.usage_of(attrs)
    for column, value in usage.items():
        assert (math.isnan(value) and math.isnan(row[column])) or row[column] == value, column
    assert row["model"] == genai.model_of(attrs)
    assert row["provider"] == genai.provider_of(attrs)
    assert row["session_id"] == genai.session_of(attrs, resource, "t" * 32)
    cost = genai.reported_cost_of(attrs)
    assert (math.isnan(cost) and math.isnan(row["reported_cost_usd"])) or row["reported_cost_usd"] == cost
    assert row["end_ns"] == 5


def test_linear_api_prices_are_exactly_genai_prices() -> None:
    rng = random.Random(4)
    fast = ApiPricer()
    models = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-20250514"),
              (None, "claude-opus-4.6-1m"), ("google", "gemini-2.5-pro"), (None, "gpt-5"), ("x", "not-a-model")]
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
        {"span_id": "c1", "parent_span_id": "exec", "kind": "chat", "start_ns": 2, "end_ns": 4, "input_tokens": 10.0},
        {"span_id": "c2", "parent_span_id": "exec", "kind": "chat", "start_ns": 5, "end_ns": 8, "input_tokens": 20.0},
    ])
    assert mark_billable(spans).tolist() == [False, False, True, True]


def test_an_agent_whose_model_calls_were_not_traced_still_bills_beside_another_agents_chats() -> None:
    spans = _frame([
        {"span_id": "root"},
        {"span_id": "a1", "parent_span_id": "root", "kind": "invoke_agent", "start_ns": 1, "end_ns": 4,
         "input_tokens": 10.0},
        {"span_id": "c1", "parent_span_id": "root", "kind": "chat", "start_ns": 2, "end_ns": 3, "input_tokens": 10.0},
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
