"""The ledger's naming columns and its input table, on hand-built rows: attributes read from
every row at once, and the same answers when a row has no attribute mapping at all."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from instrumentation import semconv
from profiler import attribute
from profiler.model import SPAN_COLUMNS, conform, empty_frame
from tests.builders import chat, make_run, row, span

STEPS = [
    span("agent", start=0, end=10, kind="invoke_agent", name="invoke_agent coder"),
    span("search", "agent", start=1, end=2, kind="execute_tool", name="execute_tool web_search"),
    span("named", "agent", start=2, end=3, kind="execute_tool", name="execute_tool x",
         attributes={"gen_ai.tool.name": "read_file"}),
    span("bare", "agent", start=3, end=4, kind="execute_tool", name="execute_tool"),
    span("empty", "agent", start=4, end=5, kind="step", attributes={"gen_ai.tool.name": ""}),
    # Other dialects name the tool in attributes of their own, and name the span after the tool.
    span("openinference", "agent", start=4, end=5, kind="execute_tool", name="get_weather",
         attributes={"tool.name": "get_weather", "openinference.span.kind": "TOOL"}),
    span("traceloop", "agent", start=4, end=5, kind="execute_tool", name="lookup.tool",
         attributes={"traceloop.entity.name": "lookup", "traceloop.span.kind": "tool"}),
    span("not-a-tool", "agent", start=4, end=5, kind="step", attributes={"tool.name": "get_weather"}),
    span("failed", "agent", start=5, end=6, status="error", attributes={"error.type": "TimeoutError"}),
    chat("stand-in", "agent", start=6, end=7, attributes={semconv.STAND_IN_MODEL: True}),
    chat("real", "agent", start=7, end=8),
]


@pytest.mark.parametrize("no_mapping", [[], ["search", "agent"]])
def test_tool_names_error_types_and_stand_in_calls(no_mapping: list[str]) -> None:
    run = make_run(STEPS)
    # A row whose attributes are None (a hand-built frame) reads as one with none set.
    pairs = zip(run.spans["span_id"], run.spans["attributes"], strict=True)
    run.spans["attributes"] = [None if span_id in no_mapping else attrs for span_id, attrs in pairs]
    ledger = attribute(run)
    names = ("search", "named", "bare", "empty", "agent", "openinference", "traceloop", "not-a-tool")
    tools = {s: row(ledger, s)["tool_name"] for s in names}
    assert tools == {"search": "web_search", "named": "read_file", "bare": None, "empty": None, "agent": None,
                     "openinference": "get_weather", "traceloop": "lookup", "not-a-tool": None}
    assert row(ledger, "failed")["error_type"] == "TimeoutError"
    assert row(ledger, "search")["error_type"] is None
    assert ledger.checks["stand_in_calls"] == 1
    assert ledger.steps["tool_name"].dtype == object and ledger.steps["error_type"].dtype == object


def test_conform_leaves_a_frame_from_the_readers_as_it_is_and_never_writes_through() -> None:
    spans = make_run(STEPS).spans
    conformed = conform(spans, SPAN_COLUMNS)
    pd.testing.assert_frame_equal(conformed, spans)
    conformed["bills_usage"] = True
    conformed.loc[0, "name"] = "changed"
    assert not spans["bills_usage"].all() and spans.loc[0, "name"] == "invoke_agent coder"


def test_conform_gives_a_hand_built_frame_the_readers_types() -> None:
    frame = pd.DataFrame({
        "trace_id": ["t", "t", "t"], "span_id": ["a", "b", "c"],
        "parent_span_id": pd.Series([None, "a", math.nan], dtype=object),
        "model": pd.Series(["m", pd.NA, None], dtype=object), "start_ns": [1.0, 2.0, 3.0],
        "bills_usage": [1, 0, 1], "extra": [1, 2, 3],
    })
    conformed = conform(frame, SPAN_COLUMNS)
    assert list(conformed.columns) == list(SPAN_COLUMNS)
    assert [str(t) for t in conformed.dtypes] == list(SPAN_COLUMNS.values())
    assert conformed["parent_span_id"].tolist() == [None, "a", None]
    assert conformed["model"].tolist() == ["m", None, None]
    assert conformed["bills_usage"].tolist() == [True, False, True]
    assert np.isnan(conformed["input_tokens"]).all() and conformed["attributes"].tolist() == [None] * 3
    assert conform(frame.iloc[:0], SPAN_COLUMNS).dtypes.equals(empty_frame(SPAN_COLUMNS).dtypes)


def test_the_source_columns_share_one_text_per_distinct_value() -> None:
    # A million steps would otherwise hold a million copies of "none: no GPU samples" per column.
    steps = [span("agent", start=0, end=600, kind="invoke_agent")]
    steps += [chat(f"c{i}", "agent", start=i, end=i + 0.5) for i in range(500)]
    ledger = attribute(make_run(steps))
    for column in ("api_cost_source", "tokens_source", "energy_source", "memory_source", "gpu_cost_source"):
        texts = ledger.steps[column]
        assert pd.api.types.is_string_dtype(texts.dtype) or texts.dtype == object, column
        assert texts.memory_usage(index=False, deep=False) <= 8 * len(texts), column
        distinct = {id(text) for text in texts if isinstance(text, str)}
        assert 0 < len(distinct) <= 3, column
    assert set(ledger.steps["memory_source"]) == {"none: no GPU memory samples"}
    assert set(ledger.steps["tokens_source"].dropna()) == {"provider-reported"}
