"""The insight that names model calls which reported no cache counts, and bounds the dollars they may
overstate (some instrumentors leave cached tokens out, so every input token is priced in full)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import profiler
from profiler.analysis.insights import missing_cache_counts
from profiler.attribution.ledger import Ledger
from profiler.pricing.api import ApiPricer
from reports.render import render
from tests.builders import BASE_NS, chat, make_run
from tests.genai_dialects import (
    CLAUDE_CALLS,
    GPT_CALLS,
    Call,
    anthropic_sdk,
    openai_v2,
    pydantic_ai_chat,
    span_id,
    trace_id,
    write_trace,
)

NAN = math.nan


def ledger_of(tmp_path: Path, spans: Sequence[dict[str, Any]]) -> Ledger:
    return profiler.attribute(profiler.load(write_trace(tmp_path / "spans.jsonl", spans)))


def price(call: Call, *, cache_read: float, cache_write: float) -> float:
    return ApiPricer().price(model=call.response_model, provider="openai", input_tokens=call.input,
                             output_tokens=call.output, cache_read_tokens=cache_read, cache_write_tokens=cache_write,
                             start_ns=BASE_NS).cost_usd


def test_calls_without_cache_counts_are_named_with_the_most_their_dollars_can_be_too_high(tmp_path: Path) -> None:
    spans = [openai_v2(span_id(1, i), None, c, start=2 * i, end=2 * i + 1, trace=trace_id(0))
             for i, c in enumerate(GPT_CALLS)]
    ledger = ledger_of(tmp_path, spans)
    gap = missing_cache_counts(ledger)
    assert gap.calls == 4 and gap.span_ids == [span_id(1, i) for i in range(4)]
    assert gap.by_name == {"chat gpt-4o": 4}
    # The bound: each call's price minus its price had all its input been cache reads.
    bound = sum(price(c, cache_read=NAN, cache_write=NAN) - price(c, cache_read=c.input, cache_write=0)
                for c in GPT_CALLS)
    assert gap.overstated_max_usd == pytest.approx(bound, rel=1e-12)
    assert gap.overstated_max_usd == pytest.approx(sum(c.input for c in GPT_CALLS) * (2.50 - 1.25) / 1e6)
    assert gap.api_cost_usd == pytest.approx(ledger.totals["api_cost_usd"], rel=1e-12)
    assert gap.share_of_api_cost == pytest.approx(bound / ledger.totals["api_cost_usd"])
    # ...and it does bound the real error: these calls did read from the cache.
    truth = sum(price(c, cache_read=c.cache_read, cache_write=0) for c in GPT_CALLS)
    assert 0 < ledger.totals["api_cost_usd"] - truth <= gap.overstated_max_usd


@pytest.mark.parametrize("fmt", ["table", "markdown", "html"])
def test_the_reports_name_the_calls_and_the_bound(tmp_path: Path, fmt: str) -> None:
    spans = [openai_v2(span_id(1, i), None, c, start=2 * i, end=2 * i + 1, trace=trace_id(0))
             for i, c in enumerate(GPT_CALLS)]
    text = render(ledger_of(tmp_path, spans), fmt)
    assert "cache counts missing: 4 model call(s) (chat gpt-4o x4)" in text
    assert "overstated by up to $0.009497 (40% of the API $)" in text


def test_calls_that_report_their_cache_are_not_named(tmp_path: Path) -> None:
    # The anthropic SDK writes both cache counts; pydantic-ai its cache reads (0 on the first call).
    spans = [anthropic_sdk(span_id(1, i), None, c, start=2 * i, end=2 * i + 1, trace=trace_id(0))
             for i, c in enumerate(CLAUDE_CALLS)]
    spans += [pydantic_ai_chat(span_id(2, i), None, c, start=10 + 2 * i, end=11 + 2 * i, trace=trace_id(1))
              for i, c in enumerate(GPT_CALLS)]
    ledger = ledger_of(tmp_path, spans)
    assert ledger.totals["model_calls"] == 8
    assert missing_cache_counts(ledger).calls == 0
    assert "cache counts missing" not in render(ledger, "table")


def test_the_duplicate_that_knows_the_cache_is_the_one_billed_so_nothing_is_named(tmp_path: Path) -> None:
    spans = []
    for i, call in enumerate(GPT_CALLS):
        spans.append(pydantic_ai_chat(span_id(1, i), None, call, start=2 * i, end=2 * i + 1, trace=trace_id(i)))
        spans.append(openai_v2(span_id(2, i), span_id(1, i), call, start=2 * i + 0.1, end=2 * i + 0.9,
                               trace=trace_id(i)))
    assert missing_cache_counts(ledger_of(tmp_path, spans)).calls == 0


@pytest.mark.parametrize("step", [
    chat("c", start=0, end=1, model="gpt-4"),  # no cache price: the price is right as it is
    chat("c", start=0, end=1, model="llama-3-8b", provider="vllm"),  # self-hosted: no API bill
    chat("c", start=0, end=1, model="house-model-7", provider="acme"),  # unpriced: never $0, never named
    chat("c", start=0, end=1, input_tokens=NAN),  # no input to have cached
], ids=["no-cache-price", "self-hosted", "unpriced", "no-input"])
def test_calls_whose_price_cannot_be_overstated_by_the_cache_are_not_named(step: dict[str, Any]) -> None:
    gap = missing_cache_counts(profiler.attribute(make_run([step])))
    assert (gap.calls, gap.overstated_max_usd, gap.share_of_api_cost) == (0, None, None)


def test_a_run_without_model_calls_has_nothing_to_name() -> None:
    gap = missing_cache_counts(profiler.attribute(make_run([])))
    assert gap.calls == 0 and gap.overstated_max_usd is None
