"""`sessionprof serve` for an agent started elsewhere: `opentelemetry-instrument` exporting OTLP/HTTP to it."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integrations.cases import PYDANTIC_AI
from tests.integrations.helpers import (
    AGENTS,
    RUN_TIMEOUT_S,
    Bill,
    agent_env,
    answered_bill,
    new_api_key,
    read_report,
    run_checked,
    sessionprof,
    sessions_of,
    tool_paths,
)
from tests.integrations.stub_server import StubModelServer

pytestmark = pytest.mark.slow


def _listening_endpoint(serve: subprocess.Popen[str]) -> str:
    """Read serve's stderr until it says where to send spans; returns that endpoint."""
    heard = ""
    deadline = time.monotonic() + 60
    while "Ctrl-C ends the run" not in heard and time.monotonic() < deadline and serve.poll() is None:
        heard += serve.stderr.readline() if serve.stderr else ""
    found = re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=(http://127\.0\.0\.1:\d+)", heard)
    assert found, f"serve did not say where to send spans:\n{heard}"
    return found.group(1)


def test_serve_bills_an_agent_started_elsewhere(stub: StubModelServer, tmp_path: Path) -> None:
    serve_env = agent_env(stub, "serve")
    with subprocess.Popen([sessionprof(), "serve", "--port", "0", "--gpu", "none", "--no-html", "-f", "json",
                           "-o", "report.json", "--run-dir", "run"], cwd=tmp_path, env=serve_env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as serve:
        try:
            endpoint = _listening_endpoint(serve)
            key = new_api_key()
            env = agent_env(stub, key)
            env.update(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL="http/protobuf",
                       OTEL_TRACES_EXPORTER="otlp", OTEL_METRICS_EXPORTER="none", OTEL_LOGS_EXPORTER="none",
                       OTEL_SERVICE_NAME="weather-agent")
            instrument = shutil.which("opentelemetry-instrument", path=str(Path(sys.executable).parent))
            assert instrument, "opentelemetry-distro is not installed beside this interpreter"
            run_checked([instrument, sys.executable, str(AGENTS / PYDANTIC_AI.script)], env=env, cwd=tmp_path)
            serve.send_signal(signal.SIGINT)
            _, err = serve.communicate(timeout=RUN_TIMEOUT_S)
        finally:
            if serve.poll() is None:
                serve.kill()
    assert serve.returncode == 0, err
    report = read_report(tmp_path / "report.json")

    assert Bill.of_report(report) == answered_bill(stub.calls(key))
    assert len(sessions_of(report)) == 1
    paths = tool_paths(report, "get_weather")
    assert len(paths) == PYDANTIC_AI.tool_runs and all(path[-1] == "session" for path in paths), paths
