"""`sessionprof run -- python agent.py`: each real framework's agent, unchanged, billed exactly as the stub answered."""

from __future__ import annotations

import sys
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.integrations.cases import ALL, AgentCase
from tests.integrations.helpers import (
    AGENTS,
    Finished,
    agent_env,
    assert_billed_as_answered,
    new_api_key,
    read_report,
    run_checked,
    sessionprof,
    start_selected,
)
from tests.integrations.stub_server import StubModelServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(request: pytest.FixtureRequest, pool: ThreadPoolExecutor, stub: StubModelServer,
             tmp_path_factory: pytest.TempPathFactory) -> dict[str, Future[Finished]]:
    """Every selected case of this module, run under `sessionprof run` two at a time."""

    def run(case: AgentCase) -> Finished:
        key, cwd = new_api_key(), tmp_path_factory.mktemp(case.id)
        done = run_checked([sessionprof(), "run", "--gpu", "none", "--no-html", "-f", "json", "-o", "report.json",
                            "--run-dir", "run", *case.run_options, "--", sys.executable, str(AGENTS / case.script)],
                           env=agent_env(stub, key), cwd=cwd)
        return Finished(key, read_report(cwd / "report.json"), done.stderr)

    return start_selected(request, pool, run)


@pytest.mark.parametrize("case", [case.param() for case in ALL])
def test_run_bills_each_call_once_in_one_session(case: AgentCase, finished: dict[str, Future[Finished]],
                                                  stub: StubModelServer) -> None:
    result = finished[case.id].result()
    assert_billed_as_answered(result, stub.calls(result.api_key), case)
