"""Token counts that cannot be real (negative, not finite, over the ceiling of one call) are left out
of the sums with a warning naming the span, by both OTLP readers; the span itself is kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import profiler
from instrumentation.usage import MAX_TOKENS_PER_CALL

SPAN_ID = "cd" * 8


def _document(value: str, *, canonical: bool) -> str:
    """One chat span whose input tokens are the JSON `value`; `canonical` False writes snake_case
    keys, which the fast reader declines, so that the general reader reads it."""
    resource_spans, scope_spans = ("resourceSpans", "scopeSpans") if canonical else ("resource_spans", "scope_spans")
    attributes = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                  {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                  {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                  {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "100"}},
                  {"key": "gen_ai.usage.input_tokens", "value": "@"}]
    span = {"traceId": "ab" * 16, "spanId": SPAN_ID, "name": "chat gpt-4o", "startTimeUnixNano": "1760000000000000000",
            "endTimeUnixNano": "1760000001000000000", "attributes": attributes}
    text = json.dumps({resource_spans: [{scope_spans: [{"spans": [span]}]}]})
    return text.replace('"@"', value)


@pytest.mark.parametrize("canonical", [True, False], ids=["fast reader", "general reader"])
@pytest.mark.parametrize("value", [
    '{"intValue": "1000000000000000000000000000000"}', '{"intValue": 1e30}', '{"doubleValue": 1e30}',
    '{"intValue": "9223372036854775807"}', '{"intValue": Infinity}', '{"doubleValue": "inf"}',
    '{"doubleValue": "NaN"}', '{"intValue": "-5"}', '{"intValue": "' + str(MAX_TOKENS_PER_CALL + 1) + '"}',
])
def test_an_impossible_count_is_left_out_with_a_warning_naming_the_span(
        tmp_path: Path, value: str, canonical: bool) -> None:
    # Before: $2.5e24 for doubleValue 1e30, $23 trillion for int64 max, 0 tokens without a word for
    # intValue 1e30, and an OverflowError for Infinity.
    path = tmp_path / "spans.jsonl"
    path.write_text(_document(value, canonical=canonical) + "\n")
    run = profiler.load(path)
    assert len(run.spans) == 1
    row = run.spans.iloc[0]
    assert row["input_tokens"] != row["input_tokens"] and row["output_tokens"] == 100  # NaN: left out
    [warning] = [w for w in run.warnings if "cannot be real" in w]
    assert f"span 'chat gpt-4o' ({SPAN_ID}) input_tokens=" in warning
    assert "1 token count(s) or cost(s)" in warning and f"over {MAX_TOKENS_PER_CALL:,} tokens a call" in warning
    ledger = profiler.attribute(run)
    assert ledger.totals["input_tokens"] == 0 and ledger.totals["output_tokens"] == 100
    assert ledger.totals["total_cost_usd"] is not None and ledger.totals["total_cost_usd"] < 0.01
    assert any("cannot be real" in w for w in ledger.checks["warnings"])


@pytest.mark.parametrize("canonical", [True, False], ids=["fast reader", "general reader"])
def test_the_ceiling_itself_is_read(tmp_path: Path, canonical: bool) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(_document(f'{{"intValue": "{MAX_TOKENS_PER_CALL}"}}', canonical=canonical) + "\n")
    run = profiler.load(path)
    assert run.spans["input_tokens"].tolist() == [float(MAX_TOKENS_PER_CALL)] and run.warnings == []


def test_many_impossible_counts_are_named_five_at_most(tmp_path: Path) -> None:
    lines = [_document('{"intValue": "-1"}', canonical=True).replace(SPAN_ID, f"{i:016x}") for i in range(1, 8)]
    path = tmp_path / "spans.jsonl"
    path.write_text("\n".join(lines) + "\n")
    [warning] = profiler.load(path).warnings
    assert warning.startswith(f"{path}: 7 token count(s)") and warning.endswith("and 2 more")
