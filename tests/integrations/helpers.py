"""What the integration tests share: the agents, their environment, and the bill the stub server answered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from genai_prices import Usage, calc_price

from tests.integrations.cases import AgentCase
from tests.integrations.stub_server import AnsweredCall, StubModelServer
from tests.paths import REPO

AGENTS = REPO / "tests" / "integrations" / "agents"
PROVIDERS = {"chat.completions": "openai", "responses": "openai", "messages": "anthropic"}
#: A subprocess that takes longer than this has hung: fail it rather than the whole suite's timeout.
RUN_TIMEOUT_S = 180


@dataclass(frozen=True)
class Bill:
    """Model calls, tokens (OTel convention: input includes the cache) and dollars, as a report totals them."""

    model_calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    api_cost_usd: float

    @classmethod
    def of_report(cls, report: dict[str, Any]) -> Bill:
        """The bill in a `--format json` report's totals."""
        totals = report["totals"]
        return cls(totals["model_calls"], *(round(totals[k]) for k in (
            "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")),
            round(totals["api_cost_usd"] or 0.0, 12))


def price_usd(call: AnsweredCall, *, cache_reported: bool = True) -> float:
    """The dollars genai-prices gives one answered call (as if it reported no cache, when told so)."""
    usage = Usage(input_tokens=call.input_tokens, output_tokens=call.output_tokens,
                  cache_read_tokens=(call.cache_read_tokens or None) if cache_reported else None,
                  cache_write_tokens=(call.cache_write_tokens or None) if cache_reported else None)
    return float(calc_price(usage, call.model, provider_id=PROVIDERS[call.api]).total_price)


def answered_bill(calls: list[AnsweredCall], *, cache_reported: bool = True) -> Bill:
    """The bill that the stub answered: what an exact report totals to.

    `cache_reported=False` is the bill an instrumentation that drops the cache counts makes of it.
    """
    assert calls, "the agent made no model call to the stub"
    return Bill(
        model_calls=len(calls),
        input_tokens=sum(c.input_tokens for c in calls),
        output_tokens=sum(c.output_tokens for c in calls),
        cache_read_tokens=sum(c.cache_read_tokens for c in calls) if cache_reported else 0,
        cache_write_tokens=sum(c.cache_write_tokens for c in calls) if cache_reported else 0,
        api_cost_usd=round(sum(price_usd(c, cache_reported=cache_reported) for c in calls), 12),
    )


def agent_env(stub: StubModelServer, api_key: str) -> dict[str, str]:
    """The environment an agent runs in: this one, less any real keys and telemetry settings, aimed at the stub.

    Proxy variables point at the stub as well, so that a request for any other host (an SDK's own
    telemetry upload, say) lands on the stub as a logged stray instead of leaving the machine.
    """
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "ANTHROPIC_", "OTEL_", "SESSIONPROF_", "LANGSMITH_", "LANGCHAIN_"))
           and k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    env.update(OPENAI_BASE_URL=stub.openai_base_url, OPENAI_API_KEY=api_key, ANTHROPIC_BASE_URL=stub.url,
               ANTHROPIC_API_KEY=api_key, HTTP_PROXY=stub.url, HTTPS_PROXY=stub.url, ALL_PROXY=stub.url,
               NO_PROXY="127.0.0.1,localhost", PYTHONUNBUFFERED="1")
    return env


def new_api_key() -> str:
    """A key of one run's own, under which the stub logs what it answered that run."""
    return f"sk-run-{uuid.uuid4().hex}"


def sessionprof() -> str:
    """The `sessionprof` console script installed beside this interpreter."""
    return shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"


def run_checked(command: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run a command to completion; fail the test with its output if it fails."""
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          check=False)
    if done.returncode != 0:
        pytest.fail(f"{command} exited {done.returncode}\nstdout:\n{done.stdout[-3000:]}\n"
                    f"stderr:\n{done.stderr[-3000:]}")
    return done


def read_report(path: Path) -> dict[str, Any]:
    """A `--format json` report."""
    return json.loads(path.read_text(encoding="utf-8"))


def sessions_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's session rows."""
    return [step for step in report["steps"] if step["kind"] == "session"]


def tool_paths(report: dict[str, Any], tool_name: str) -> list[list[str]]:
    """For each run of `tool_name`, the kinds of the steps from it up to its root, itself first."""
    by_id = {step["span_id"]: step for step in report["steps"]}
    paths = []
    for step in report["steps"]:
        if step["kind"] == "execute_tool" and step["tool_name"] == tool_name:
            path, node = [], step
            while node is not None:
                path.append(node["kind"])
                node = by_id.get(node["parent_span_id"]) if node["parent_span_id"] else None
            paths.append(path)
    return paths


@dataclass(frozen=True)
class Finished:
    """One finished agent run: the key the stub logged it under and the report it gave."""

    api_key: str
    report: dict[str, Any]
    stderr: str


def start_selected(request: pytest.FixtureRequest, pool: ThreadPoolExecutor,
                   run: Callable[[AgentCase], Finished]) -> dict[str, Future[Finished]]:
    """Start `run` in `pool` for every case that the calling module's selected tests take."""
    cases = {item.callspec.params["case"] for item in request.session.items
             if item.module is request.module and hasattr(item, "callspec") and "case" in item.callspec.params}
    return {case.id: pool.submit(run, case) for case in sorted(cases, key=lambda case: case.id)}


def assert_billed_as_answered(finished: Finished, calls: list[AnsweredCall], case: AgentCase) -> None:
    """The report bills what the stub answered, once, in one session, with the framework's tools under it."""
    report = finished.report
    assert "Traceback" not in finished.stderr, finished.stderr
    assert Bill.of_report(report) == answered_bill(calls, cache_reported=case.cache_reported)
    assert len(sessions_of(report)) == 1, [s["name"] for s in sessions_of(report)]
    paths = tool_paths(report, "get_weather")
    assert len(paths) == case.tool_runs, paths
    assert all(path[-1] == "session" for path in paths), paths
    assert report["checks"].get("duplicate_calls", 0) == case.duplicates
