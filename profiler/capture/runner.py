"""`sessionprof run`: start an agent as a child process, sample the GPUs and take its OTLP from here,
and let the child write its spans into the same run directory: a Python child from its first line,
through the `sitecustomize` bootstrap that records every span it makes (its instrumentors' included)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, TextIO

from instrumentation.bootstrap import DIRECTORY as BOOTSTRAP_DIRECTORY
from instrumentation.instrumentors import Selection, parse_selection
from instrumentation.run_dir import (
    ENV_INSTRUMENT,
    ENV_PARENT_PID,
    ENV_RUN_DIR,
    ENV_SAMPLER,
    ENV_SESSION_ID,
    ENV_TRACEPARENT,
    read_meta,
    resolve_run_dir,
)
from profiler.capture.otlp_env import otlp_environment
from profiler.capture.recording import Recording, RunResult
from profiler.gpu.sampler import process_tree
from profiler.pricing.prices import Prices

__all__ = ["RunResult", "child_environment", "run_command"]


def run_command(command: list[str], *, run_dir: Path | None, gpu: str, interval_s: float, prices: Prices,
                instrument: str = "auto", stream: TextIO | None = None) -> RunResult:
    """Run `command` to completion under the profiler and return its run directory and exit code.

    `instrument` says which installed OpenTelemetry instrumentors a Python child turns on: `auto`,
    `none` or a comma list of names. Every span of the run belongs to one session, whose id the
    child is handed, unless a span names its own. The child also gets the standard
    `OTEL_EXPORTER_OTLP_*` variables pointing at the run's OTLP receiver (for any other
    OpenTelemetry SDK, in any language), unless the user set their own (`otlp_env`). Signals that
    stop us (Ctrl-C, SIGTERM) are passed on to the child, whose exit still ends the run cleanly, so
    an interrupted agent leaves a complete run directory.

    Raises:
        ValueError: `instrument` is not a selection.
        FileNotFoundError: the command cannot be started.
    """
    selection = parse_selection(instrument)
    stream = stream if stream is not None else sys.stderr
    # An outer session's run directory is not this run's; $SESSIONPROF_HOME still says where runs go.
    path = resolve_run_dir(run_dir, environ={k: v for k, v in os.environ.items() if k != ENV_RUN_DIR})
    session = {"id": os.urandom(16).hex(), "name": " ".join([Path(command[0]).name, *command[1:2]])}
    child_pid = {"pid": os.getpid()}
    recording = Recording(path, command=command, gpu=gpu, interval_s=interval_s, prices=prices,
                          pids=lambda: process_tree(child_pid["pid"]), stream=stream,
                          meta={"instrument": str(selection), "sessions": [session]}, session_id=session["id"])
    endpoint = recording.start()
    otlp = otlp_environment(endpoint, os.environ)
    if otlp.note():
        print(f"sessionprof: {otlp.note()}", file=stream)
    try:
        child = subprocess.Popen(command, env={**child_environment(path, session["id"], selection), **otlp.added})
    except OSError as err:
        recording.finish(127, error=str(err))
        raise FileNotFoundError(f"cannot start {command[0]!r}: {err.strerror or err}") from None
    child_pid["pid"] = child.pid
    exit_code = _wait_forwarding_signals(child)
    # Sessions the child opened itself (profiler.session()) wrote themselves into run.json meanwhile.
    sessions = [session, *(s for s in read_meta(path).get("sessions", []) if s.get("id") != session["id"])]
    return dataclasses.replace(recording.finish(exit_code, sessions=sessions), otlp_note=otlp.note())


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
