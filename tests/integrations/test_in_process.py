"""`profiler.instrument()` + `profiler.session()` around an unchanged agent: the same bill as `sessionprof run`."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.integrations.cases import ANTHROPIC_INSTRUMENTED, LANGGRAPH, OPENAI, OPENAI_AGENTS, PYDANTIC_AI, AgentCase
from tests.integrations.helpers import (
    AGENTS,
    Finished,
    agent_env,
    assert_billed_as_answered,
    new_api_key,
    read_report,
    run_checked,
    sessions_of,
    start_selected,
)
from tests.integrations.stub_server import StubModelServer

pytestmark = pytest.mark.slow
HARNESS = Path(__file__).with_name("in_process.py")


@pytest.fixture(scope="module")
def finished(request: pytest.FixtureRequest, pool: ThreadPoolExecutor, stub: StubModelServer,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Finished]]:
    """Every selected case of this module, run in a process of its own, two at a time."""

    def run(case: AgentCase) -> Finished:
        key, cwd = new_api_key(), tmp_path_factory.mktemp(case.id)
        done = run_checked([sys.executable, str(HARNESS), str(AGENTS / case.script), "run", "report.json"],
                           env=agent_env(stub, key), cwd=cwd)
        return Finished(key, read_report(cwd / "report.json"), done.stderr)

    return start_selected(request, pool, run)


@pytest.mark.parametrize("case", [c.param() for c in (OPENAI, ANTHROPIC_INSTRUMENTED, PYDANTIC_AI, OPENAI_AGENTS,
                                                       LANGGRAPH)])
def test_session_with_instrument_bills_each_call_once(case: AgentCase, finished: dict[str, Future[Finished]],
                                                      stub: StubModelServer) -> None:
    result = finished[case.id].result()
    assert_billed_as_answered(result, stub.calls(result.api_key), case)
    assert [s["name"] for s in sessions_of(result.report)] == ["session integration"]
