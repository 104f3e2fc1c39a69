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

from instrumentation import _state
from instrumentation.bootstrap import DIRECTORY as BOOTSTRAP_DIRECTORY
from instrumentation.instrumentors import Selection, parse_selection
from instrumentation.run_dir import (
    ENV_INSTRUMENT,
    ENV_PARENT_PID,
    ENV_RUN_DIR,
    ENV_SAMPLER,
    ENV_SESSION_ID,
    ENV_TRACEPARENT,
    META_FILE,
    SAMPLES_FILE,
    UnsafeRunDirError,
    create_run_dir,
    resolve_run_dir,
    update_meta,
    with_losses,
)
from profiler.capture.argv import mask_command
from profiler.errors import GpuUnavailableError
from profiler.gpu.host import host_info, process_tree
from profiler.gpu.sampler import GpuSampler
from profiler.gpu.select import select_backend
from profiler.pricing.prices import Prices


@dataclass(frozen=True)
class RunResult:
    """The finished command: where its run was written, how it exited, and whether the run survived."""

    path: Path
    exit_code: int
    """As a shell reports it: the child's own code, or 128 + N when signal N ended it."""
    signal: str | None = None
    """The name of the signal that ended the child (`SIGTERM`), if one did."""
    lost: str | None = None
    """Why the run directory could not be completed (deleted mid-run, unwritable), if it could not."""


def run_command(command: list[str], *, run_dir: Path | None, gpu: str, interval_s: float, prices: Prices,
                instrument: str = "auto") -> RunResult:
    """Run `command` to completion under the profiler and return its run directory and exit code.

    `instrument` says which installed OpenTelemetry instrumentors a Python child turns on: `auto`,
    `none` or a comma list of names. Every span of the run belongs to one session, whose id the
    child is handed, unless a span names its own. Signals that stop us (Ctrl-C, SIGTERM) are passed
    on to the child. How the child ended (its exit code, or the signal that ended it) is recorded
    in run.json, whose `status` says `complete` only for a child that exited on its own. Once the
    child has started, nothing that happens to the run directory changes the exit code: a loss is
    one warning.

    Raises:
        ValueError: `instrument` is not a selection.
        OSError: the run directory cannot be created (FileNotFoundError: the command cannot be started).
        GpuUnavailableError: `gpu="nvml"` on a machine without a usable GPU.
    """
    selection = parse_selection(instrument)
    # An outer session's run directory is not this run's; $SESSIONPROF_HOME still says where runs go.
    path = resolve_run_dir(run_dir, environ={k: v for k, v in os.environ.items() if k != ENV_RUN_DIR})
    try:
        create_run_dir(path)
    except UnsafeRunDirError:
        raise
    except OSError as err:
        raise OSError(f"cannot create the run directory {path}: {err.strerror or err} (give --run-dir on a "
                      "writable disk)") from None
    session = {"id": os.urandom(16).hex(), "name": " ".join(mask_command([Path(command[0]).name, *command[1:2]]))}
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
    record = _Record(path, command, sampler, prices, started_ns, {"instrument": str(selection)}, session)
    record.write({"status": "running"}, first=True)

    try:
        child = subprocess.Popen(command, env=child_environment(path, session["id"], selection))
    except OSError as err:
        sampler.stop()
        record.write({"status": "complete", "exit_code": 127, "error": str(err)})
        raise FileNotFoundError(f"cannot start {command[0]!r}: {err.strerror or err}") from None
    child_pid["pid"] = child.pid
    returncode, forwarded = _wait_forwarding_signals(child)
    sampler.stop()
    ended = _how_it_ended(returncode)
    lost = record.write({"status": "killed" if ended.get("signal") else "complete", "ended_ns": time.time_ns(),
                         **ended, **({"signals_forwarded": forwarded} if forwarded else {})})
    return RunResult(path=path, exit_code=ended["exit_code"], signal=ended.get("signal"), lost=lost)


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


class _Record:
    """run.json as the parent writes it: merged under the run's lock with what children added."""

    def __init__(self, path: Path, command: list[str], sampler: GpuSampler, prices: Prices, started_ns: int,
                 settings: dict[str, Any], session: dict[str, str]) -> None:
        self.path, self.command, self.sampler, self.prices = path, command, sampler, prices
        self.started_ns, self.settings, self.session = started_ns, settings, session
        self.warned = False

    def write(self, fields: dict[str, Any], *, first: bool = False) -> str | None:
        """Write run.json; return why it could not be (one warning the first time), else None."""
        if not first and not self.path.is_dir():
            message = f"the run directory {self.path} was deleted while the command ran; its records are lost"
            if _state.claim_loss_warning(self.path):
                self._lost(message)
            return message
        stats = self.sampler.stats
        losses = {"sample_read_errors": stats.read_errors, "samples_failed_write": stats.samples_failed_write}
        meta = {**self._base(), **fields}

        def merge(previous: dict[str, Any]) -> dict[str, Any]:
            kept = {} if first else previous  # a new run replaces what a reused directory held
            # Sessions the child opened itself (profiler.session()) wrote themselves in meanwhile.
            sessions = [self.session, *(s for s in kept.get("sessions", [])
                                        if isinstance(s, dict) and s.get("id") != self.session["id"])]
            return with_losses({**kept, **meta, "sessions": sessions}, os.getpid(), losses)

        try:
            update_meta(self.path, merge)
        except OSError as err:
            return self._lost(f"cannot write {self.path / META_FILE} ({err.strerror or err}); the run's "
                              "metadata is missing")
        return None

    def _lost(self, message: str) -> str:
        if not self.warned:
            self.warned = True
            print(f"sessionprof: warning: {message}", file=sys.stderr)
        return message

    def _base(self) -> dict[str, Any]:
        return {
            "run_id": self.path.name,
            "started_ns": self.started_ns,
            "host": host_info(),
            "command": mask_command(self.command),
            **self.sampler.describe(),
            "prices": self.prices.to_json(),
            **self.settings,
        }


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
