"""The three real trace files of `shared/reference/real-traces`, read through `profiler.load()` and
`profiler.attribute()`, against the reference totals in that folder's README."""

from __future__ import annotations

import pytest

import profiler
from profiler.analysis.sessions import session_summaries
from tests.paths import REAL

pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared/reference/real-traces is not here")

COPILOT = REAL / "copilot_cli_otlp_pretty.json"
MAF = REAL / "maf_python_console_exporter.jsonl"
COLLECTOR = REAL / "collector_fileexporter_java_http_nogenai.jsonl"


@pytest.fixture(scope="module")
def copilot() -> tuple[profiler.Run, profiler.Ledger]:
    run = profiler.load(COPILOT)
    return run, profiler.attribute(run)


@pytest.fixture(scope="module")
def maf() -> tuple[profiler.Run, profiler.Ledger]:
    run = profiler.load(MAF)
    return run, profiler.attribute(run)


def test_copilot_pretty_concatenated_resource_spans_give_every_span(copilot) -> None:
    run, _ = copilot
    assert run.meta["format"] == "otlp"
    assert len(run.spans) == 281
    assert run.spans["trace_id"].nunique() == 5
    kinds = run.spans["kind"].value_counts()
    assert kinds["execute_tool"] == 113 and kinds["chat"] == 62 and kinds["invoke_agent"] == 7
    assert run.warnings == []


def test_copilot_usage_is_counted_on_chat_spans_only_never_doubled_by_agents(copilot) -> None:
    run, ledger = copilot
    totals = ledger.totals
    assert totals["input_tokens"] == 6_225_557
    assert totals["output_tokens"] == 24_709
    assert totals["cache_read_tokens"] == 5_894_173
    assert totals["model_calls"] == 62
    billing = ledger.steps[ledger.steps["bills_usage"]]
    assert set(billing["kind"]) == {"chat"}
    # The invoke_agent aggregates do carry the same sums: a naive reader would double the bill.
    agents = run.spans[run.spans["kind"] == "invoke_agent"]
    assert agents["input_tokens"].sum() == 6_225_557


def test_copilot_models_and_dollars(copilot) -> None:
    _, ledger = copilot
    billing = ledger.steps[ledger.steps["bills_usage"]]
    assert billing["model"].value_counts().to_dict() == {"claude-opus-4.6-1m": 60, "claude-haiku-4.5": 2}
    assert ledger.totals["api_cost_usd"] > 0
    assert ledger.checks["unpriced_calls"] == 0
    assert (billing["api_cost_source"] == "computed:genai-prices").all()


def test_copilot_is_one_conversation_even_where_tool_spans_lack_its_id(copilot) -> None:
    _, ledger = copilot
    sessions = session_summaries(ledger)
    assert sessions["session_id"].tolist() == ["f397d418-a232-4c0e-b08e-34009ac14369"]
    assert sessions["steps"].iat[0] == 281
    assert sessions["model_calls"].iat[0] == 62
    assert sessions["input_tokens"].iat[0] == 6_225_557


def test_maf_console_records_are_deduplicated_and_never_ended_spans_reported(maf) -> None:
    run, _ = maf
    assert run.meta["format"] == "console"
    assert len(run.spans) + run.meta["unfinished_spans"] == 199
    assert run.meta["unfinished_spans"] == 11
    assert not run.spans.duplicated(["trace_id", "span_id"]).any()
    assert run.spans["trace_id"].nunique() <= 22
    assert any("11 span(s) never ended" in w for w in run.warnings)


def test_maf_chat_usage_is_counted_once_though_agents_are_siblings_of_their_chats(maf) -> None:
    run, ledger = maf
    assert ledger.totals["input_tokens"] == 7_309
    assert ledger.totals["output_tokens"] == 2_410
    assert ledger.totals["model_calls"] == 34
    assert (run.spans["kind"] == "invoke_agent").sum() == 22
    assert not ledger.steps.loc[ledger.steps["kind"] == "invoke_agent", "bills_usage"].any()


def test_maf_models_read_from_the_response(maf) -> None:
    _, ledger = maf
    billing = ledger.steps[ledger.steps["bills_usage"]]
    assert set(billing["model"]) == {"accounts/fireworks/models/gpt-oss-20b"}
    assert billing["remote"].all()  # a hosted endpoint: no share of a local GPU


def test_collector_file_without_genai_has_zero_model_calls_not_an_error() -> None:
    run = profiler.load(COLLECTOR)
    ledger = profiler.attribute(run)
    assert len(run.spans) == 11
    assert run.warnings == []
    assert ledger.totals["model_calls"] == 0
    assert ledger.totals["input_tokens"] == 0
    assert ledger.totals["api_cost_usd"] is None
    assert ledger.checks["unpriced_calls"] == 0
