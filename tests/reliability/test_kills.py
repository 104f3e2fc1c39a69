"""`kill -9` of the agent, or of `sessionprof run`, leaves a run directory that loads, holds every
span that ended more than two seconds before the kill, and is reported as incomplete."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import profiler
from tests.reliability.helpers import raw_spans

pytestmark = pytest.mark.slow  # long property, fuzz or real-time runs: -m 'not slow' skips them

AGENT = textwrap.dedent("""
    import sys, time
    import profiler
    from profiler.testing import FakeGpuBackend

    @profiler.tool
    def step(i):
        time.sleep(0.05)
        print(f"ended {i} {time.time_ns()}", flush=True)

    gpu = FakeGpuBackend() if sys.argv[1] == "in-process" else "auto"
    with profiler.session("doomed", run_dir=sys.argv[2] if len(sys.argv) > 2 else None, gpu=gpu):
        for i in range(100_000):
            step(i)
""")


def _ended_before(lines: list[str], deadline_ns: int) -> set[int]:
    ended = set()
    for line in lines:
        parts = line.split()
        if len(parts) == 3 and parts[0] == "ended" and int(parts[2]) < deadline_ns:
            ended.add(int(parts[1]))
    return ended


def _count_recorded(run_dir: Path) -> int:
    return sum(1 for s in raw_spans(run_dir) if s["name"] == "execute_tool step")


def _wait_until_recording(run_dir: Path) -> None:
    """Wait for the first spans on disk (start-up takes a while on a busy machine), then 3 s more."""
    deadline = time.monotonic() + 60
    while not (run_dir / "spans.jsonl").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(3.0)


def _kill_and_check(proc: subprocess.Popen[str], run_dir: Path, victim_pid: int) -> None:
    _wait_until_recording(run_dir)
    kill_ns = time.time_ns()
    os.kill(victim_pid, signal.SIGKILL)
    output, _ = proc.communicate(timeout=30)
    ended_early = _ended_before(output.splitlines(), kill_ns - 2_000_000_000)
    assert len(ended_early) > 5
    assert _count_recorded(run_dir) >= len(ended_early)
    run = profiler.load(run_dir)
    ledger = profiler.attribute(run)
    assert ledger.checks["incomplete_run"] is True
    assert ledger.totals["tool_calls"] >= len(ended_early)


def test_kill_9_of_an_agent_with_an_in_process_session(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-c", AGENT, "in-process", str(run_dir)], stdout=subprocess.PIPE,
                            text=True)
    _kill_and_check(proc, run_dir, proc.pid)
    assert json.loads((run_dir / "run.json").read_text())["status"] == "running"
    assert (run_dir / "samples.csv").stat().st_size > 0


def test_kill_9_of_sessionprof_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    executable = shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"
    proc = subprocess.Popen([executable, "run", "--run-dir", str(run_dir), "--", sys.executable, "-c", AGENT,
                             "under-cli"], stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_until_recording(run_dir)
        kill_ns = time.time_ns()
        os.kill(proc.pid, signal.SIGKILL)  # the CLI dies; its agent is orphaned and keeps running
        time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        output, _ = proc.communicate(timeout=30)
    ended_early = _ended_before(output.splitlines(), kill_ns - 2_000_000_000)
    assert len(ended_early) > 5
    assert _count_recorded(run_dir) >= len(ended_early)
    ledger = profiler.attribute(profiler.load(run_dir))
    assert ledger.checks["incomplete_run"] is True
