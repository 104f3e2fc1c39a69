"""`sessionprof serve`: a long-lived receiver for agents started elsewhere, ended by Ctrl-C or SIGTERM."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from profiler.capture.empty_run import explain_empty_run
from profiler.capture.serve import is_loopback, serve
from profiler.pricing.prices import load_prices
from tests.capture.otlp_helpers import chat_attrs
from tests.cli.helpers import invoke


def _sessionprof() -> str:
    return shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"


def _export_agent_turn(endpoint: str) -> None:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
    tracer = provider.get_tracer("elsewhere")
    with (tracer.start_as_current_span("invoke_agent remote", attributes={"gen_ai.operation.name": "invoke_agent"}),
          tracer.start_as_current_span("chat gpt-4o", attributes=chat_attrs(inp=4000, out=300))):
        pass
    provider.shutdown()


@pytest.mark.parametrize("stop", [signal.SIGINT, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)])
def test_serve_records_until_a_signal_then_reports(tmp_path: Path, stop: signal.Signals) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONPROF_", "OTEL_"))}
    proc = subprocess.Popen([_sessionprof(), "serve", "--port", "0", "--gpu", "none", "--run-dir",
                             str(tmp_path / "run"), "--no-html", "-f", "json"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        heard = ""
        deadline = time.monotonic() + 60
        while "Ctrl-C ends the run" not in heard and time.monotonic() < deadline:
            heard += proc.stderr.readline()
        found = re.search(r"OTEL_EXPORTER_OTLP_ENDPOINT=(http://127\.0\.0\.1:\d+)", heard)
        assert found, heard
        _export_agent_turn(found.group(1))
        proc.send_signal(stop)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and f"run directory: {tmp_path / 'run'}" in err
    totals = json.loads(out)["totals"]
    assert (totals["model_calls"], totals["input_tokens"], totals["output_tokens"]) == (1, 4000, 300)
    meta = json.loads((tmp_path / "run" / "run.json").read_text())
    assert meta["status"] == "complete" and meta["otlp_receiver"]["spans"] == 2


def test_serve_with_nothing_received_explains_how_to_send(tmp_path: Path) -> None:
    stream = io.StringIO()
    stop = threading.Event()
    stop.set()  # ends as soon as it starts
    result = serve(run_dir=tmp_path / "run", gpu="none", interval_s=0.1, prices=load_prices(), port=0, stream=stream,
                   stop=stop)
    assert result.final_exit_code == 3 and not result.spans_recorded
    assert "Ctrl-C ends the run" in stream.getvalue()
    message = explain_empty_run(result, served=True)
    assert f"  - set OTEL_EXPORTER_OTLP_ENDPOINT={result.endpoint} (and OTEL_EXPORTER_OTLP_PROTOCOL=" in message
    assert "decorators" not in message and "Claude Code: also CLAUDE_CODE_ENABLE_TELEMETRY=1" in message


def test_a_port_in_use_is_one_line_and_leaves_no_run_directory(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", "--port", port, "--gpu", "none", "--run-dir", tmp_path / "run")
    assert result.exit_code == 1
    assert result.output.strip() == (f"sessionprof: error: port {port} on 127.0.0.1 is in use (another OTLP "
                                     "collector or sessionprof serve?): choose another with --port")
    assert not (tmp_path / "run").exists()


def test_listening_beyond_loopback_warns_first(tmp_path: Path) -> None:
    # 192.0.2.1 (TEST-NET-1) is no address of this machine: the warning comes, then a one-line error,
    # and nothing ever listens off loopback.
    result = invoke("serve", "--host", "192.0.2.1", "--port", 0, "--gpu", "none", "--run-dir", tmp_path / "run")
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 2
    assert lines[0] == ("sessionprof: warning: listening on 192.0.2.1, not loopback: spans then come from the "
                        "network, and anyone who can reach this port can add steps to the run")
    assert lines[1].startswith("sessionprof: error: cannot listen on 192.0.2.1:0: ")
    assert [is_loopback(h) for h in ("127.0.0.1", "127.5.0.1", "localhost", "::1", "0.0.0.0", "::")] == [
        True, True, True, True, False, False]
