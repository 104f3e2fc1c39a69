"""Many small sessions cost what their rows cost: the report's turns and the sessions list are linear
in the sessions (the turns' spending-so-far took a pass per session: 119 s at 30,000 sessions, and
the sessions list about 0.85 ms a session)."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache

import pytest

import profiler
from profiler.analysis import insights
from profiler.analysis.sessions import session_summaries
from profiler.attribution.ledger import Ledger
from reports.sessions_report import render_sessions
from tests.builders import chat, make_run, span

pytestmark = pytest.mark.slow  # thousands of sessions, each stage timed three times


@cache
def _ledger(sessions: int) -> Ledger:
    """`sessions` sessions of an agent with two chat calls and a tool call between them, 10 s apart."""
    rows = []
    for s in range(sessions):
        t, trace, conversation = 10 * s, f"t{s}", f"conv-{s}"
        rows += [span(f"a{s}", start=t, end=t + 8, kind="invoke_agent", trace=trace, session=conversation),
                 chat(f"c{s}", f"a{s}", start=t + 1, end=t + 3, trace=trace, session=conversation),
                 span(f"x{s}", f"a{s}", start=t + 3, end=t + 5, kind="execute_tool", trace=trace,
                      session=conversation),
                 chat(f"d{s}", f"a{s}", start=t + 5, end=t + 7, trace=trace, session=conversation)]
    return profiler.attribute(make_run(rows))


def _best_of_three(work: Callable[[], object]) -> float:
    times = []
    for _ in range(3):
        began = time.perf_counter()
        work()
        times.append(time.perf_counter() - began)
    return min(times)


def test_the_turns_of_many_sessions_cost_well_under_a_millisecond_a_session() -> None:
    # A pass per session cost about 1.7 ms a session here, growing with the rows: 119 s at 30,000.
    large = _ledger(8_000)
    assert _best_of_three(lambda: insights.model_turns(large)) / 8_000 < 0.25e-3
    turns = insights.model_turns(large)
    assert len(turns) == 16_000 and list(turns["turn"][:4]) == [1, 2, 1, 2]


def test_the_sessions_list_costs_well_under_a_millisecond_a_session() -> None:
    ledger = _ledger(8_000)
    seconds = _best_of_three(lambda: render_sessions(session_summaries(ledger), "table"))
    assert seconds / 8_000 < 0.25e-3
    table = render_sessions(session_summaries(ledger), "table", source="run")
    assert table.count("\n") == 8_000 + 2 and "8000 session(s) in run" in table
