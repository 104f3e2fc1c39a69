"""`sessionprof run`: start an agent as a child process, sample the GPUs from here, and let the
child write its spans into the same run directory: a Python child from its first line, through
the `sitecustomize` bootstrap that records every span it makes (its instrumentors' included)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrumentation.bootstrap import DIRECTORY as BOOTSTRAP_DIRECTORY
from instrumentation.instrumentors import Selection, parse_selection
from instrumentation.run_dir import (
    ENV_INSTRUMENT,
    ENV_PARENT_PID,
    ENV_RUN_DIR,
    ENV_SAMPLER,
    ENV_SESSION_ID,
    ENV_TRACEPARENT,
    create_run_dir,
    read_meta,
    resolve_run_dir,
    write_meta,
)
from profiler.errors import GpuUnavailableError
from profiler.gpu.host import host_info
from profiler.gpu.sampler import GpuSampler, process_tree
from profiler.gpu.samples_file import SAMPLES_FILE
from profiler.gpu.select import select_backend
from profiler.pricing.prices import Prices


@dataclass(frozen=True)
class RunResult:
    """The finished command: where its run was written and how it exited."""

    path: Path
    exit_code: int


def run_command(command: list[str], *, run_dir: Path | None, gpu: str, interval_s: float, prices: Prices,
                instrument: str = "auto") -> RunResult:
    """Run `command` to completion under the profiler and return its run directory and exit code.

    `instrument` says which installed OpenTelemetry instrumentors a Python child turns on: `auto`,
    `none` or a comma list of names. Every span of the run belongs to one session, whose id the
    child is handed, unless a span names its own. Signals that stop us (Ctrl-C, SIGTERM) are passed
    on to the child, whose exit still ends the run cleanly, so an interrupted agent leaves a
    complete run directory.

    Raises:
        ValueError: `instrument` is not a selection.
        FileNotFoundError: the command cannot be started.
    """
    selection = parse_selection(instrument)
    # An outer session's run directory is not this run's; $SESSIONPROF_HOME still says where runs go.
    path = resolve_run_dir(run_dir, environ={k: v for k, v in os.environ.items() if k != ENV_RUN_DIR})
    create_run_dir(path)
    session = {"id": os.urandom(16).hex(), "name": " ".join([Path(command[0]).name, *command[1:2]])}
    started_ns = time.time_ns()
    child_pid = {"pid": os.getpid()}
    sampler = GpuSampler(select_backend(gpu), path / SAMPLES_FILE, interval_s=interval_s,
                         pids=lambda: process_tree(child_pid["pid"]))
    sampler.start()
    if not sampler.gpus:
        if gpu == "nvml":
            sampler.stop()
            raise GpuUnavailableError(sampler.unavailable_reason or "no GPU")
        if gpu != "none":  # asked for no GPU: nothing to tell
            print(f"sessionprof: no GPU data ({sampler.unavailable_reason}); recording a CPU-only run",
                  file=sys.stderr)
    meta = {**_meta(path, command, sampler, prices, started_ns), "instrument": str(selection), "sessions": [session]}
    write_meta(path, {**meta, "status": "running"})

    try:
        child = subprocess.Popen(command, env=child_environment(path, session["id"], selection))
    except OSError as err:
        sampler.stop()
        write_meta(path, {**meta, **_meta(path, command, sampler, prices, started_ns), "status": "complete",
                          "exit_code": 127, "error": str(err)})
        raise FileNotFoundError(f"cannot start {command[0]!r}: {err.strerror or err}") from None
    child_pid["pid"] = child.pid
    exit_code = _wait_forwarding_signals(child)
    sampler.stop()
    # Sessions the child opened itself (profiler.session()) wrote themselves into run.json meanwhile.
    sessions = [session, *(s for s in read_meta(path).get("sessions", []) if s.get("id") != session["id"])]
    write_meta(path, {**meta, **_meta(path, command, sampler, prices, started_ns), "sessions": sessions,
                      "status": "complete", "ended_ns": time.time_ns(), "exit_code": exit_code})
    return RunResult(path=path, exit_code=exit_code)


def child_environment(path: Path, session_id: str, selection: Selection) -> dict[str, str]:
    """The child's environment: ours plus where to write, its session, and the bootstrap that a
    Python child runs first (on PYTHONPATH, before the user's entries)."""
    env = {k: v for k, v in os.environ.items() if k not in (ENV_TRACEPARENT, ENV_PARENT_PID)}
    paths = [entry for entry in env.get("PYTHONPATH", "").split(os.pathsep) if entry]
    env["PYTHONPATH"] = os.pathsep.join([str(BOOTSTRAP_DIRECTORY),
                                         *(p for p in paths if Path(p).resolve() != BOOTSTRAP_DIRECTORY)])
    env.update({ENV_RUN_DIR: str(path.resolve()), ENV_SAMPLER: "off", ENV_SESSION_ID: session_id,
                ENV_INSTRUMENT: str(selection)})
    return env


def _wait_forwarding_signals(child: subprocess.Popen[Any]) -> int:
    forwarded = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in forwarded}

    def forward(signum: int, _frame: Any) -> None:
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    for sig in forwarded:
        signal.signal(sig, forward)
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _meta(path: Path, command: list[str], sampler: GpuSampler, prices: Prices, started_ns: int) -> dict[str, Any]:
    return {
        "run_id": path.name,
        "started_ns": started_ns,
        "host": host_info(),
        "command": command,
        **sampler.describe(),
        "prices": prices.to_json(),
        "dropped": {"sample_read_errors": sampler.stats.read_errors},
    }
