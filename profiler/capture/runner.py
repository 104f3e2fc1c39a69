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
    resolve_run_dir,
)
from profiler.capture.argv import mask_command
from profiler.capture.otlp_env import otlp_environment
from profiler.capture.recording import Recording, RunResult
from profiler.gpu.host import process_tree
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
    stop us (Ctrl-C, SIGTERM) are passed on to the child. How the child ended (its exit code, or the
    signal that ended it) is recorded in run.json, whose `status` says `complete` only for a child
    that exited on its own. Once the child has started, nothing that happens to the run directory
    changes the exit code: a loss is one warning.

    Raises:
        ValueError: `instrument` is not a selection.
        OSError: the run directory cannot be created (FileNotFoundError: the command cannot be started).
        GpuUnavailableError: `gpu="nvml"` on a machine without a usable GPU.
        ReceiverError: the OTLP receiver cannot listen.
    """
    selection = parse_selection(instrument)
    stream = stream if stream is not None else sys.stderr
    # An outer session's run directory is not this run's; $SESSIONPROF_HOME still says where runs go.
    path = resolve_run_dir(run_dir, environ={k: v for k, v in os.environ.items() if k != ENV_RUN_DIR})
    session = {"id": os.urandom(16).hex(), "name": " ".join(mask_command([Path(command[0]).name, *command[1:2]]))}
    child_pid = {"pid": os.getpid()}
    recording = Recording(path, command=command, gpu=gpu, interval_s=interval_s, prices=prices,
                          pids=lambda: process_tree(child_pid["pid"]), stream=stream,
                          settings={"instrument": str(selection)}, session=session)
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
    returncode, forwarded = _wait_forwarding_signals(child)
    ended = _how_it_ended(returncode)
    result = recording.finish(ended.pop("exit_code"), signal=ended.pop("signal", None), **ended,
                              **({"signals_forwarded": forwarded} if forwarded else {}))
    return dataclasses.replace(result, otlp_note=otlp.note())


def _how_it_ended(returncode: int) -> dict[str, Any]:
    """The child's end as a shell reports it: exit code N, or 128 + N with the signal's name."""
    if returncode >= 0:
        return {"exit_code": returncode}
    number = -returncode
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    return {"exit_code": 128 + number, "signal": name, "signal_number": number}


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


def _wait_forwarding_signals(child: subprocess.Popen[Any]) -> tuple[int, list[str]]:
    """Wait for the child, passing on SIGINT and SIGTERM; return its return code and what was passed on."""
    forwarded_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in forwarded_signals}
    forwarded: list[str] = []

    def forward(signum: int, _frame: Any) -> None:
        forwarded.append(signal.Signals(signum).name)
        with contextlib.suppress(OSError):
            child.send_signal(signum)

    for sig in forwarded_signals:
        signal.signal(sig, forward)
    try:
        return child.wait(), forwarded
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
