"""One call, one bill: two instrumentations describing the same model call count it once, in the
shapes real combinations write (docs/dialects.md#usage-is-counted-on-inference-spans)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import profiler
from profiler.attribution.ledger import Ledger
from profiler.pricing.api import ApiPricer
from reports.render import render
from tests.builders import BASE_NS, chat, device_totals, make_run, otlp_span, row, span, steady_gpu
from tests.genai_dialects import (
    CLAUDE_CALLS,
    GPT_CALLS,
    Call,
    anthropic_sdk,
    openai_v2,
    openinference_anthropic,
    openllmetry_anthropic,
    pydantic_ai_agent_run,
    pydantic_ai_chat,
    span_id,
    trace_id,
    write_trace,
)

RUN = {"gen_ai.conversation.id": "run-1"}  # what the writer stamps on every span of a run
AGENT = span_id(0, 0)
Builder = Callable[..., dict[str, Any]]


def ledger_of(tmp_path: Path, spans: Sequence[dict[str, Any]], name: str = "spans.jsonl") -> Ledger:
    return profiler.attribute(profiler.load(write_trace(tmp_path / name, spans)))


def agent_span(end: float) -> dict[str, Any]:
    return otlp_span(AGENT, None, start=0, end=end, trace=trace_id(0), name="invoke_agent planner",
                     attributes={"gen_ai.operation.name": "invoke_agent", **RUN})


def loop(calls: Sequence[Call], outer: Builder | None, inner: Builder | None, *, nested: bool,
         in_agent: bool) -> list[dict[str, Any]]:
    """An agent loop of `calls`; each call described by `outer` (kind 1) and `inner` (kind 2), the
    inner one inside the outer's window: its child where `nested`, else its sibling. Outside an
    agent span every span that has no parent starts a trace of its own."""
    spans = [agent_span(2 * len(calls) + 1)] if in_agent else []
    for i, call in enumerate(calls):
        t = 1 + 2 * i
        parent = AGENT if in_agent else None
        outer_trace = trace_id(0) if in_agent else trace_id(2 * i + 1)
        if outer is not None:
            spans.append(outer(span_id(1, i), parent, call, start=t, end=t + 1, trace=outer_trace, **RUN))
        if inner is not None:
            inner_parent = span_id(1, i) if nested and outer is not None else parent
            inner_trace = outer_trace if inner_parent is not None else trace_id(2 * i + 2)
            spans.append(inner(span_id(2, i), inner_parent, call, start=t + 0.01, end=t + 0.99, trace=inner_trace,
                               **RUN))
    return spans


def expected_usd(calls: Sequence[Call], provider: str) -> float:
    pricer = ApiPricer()
    return sum(pricer.price(model=c.response_model, provider=provider, input_tokens=c.input, output_tokens=c.output,
                            cache_read_tokens=c.cache_read, cache_write_tokens=c.cache_write,
                            start_ns=BASE_NS).cost_usd for c in calls)


def assert_billed_once(ledger: Ledger, calls: Sequence[Call], provider: str, kept: int, dropped: int) -> None:
    """Each call counted once on the span of kind `kept`; the `dropped` kind's spans are $0 duplicates of it."""
    totals = ledger.totals
    assert totals["model_calls"] == len(calls)
    assert totals["input_tokens"] == sum(c.input for c in calls)
    assert totals["output_tokens"] == sum(c.output for c in calls)
    assert totals["cache_read_tokens"] == sum(c.cache_read for c in calls)
    assert totals["api_cost_usd"] == pytest.approx(expected_usd(calls, provider), rel=1e-12)
    assert ledger.checks["duplicate_calls"] == len(calls)
    for i in range(len(calls)):
        duplicate = row(ledger, span_id(dropped, i))
        assert duplicate["duplicate_of"] == span_id(kept, i)
        assert not duplicate["bills_usage"] and duplicate["self_input_tokens"] == 0
        assert duplicate["self_api_cost_usd"] == 0 and duplicate["api_cost_source"] == "duplicate"
        assert row(ledger, span_id(kept, i))["duplicate_of"] is None


# ----------------------------------------------------------------------------------------------
# The real combinations that doubled bills


@pytest.mark.parametrize("in_agent", [True, False], ids=["inside-an-agent", "each-call-its-own-trace"])
def test_anthropic_sdk_spans_with_openllmetry_count_four_calls_not_eight(tmp_path: Path, in_agent: bool) -> None:
    # OpenLLMetry never makes its span current, so the SDK's span beside it is a sibling (a root of
    # another trace outside an agent span): 8 calls and twice the dollars before.
    ledger = ledger_of(tmp_path, loop(CLAUDE_CALLS, openllmetry_anthropic, anthropic_sdk, nested=False,
                                      in_agent=in_agent))
    assert_billed_once(ledger, CLAUDE_CALLS, "anthropic", kept=2, dropped=1)
    assert ledger.totals["cache_write_tokens"] == sum(c.cache_write for c in CLAUDE_CALLS)
    assert ledger.totals["sessions"] == 1
    alone = ledger_of(tmp_path, loop(CLAUDE_CALLS, None, anthropic_sdk, nested=False, in_agent=in_agent), "sdk.jsonl")
    assert ledger.totals["api_cost_usd"] == alone.totals["api_cost_usd"]


@pytest.mark.parametrize("in_agent", [True, False], ids=["inside-an-agent", "each-call-its-own-trace"])
def test_anthropic_sdk_spans_inside_openinference_spans_count_once(tmp_path: Path, in_agent: bool) -> None:
    ledger = ledger_of(tmp_path, loop(CLAUDE_CALLS, openinference_anthropic, anthropic_sdk, nested=True,
                                      in_agent=in_agent))
    # Both report the four counts: the inner span, the SDK's own, is kept.
    assert_billed_once(ledger, CLAUDE_CALLS, "anthropic", kept=2, dropped=1)
    assert ledger.totals["sessions"] == 1


def test_pydantic_ai_with_the_openai_instrumentor_bills_the_span_that_knows_the_cache(tmp_path: Path) -> None:
    # Before: the agent run's sum was left out, but each call was billed twice, once without its
    # cache reads (2.3x the dollars). The instrumentor's span inside reports no cache counts, so
    # pydantic-ai's fuller span is the one kept.
    spans = [pydantic_ai_agent_run(AGENT, GPT_CALLS, start=0, end=9, trace=trace_id(0), **RUN)]
    spans += loop(GPT_CALLS, pydantic_ai_chat, openai_v2, nested=True, in_agent=True)[1:]
    ledger = ledger_of(tmp_path, spans)
    assert_billed_once(ledger, GPT_CALLS, "openai", kept=1, dropped=2)
    assert not row(ledger, AGENT)["bills_usage"]
    assert ledger.totals["api_cost_usd"] < expected_usd([Call(c.request_model, c.response_model, c.input, c.output)
                                                         for c in GPT_CALLS], "openai")


def _langchain_shape(top_window: tuple[float, float]) -> list[dict[str, Any]]:
    """OpenInference's LangChain spans are never made current, so the OpenAI instrumentor's span of
    each call starts a trace of its own: a root of the session, beside the deeper description."""
    spans = [agent_span(2 * len(GPT_CALLS) + 1)]
    for i, call in enumerate(GPT_CALLS):
        t = 1 + 2 * i
        deeper = pydantic_ai_chat(span_id(1, i), AGENT, call, start=t, end=t + 1, trace=trace_id(0), **RUN)
        spans.append({**deeper, "name": "ChatOpenAI"})  # OpenInference names it after the LangChain class
        spans.append(openai_v2(span_id(2, i), None, call, start=t + top_window[0], end=t + top_window[1],
                               trace=trace_id(i + 1), **RUN))
    return spans


def test_a_call_at_the_top_of_the_session_inside_a_deeper_description_counts_once(tmp_path: Path) -> None:
    ledger = ledger_of(tmp_path, _langchain_shape((0.01, 0.99)))
    assert_billed_once(ledger, GPT_CALLS, "openai", kept=1, dropped=2)
    assert ledger.totals["sessions"] == 1


def test_a_call_at_the_top_of_the_session_outside_every_other_call_is_billed(tmp_path: Path) -> None:
    ledger = ledger_of(tmp_path, _langchain_shape((1.05, 1.5)))  # after the deeper call ended
    assert ledger.totals["model_calls"] == 2 * len(GPT_CALLS)
    assert ledger.checks.get("duplicate_calls", 0) == 0


def test_the_report_says_how_many_calls_were_described_twice(tmp_path: Path) -> None:
    ledger = ledger_of(tmp_path, loop(CLAUDE_CALLS, openllmetry_anthropic, anthropic_sdk, nested=False,
                                      in_agent=True))
    line = "duplicates: 4 model call(s) were described twice"
    for fmt in ("table", "markdown", "html"):
        assert line in render(ledger, fmt), fmt
    assert "anthropic.chat (duplicate: counted once)" in render(ledger, "table")


# ----------------------------------------------------------------------------------------------
# What is not a duplicate stays billed


def _pair(outer: dict[str, Any], inner: dict[str, Any]) -> Ledger:
    return profiler.attribute(make_run([span("agent", start=0, end=10, kind="invoke_agent"), outer, inner]))


@pytest.mark.parametrize(("outer", "inner"), [
    # a call to another model inside a call (a judge around a cheaper model)
    (chat("o", "agent", start=1, end=5, model="gpt-4o", input_tokens=900, output_tokens=90),
     chat("i", "o", start=2, end=4, model="gpt-4o-mini", input_tokens=500, output_tokens=50)),
    # the inner one used more than the outer reports
    (chat("o", "agent", start=1, end=5, input_tokens=100, output_tokens=10),
     chat("i", "o", start=2, end=4, input_tokens=500, output_tokens=10)),
    # siblings of one instrumentation (one name): two concurrent calls, the same answer
    (chat("o", "agent", start=1, end=5), chat("i", "agent", start=2, end=4)),
    # siblings under two names, one after the other
    (chat("o", "agent", start=1, end=2, name="anthropic.chat"), chat("i", "agent", start=3, end=4)),
    # siblings under two names, one inside the other, but not the same usage
    (chat("o", "agent", start=1, end=5, name="anthropic.chat", input_tokens=120),
     chat("i", "agent", start=2, end=4, input_tokens=100)),
    # no model named: nothing says it is the same call
    (chat("o", "agent", start=1, end=5, model=None), chat("i", "o", start=2, end=4, model=None)),
], ids=["other-model", "inner-larger", "same-name-siblings", "sequential-siblings", "sibling-usage-differs",
        "no-model"])
def test_calls_that_are_not_the_same_call_are_each_billed(outer: dict[str, Any], inner: dict[str, Any]) -> None:
    ledger = _pair(outer, inner)
    assert ledger.totals["model_calls"] == 2
    assert ledger.checks["duplicate_calls"] == 0
    assert ledger.totals["input_tokens"] == outer["input_tokens"] + inner["input_tokens"]


def test_a_sibling_that_could_describe_either_of_two_calls_is_not_guessed_at() -> None:
    # Two concurrent calls of one instrumentation with one answer, and another instrumentation's
    # span inside both windows: which call it describes is unknowable, so all three are billed.
    ledger = profiler.attribute(make_run([
        span("agent", start=0, end=10, kind="invoke_agent"),
        chat("a", "agent", start=1, end=8), chat("b", "agent", start=2, end=8),
        chat("x", "agent", start=3, end=7, name="anthropic.chat"),
    ]))
    assert ledger.totals["model_calls"] == 3 and ledger.checks["duplicate_calls"] == 0


@pytest.mark.parametrize(("outer_model", "inner_model"), [
    ("openai:gpt-4o", "gpt-4o"),  # pydantic-ai's model string
    ("gpt-4o", "gpt-4o-2024-08-06"),  # the request model above, the snapshot that answered below
    ("openrouter/openai/gpt-4o", "GPT-4o"),
])
def test_model_names_are_compared_without_serving_prefix_case_or_snapshot(outer_model: str,
                                                                          inner_model: str) -> None:
    ledger = _pair(chat("o", "agent", start=1, end=5, model=outer_model),
                   chat("i", "o", start=2, end=4, model=inner_model))
    assert ledger.totals["model_calls"] == 1
    assert row(ledger, "o")["duplicate_of"] == "i"


def test_usage_contained_in_the_outer_span_is_a_duplicate_and_retries_inside_stay_calls() -> None:
    # An outer span that sums two attempts: each attempt is a call of its own, the outer a duplicate.
    ledger = profiler.attribute(make_run([
        chat("o", None, start=0, end=9, input_tokens=200, output_tokens=20),
        chat("a1", "o", start=1, end=3, input_tokens=100, output_tokens=10),
        chat("a2", "o", start=5, end=8, input_tokens=100, output_tokens=10),
    ]))
    assert ledger.totals["model_calls"] == 2 and ledger.totals["input_tokens"] == 200
    assert row(ledger, "o")["duplicate_of"] == "a2"  # the last attempt, which answered


def test_three_descriptions_of_one_call_count_once_on_the_innermost() -> None:
    ledger = profiler.attribute(make_run([
        chat("framework", None, start=0, end=9),
        span("http", "framework", start=0.5, end=8.5),
        chat("instrumentor", "http", start=1, end=8),
        chat("sdk", "instrumentor", start=2, end=7),
    ]))
    assert ledger.totals["model_calls"] == 1
    assert [row(ledger, s)["duplicate_of"] for s in ("framework", "instrumentor", "sdk")] == ["sdk", "sdk", None]


# ----------------------------------------------------------------------------------------------
# Deterministic, and conservation still holds


@pytest.mark.parametrize("nested", [True, False])
def test_which_span_is_kept_does_not_depend_on_the_order_of_the_file(tmp_path: Path, nested: bool) -> None:
    spans = loop(CLAUDE_CALLS, openllmetry_anthropic if not nested else openinference_anthropic, anthropic_sdk,
                 nested=nested, in_agent=True)
    kept = []
    for seed in range(6):
        shuffled = list(spans)
        random.Random(seed).shuffle(shuffled)
        ledger = ledger_of(tmp_path, shuffled)
        billed = ledger.steps[ledger.steps["bills_usage"]]
        kept.append(sorted(billed["span_id"]))
        assert ledger.totals["api_cost_usd"] == pytest.approx(expected_usd(CLAUDE_CALLS, "anthropic"), rel=1e-12)
    assert kept == [[span_id(2, i) for i in range(4)]] * 6


def test_a_tie_keeps_the_inner_span_whichever_row_comes_first() -> None:
    rows = [chat("o", None, start=1, end=5), chat("i", "o", start=2, end=4)]
    for order in (rows, rows[::-1]):
        ledger = profiler.attribute(make_run(order))
        assert row(ledger, "o")["duplicate_of"] == "i" and row(ledger, "i")["duplicate_of"] is None


def test_conservation_holds_with_duplicates_and_the_gpu_is_shared_as_before() -> None:
    samples = steady_gpu(0, 10, power_w=200.0)
    steps = [span("agent", start=0, end=10, kind="invoke_agent"),
             chat("o", "agent", start=1, end=5, provider="vllm", model="llama-3-8b"),
             chat("i", "o", start=1.5, end=4.5, provider="vllm", model="llama-3-8b"),
             span("tool", "agent", start=6, end=9, kind="execute_tool")]
    ledger = profiler.attribute(make_run(steps, samples))
    assert ledger.checks["conservation_held"] is True
    measured = device_totals(samples)["GPU-0"]
    for quantity, total in measured.items():
        assert ledger.steps[f"self_{quantity}"].sum() == pytest.approx(total, rel=1e-9)
    # The GPU goes to the leaf that was open, duplicate or not: same as a run without the flag.
    assert ledger.totals["model_calls"] == 1
    assert row(ledger, "i")["self_energy_j"] == pytest.approx(600.0)
    assert row(ledger, "o")["self_energy_j"] == pytest.approx(200.0)


@st.composite
def call_trees(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A few model-call spans, each nested in an earlier one, its sibling, or a root, with usage and
    models drawn from a small set so that duplicates and near-duplicates both occur."""
    rows: list[dict[str, Any]] = []
    for k in range(draw(st.integers(2, 7))):
        parent = draw(st.sampled_from([None, *range(k)]))
        lo, hi = (0.0, 100.0) if parent is None else (rows[parent]["start"], rows[parent]["end"])
        a, b = sorted(draw(st.integers(0, 10)) for _ in range(2))
        start, end = lo + (hi - lo) * a / 10, lo + (hi - lo) * max(b, a + 1) / 11
        rows.append({"id": f"s{k}", "parent": None if parent is None else f"s{parent}", "start": start, "end": end,
                     "model": draw(st.sampled_from(["gpt-4o", "gpt-4o-2024-08-06", "gpt-4o-mini"])),
                     "name": draw(st.sampled_from(["chat gpt-4o", "anthropic.chat"])),
                     "input": draw(st.sampled_from([100, 200])), "output": draw(st.sampled_from([10, 20]))})
    return [chat(r["id"], r["parent"], start=r["start"], end=r["end"], model=r["model"], name=r["name"],
                 input_tokens=r["input"], output_tokens=r["output"]) for r in rows]


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=call_trees(), seed=st.integers(0, 1000))
def test_duplicates_do_not_depend_on_row_order_and_point_at_billed_calls(rows: list[dict[str, Any]],
                                                                          seed: int) -> None:
    shuffled = list(rows)
    random.Random(seed).shuffle(shuffled)
    first, second = (profiler.attribute(make_run(r)) for r in (rows, shuffled))
    marks = [dict(zip(ledger.steps["span_id"], ledger.steps["duplicate_of"], strict=True))
             for ledger in (first, second)]
    assert marks[0] == marks[1]
    billed = set(first.steps.loc[first.steps["bills_usage"], "span_id"])
    assert {kept for kept in marks[0].values() if kept is not None} <= billed
    assert first.totals["model_calls"] + first.checks["duplicate_calls"] == len(rows)
    assert first.totals["input_tokens"] == sum(r["input_tokens"] for r in rows if r["span_id"] in billed)
