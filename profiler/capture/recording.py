"""`Recording`: what `sessionprof run` and `sessionprof serve` share while a run records: the run
directory and its run.json, the GPU sampler, the OTLP receiver and the live line."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from instrumentation import _state
from instrumentation.run_dir import (
    META_FILE,
    SAMPLES_FILE,
    SPANS_FILE,
    UnsafeRunDirError,
    create_run_dir,
    update_meta,
    with_losses,
)
from profiler.capture.argv import mask_command
from profiler.capture.live import LiveLine, SpanTally
from profiler.capture.receiver import LOOPBACK, OtlpReceiver, ReceiverStats
from profiler.errors import GpuUnavailableError
from profiler.gpu.host import host_info
from profiler.gpu.sampler import GpuSampler
from profiler.gpu.select import select_backend
from profiler.pricing.prices import Prices

#: `sessionprof run` and `serve` exit with this when the command succeeded (or serving ended) but
#: not one span was recorded: an empty report is not a success.
EMPTY_RUN_EXIT_CODE = 3


@dataclass(frozen=True)
class RunResult:
    """A finished recording: where it was written, how the command exited, and what came in."""

    path: Path
    exit_code: int
    """As a shell reports it: the child's own code, or 128 + N when signal N ended it (0 for `serve`)."""
    signal: str | None = None
    """The name of the signal that ended the child (`SIGTERM`), if one did."""
    lost: str | None = None
    """Why the run directory could not be completed (deleted mid-run, unwritable), if it could not."""
    spans_recorded: bool = True
    gpu_sampled: bool = False
    receiver: ReceiverStats = field(default_factory=ReceiverStats)
    endpoint: str | None = None
    """Where the receiver listened; None when it could not."""
    otlp_note: str | None = None
    """Set when the user's own OTLP settings sent the command's exports elsewhere."""

    @property
    def final_exit_code(self) -> int:
        """The command's exit code, or `EMPTY_RUN_EXIT_CODE` when it succeeded and nothing was recorded."""
        return self.exit_code or (0 if self.spans_recorded or self.lost else EMPTY_RUN_EXIT_CODE)


def spans_recorded(path: Path) -> bool:
    """Whether the run's spans.jsonl holds anything (a span from any source)."""
    try:
        with (path / SPANS_FILE).open("rb") as stream:
            return any(chunk.strip() for chunk in iter(lambda: stream.read(65536), b""))
    except OSError:
        return False


class Recording:
    """One run being recorded: receiver, sampler and live line started together, stopped in order;
    run.json merged under the run's lock with what child processes add to it."""

    def __init__(self, path: Path, *, command: list[str], gpu: str, interval_s: float, prices: Prices,
                 pids: Callable[[], frozenset[int]] | None = None, host: str = LOOPBACK, port: int = 0,
                 stream: TextIO | None = None, settings: dict[str, Any] | None = None,
                 session: dict[str, str] | None = None) -> None:
        """Prepare; nothing starts until `start()`.

        `settings` are fields of the caller's for run.json; `session` (`id`, `name`) is the run's
        one session, first in run.json's `sessions` and the session of received spans that name none.
        """
        self.path, self.command, self.gpu, self.prices = path, command, gpu, prices
        self.settings = dict(settings or {})
        self.session = session
        self.stream = stream if stream is not None else sys.stderr
        self.started_ns = 0
        self.warned = False
        self.sampler = GpuSampler(select_backend(gpu), path / SAMPLES_FILE, interval_s=interval_s, pids=pids)
        self.receiver = OtlpReceiver(path, host=host, port=port, session_id=session["id"] if session else None)
        self.live = LiveLine(SpanTally(path / SPANS_FILE), self.stream, gpus=self.sampler.latest_readings)

    def start(self) -> str:
        """Listen, create the run directory, start sampling, write run.json; returns the endpoint.

        Raises:
            ReceiverError: the receiver cannot listen where asked (nothing is created).
            OSError: the run directory cannot be created.
            GpuUnavailableError: `gpu="nvml"` and no GPU.
        """
        endpoint = self.receiver.start()  # first: a port in use leaves nothing behind
        try:
            self._create_directory()
            self.started_ns = time.time_ns()
            self.sampler.start()
            if not self.sampler.gpus and self.gpu == "nvml":
                self.sampler.stop()
                raise GpuUnavailableError(self.sampler.unavailable_reason or "no GPU")
        except BaseException:
            self.receiver.stop()
            raise
        if not self.sampler.gpus and self.gpu != "none":  # asked for no GPU: nothing to tell
            self._say(f"no GPU data ({self.sampler.unavailable_reason}); recording a CPU-only run")
        self.write({"status": "running"}, first=True)
        self.live.start()
        return endpoint

    def finish(self, exit_code: int, *, signal: str | None = None, **fields: Any) -> RunResult:
        """Stop the live line, take in what exporters are still sending, stop sampling, write run.json."""
        self.live.stop()
        self.receiver.stop()
        self.sampler.stop()
        lost = self.write({"status": "killed" if signal else "complete", "ended_ns": time.time_ns(),
                           "exit_code": exit_code, **({"signal": signal} if signal else {}), **fields})
        return RunResult(path=self.path, exit_code=exit_code, signal=signal, lost=lost,
                         spans_recorded=spans_recorded(self.path), gpu_sampled=self.sampler.stats.samples > 0,
                         receiver=self.receiver.stats, endpoint=self.receiver.endpoint)

    def write(self, fields: dict[str, Any], *, first: bool = False) -> str | None:
        """Write run.json; return why it could not be (one warning the first time), else None."""
        if not first and not self.path.is_dir():
            message = f"the run directory {self.path} was deleted while the command ran; its records are lost"
            if _state.claim_loss_warning(self.path):
                self._lost(message)
            return message
        stats = self.sampler.stats
        losses = {"sample_read_errors": stats.read_errors, "samples_failed_write": stats.samples_failed_write,
                  "otlp_rejected_spans": self.receiver.stats.rejected_spans}
        meta = {**self._base(), **fields}

        def merge(previous: dict[str, Any]) -> dict[str, Any]:
            kept = {} if first else previous  # a new run replaces what a reused directory held
            # Sessions the child opened itself (profiler.session()) wrote themselves in meanwhile.
            own = [self.session] if self.session else []
            ids = {session["id"] for session in own}
            sessions = [*own, *(s for s in kept.get("sessions", []) if isinstance(s, dict) and s.get("id") not in ids)]
            return with_losses({**kept, **meta, "sessions": sessions}, os.getpid(), losses)

        try:
            update_meta(self.path, merge)
        except OSError as err:
            return self._lost(f"cannot write {self.path / META_FILE} ({err.strerror or err}); the run's "
                              "metadata is missing")
        return None

    def _create_directory(self) -> None:
        try:
            create_run_dir(self.path)
        except UnsafeRunDirError:
            raise
        except OSError as err:
            raise OSError(f"cannot create the run directory {self.path}: {err.strerror or err} (give --run-dir "
                          "on a writable disk)") from None

    def _base(self) -> dict[str, Any]:
        return {
            "run_id": self.path.name,
            "started_ns": self.started_ns,
            "host": host_info(),
            "command": mask_command(self.command),
            **self.sampler.describe(),
            "prices": self.prices.to_json(),
            "otlp_receiver": {"endpoint": self.receiver.endpoint, **self.receiver.stats.to_json()},
            **self.settings,
        }

    def _lost(self, message: str) -> str:
        if not self.warned:
            self.warned = True
            self._say(f"warning: {message}")
        return message

    def _say(self, message: str) -> None:
        print(f"sessionprof: {message}", file=self.stream)
