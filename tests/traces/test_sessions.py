"""Sessions from the ids that frameworks write: one session per conversation, however many traces it
took (each SDK call is often a trace of its own)."""

from __future__ import annotations

from pathlib import Path

import pytest

import profiler
from profiler.attribution.ledger import Ledger
from tests.builders import otlp_span
from tests.genai_dialects import CLAUDE_CALLS, anthropic_sdk, span_id, trace_id, write_trace

FRAMEWORK_KEYS = [
    "gen_ai.conversation.id",  # GenAI semconv, and what the writer stamps on every span of a run
    "session.id",  # OpenInference, Langfuse
    "langfuse.session.id",
    "traceloop.association.properties.session_id",
    "traceloop.association.properties.thread_id",  # OpenLLMetry's LangGraph integration
]


def calls_in_traces(key: str | None, *, on_every_span: bool = True) -> list[dict]:
    """Four SDK calls, each a trace of its own with a tool span inside; `key` names the session on
    every span, or on the call spans only."""
    spans = []
    for i, call in enumerate(CLAUDE_CALLS):
        ids = {key: "conv-42"} if key else {}
        spans.append(anthropic_sdk(span_id(1, i), None, call, start=2 * i, end=2 * i + 1, trace=trace_id(i), **ids))
        spans.append(_tool(span_id(2, i), span_id(1, i), 2 * i + 0.2, trace_id(i), ids if on_every_span else {}))
    return spans


def _tool(sid: str, parent: str, start: float, trace: str, ids: dict[str, str]) -> dict:
    return otlp_span(sid, parent, start=start, end=start + 0.5, trace=trace, name="execute_tool search",
                     attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", **ids})


def ledger_of(tmp_path: Path, spans: list[dict], resource: dict | None = None) -> Ledger:
    return profiler.attribute(profiler.load(write_trace(tmp_path / "spans.jsonl", spans, resource)))


@pytest.mark.parametrize("key", FRAMEWORK_KEYS)
@pytest.mark.parametrize("on_every_span", [True, False], ids=["every-span", "call-spans-only"])
def test_a_framework_session_id_makes_one_session_of_many_traces(tmp_path: Path, key: str,
                                                                  on_every_span: bool) -> None:
    ledger = ledger_of(tmp_path, calls_in_traces(key, on_every_span=on_every_span))
    assert ledger.totals["sessions"] == 1
    steps = ledger.steps[ledger.steps["kind"] != "unattributed"]
    assert set(steps["session_id"]) == {"conv-42"}
    assert ledger.totals["model_calls"] == 4 and ledger.totals["tool_calls"] == 4
    session = steps[steps["kind"] == "session"].iloc[0]
    calls = steps[steps["bills_usage"]]
    assert set(calls["parent_span_id"]) == {session["span_id"]}  # every call under the one session row
    tools = steps[steps["kind"] == "execute_tool"]
    assert set(tools["parent_span_id"]) == set(calls["span_id"])  # and each tool under its call


def test_a_session_id_on_the_resource_names_every_span_of_the_process(tmp_path: Path) -> None:
    ledger = ledger_of(tmp_path, calls_in_traces(None), resource={"session.id": "from-resource"})
    assert ledger.totals["sessions"] == 1
    assert set(ledger.steps["session_id"].dropna()) == {"from-resource"}


def test_without_any_session_id_each_trace_is_its_own_session(tmp_path: Path) -> None:
    ledger = ledger_of(tmp_path, calls_in_traces(None))
    assert ledger.totals["sessions"] == 4
    assert set(ledger.steps["session_id"].dropna()) == {trace_id(i) for i in range(4)}


def test_the_semconv_conversation_id_wins_over_a_framework_session_id(tmp_path: Path) -> None:
    spans = calls_in_traces("session.id")
    for span in spans:
        span["attributes"].append({"key": "gen_ai.conversation.id", "value": {"stringValue": "run-1"}})
    ledger = ledger_of(tmp_path, spans)
    assert set(ledger.steps["session_id"].dropna()) == {"run-1"}
