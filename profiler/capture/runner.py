"""`sessionprof run`: start an agent as a child process, sample the GPUs and take its OTLP from here,
and let the child's decorators write spans into the same run directory."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from instrumentation.run_dir import ENV_RUN_DIR, ENV_SAMPLER, resolve_run_dir
from profiler.capture.otlp_env import otlp_environment
from profiler.capture.recording import Recording, RunResult
from profiler.gpu.sampler import process_tree
from profiler.pricing.prices import Prices

__all__ = ["RunResult", "run_command"]


def run_command(command: list[str], *, run_dir: Path | None, gpu: str, interval_s: float, prices: Prices,
                stream: TextIO | None = None) -> RunResult:
    """Run `command` to completion under the profiler and return its run directory and exit code.

    The command gets the run directory (for our decorators and the Python bootstrap) and the
    standard `OTEL_EXPORTER_OTLP_*` variables pointing at the run's OTLP receiver (for any other
    OpenTelemetry SDK, in any language), unless the user set their own (`otlp_env`). Signals that
    stop us (Ctrl-C, SIGTERM) are passed on to the child, whose exit still ends the run cleanly, so an
    interrupted agent leaves a complete run directory.
    """
    stream = stream if stream is not None else sys.stderr
    path = resolve_run_dir(run_dir, environ={})
    child_pid = {"pid": os.getpid()}
    recording = Recording(path, command=command, gpu=gpu, interval_s=interval_s, prices=prices,
                          pids=lambda: process_tree(child_pid["pid"]), stream=stream)
    endpoint = recording.start()
    otlp = otlp_environment(endpoint, os.environ)
    if otlp.note():
        print(f"sessionprof: {otlp.note()}", file=stream)
    env = dict(os.environ, **otlp.added, **{ENV_RUN_DIR: str(path.resolve()), ENV_SAMPLER: "off"})
    try:
        child = subprocess.Popen(command, env=env)
    except OSError as err:
        recording.finish(127, error=str(err))
        raise FileNotFoundError(f"cannot start {command[0]!r}: {err.strerror or err}") from None
    child_pid["pid"] = child.pid
    exit_code = _wait_forwarding_signals(child)
    return dataclasses.replace(recording.finish(exit_code), otlp_note=otlp.note())


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
