"""`sessionprof run`: start an agent as a child process, sample the GPUs from here, and let the
child's decorators write spans into the same run directory."""

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

from instrumentation.run_dir import ENV_RUN_DIR, ENV_SAMPLER, create_run_dir, resolve_run_dir, write_meta
from profiler.errors import GpuUnavailableError
from profiler.gpu.host import host_info, process_tree
from profiler.gpu.sampler import GpuSampler
from profiler.gpu.samples_file import SAMPLES_FILE
from profiler.gpu.select import select_backend
from profiler.pricing.prices import Prices


@dataclass(frozen=True)
class RunResult:
    """The finished command: where its run was written and how it exited."""

    path: Path
    exit_code: int


def run_command(command: list[str], *, run_dir: Path | None, gpu: str, interval_s: float, prices: Prices) -> RunResult:
    """Run `command` to completion under the profiler and return its run directory and exit code.

    Signals that stop us (Ctrl-C, SIGTERM) are passed on to the child, whose exit still ends the run
    cleanly, so an interrupted agent leaves a complete run directory.
    """
    path = resolve_run_dir(run_dir, environ={})
    create_run_dir(path)
    started_ns = time.time_ns()
    child_pid = {"pid": os.getpid()}
    sampler = GpuSampler(select_backend(gpu), path / SAMPLES_FILE, interval_s=interval_s,
                         pids=lambda: process_tree(child_pid["pid"]))
    sampler.start()
    if not sampler.gpus:
        if gpu == "nvml":
            sampler.stop()
            raise GpuUnavailableError(sampler.unavailable_reason or "no GPU")
        print(f"sessionprof: no GPU data ({sampler.unavailable_reason}); recording a CPU-only run", file=sys.stderr)
    meta = _meta(path, command, sampler, prices, started_ns)
    write_meta(path, {**meta, "status": "running"})

    env = dict(os.environ, **{ENV_RUN_DIR: str(path.resolve()), ENV_SAMPLER: "off"})
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as err:
        sampler.stop()
        write_meta(path, {**_meta(path, command, sampler, prices, started_ns), "status": "complete",
                          "exit_code": 127, "error": str(err)})
        raise FileNotFoundError(f"cannot start {command[0]!r}: {err.strerror or err}") from None
    child_pid["pid"] = child.pid
    exit_code = _wait_forwarding_signals(child)
    sampler.stop()
    write_meta(path, {**_meta(path, command, sampler, prices, started_ns), "status": "complete",
                      "ended_ns": time.time_ns(), "exit_code": exit_code})
    return RunResult(path=path, exit_code=exit_code)


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
