"""An agent ended by a signal: its ended steps are flushed on SIGTERM, `sessionprof run` exits as a
shell would report it (143, 137, 130), and run.json and the report say how and when it ended."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import raw_spans

pytestmark = pytest.mark.slow  # each starts Python processes and waits on them

#: Prints each step after it ended (its span is then queued for the next flush, 0.5 s later).
AGENT = textwrap.dedent("""
    import os, signal, sys, time
    import profiler

    @profiler.tool
    def step(i):
        time.sleep(0.005)

    mode = sys.argv[1]
    if mode == "plain":  # plain OpenTelemetry spans, recorded by `sessionprof run`'s start-up capture
        from opentelemetry import trace

        def step(i):
            with trace.get_tracer("agent").start_as_current_span("execute_tool step"):
                time.sleep(0.005)
    if mode == "user-handler":
        def handler(signum, frame):
            print("user handler ran", flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, handler)
    if mode == "ignored":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def loop():
        for i in range(100_000):
            step(i)
            print(f"ended {i}", flush=True)
            if mode in ("self-kill", "self-interrupt") and i == 20:
                os.kill(os.getpid(), signal.SIGKILL if mode == "self-kill" else signal.SIGINT)
            if mode == "ignored" and i == 5:
                print("handler", signal.getsignal(signal.SIGTERM) is signal.SIG_IGN, flush=True)
                return

    if len(sys.argv) > 2:
        with profiler.session("doomed", run_dir=sys.argv[2], gpu="none"):
            loop()
    else:
        loop()
""")


def _sessionprof() -> str:
    return shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"


def _ended(output: str) -> set[int]:
    return {int(line.split()[1]) for line in output.splitlines() if line.startswith("ended ")}


def _recorded(run_dir: Path) -> int:
    return sum(1 for s in raw_spans(run_dir) if s["name"] == "execute_tool step")


def _wait_for_steps(proc: subprocess.Popen[str], count: int) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while len([x for x in lines if x.startswith("ended ")]) < count and time.monotonic() < deadline:
        lines.append(proc.stdout.readline())
    return lines


def _run_cli(run_dir: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([_sessionprof(), "run", "--run-dir", str(run_dir), "--no-html", "--",
                             sys.executable, "-c", AGENT, mode], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


@pytest.mark.parametrize("mode", ["loop", "plain"])
def test_sigterm_to_sessionprof_run_flushes_the_agent_and_is_reported(tmp_path: Path, mode: str) -> None:
    run_dir = tmp_path / "run"
    proc = _run_cli(run_dir, mode)
    early = _wait_for_steps(proc, 150)
    proc.send_signal(signal.SIGTERM)  # passed on to the agent
    rest, errors = proc.communicate(timeout=60)
    ended = _ended("".join(early) + rest)
    assert len(ended) >= 150
    # Every step that ended before the signal is on disk: before, those of the last 0.5 s were lost.
    assert (_recorded(run_dir)) >= len(ended), errors
    assert proc.returncode == 143  # as a shell reports SIGTERM (before: 241)
    meta = json.loads((run_dir / "run.json").read_text())
    assert (meta["status"], meta["signal"], meta["exit_code"]) == ("killed", "SIGTERM", 143)
    assert meta["signals_forwarded"] == ["SIGTERM"]
    assert "the agent was killed by SIGTERM at " in rest and "last flush interval" in rest


@pytest.mark.parametrize(("mode", "name", "code"), [("self-kill", "SIGKILL", 137), ("self-interrupt", "SIGINT", 130)])
def test_an_agent_ended_by_a_signal_is_recorded_as_such(tmp_path: Path, mode: str, name: str, code: int) -> None:
    run_dir = tmp_path / "run"
    proc = _run_cli(run_dir, mode)
    output, errors = proc.communicate(timeout=60)
    assert proc.returncode == code, errors
    meta = json.loads((run_dir / "run.json").read_text())
    assert (meta["status"], meta["signal"], meta["exit_code"]) == ("killed", name, code)
    assert f"the agent was killed by {name} at " in output
    assert "incomplete run" in output  # the ledger's check: `complete` is not claimed


def _start_agent(mode: str, run_dir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", AGENT, mode, str(run_dir)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sigterm_to_an_agent_with_a_session_flushes_and_marks_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _start_agent("loop", run_dir)
    early = _wait_for_steps(proc, 150)
    proc.send_signal(signal.SIGTERM)
    rest, errors = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGTERM, errors  # still ended by the signal, as without us
    assert (_recorded(run_dir)) >= len(_ended("".join(early) + rest))
    meta = json.loads((run_dir / "run.json").read_text())
    assert (meta["status"], meta["signal"], meta["exit_code"]) == ("killed", "SIGTERM", 143)


def test_the_agents_own_sigterm_handler_still_runs(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = _start_agent("user-handler", run_dir)
    early = _wait_for_steps(proc, 150)
    proc.send_signal(signal.SIGTERM)
    rest, errors = proc.communicate(timeout=60)
    assert "user handler ran" in rest and proc.returncode == 0, errors
    assert (_recorded(run_dir)) >= len(_ended("".join(early) + rest))
    # The agent chose to exit cleanly: its session closed as usual.
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"


def test_an_ignored_sigterm_stays_ignored(tmp_path: Path) -> None:
    proc = _start_agent("ignored", tmp_path / "run")
    output, errors = proc.communicate(timeout=60)
    assert "handler True" in output, errors
