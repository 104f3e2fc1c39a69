"""`Recording`: what `sessionprof run` and `sessionprof serve` share while a run records: the run
directory and its run.json, the GPU sampler, the OTLP receiver and the live line."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from instrumentation.run_dir import SPANS_FILE, create_run_dir, write_meta
from profiler.capture.live import LiveLine, SpanTally
from profiler.capture.receiver import LOOPBACK, OtlpReceiver, ReceiverStats
from profiler.errors import GpuUnavailableError
from profiler.gpu.host import host_info
from profiler.gpu.sampler import GpuSampler
from profiler.gpu.samples_file import SAMPLES_FILE
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
    """The command's exit code (0 for `serve`)."""
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
        return self.exit_code or (0 if self.spans_recorded else EMPTY_RUN_EXIT_CODE)


def spans_recorded(path: Path) -> bool:
    """Whether the run's spans.jsonl holds anything (a span from any source)."""
    try:
        with (path / SPANS_FILE).open("rb") as stream:
            return any(chunk.strip() for chunk in iter(lambda: stream.read(65536), b""))
    except OSError:
        return False


class Recording:
    """One run being recorded: sampler, receiver and live line started together, stopped in order."""

    def __init__(self, path: Path, *, command: list[str], gpu: str, interval_s: float, prices: Prices,
                 pids: Callable[[], frozenset[int]] | None = None, host: str = LOOPBACK, port: int = 0,
                 stream: TextIO | None = None, meta: dict[str, Any] | None = None,
                 session_id: str | None = None) -> None:
        """Prepare; nothing starts until `start()`. `meta` adds fields of the caller's to run.json;
        `session_id` is the session of received spans that name none."""
        self.path = path
        self.extra_meta = dict(meta or {})
        self.command = command
        self.gpu = gpu
        self.prices = prices
        self.stream = stream if stream is not None else sys.stderr
        self.started_ns = 0
        self.sampler = GpuSampler(select_backend(gpu), path / SAMPLES_FILE, interval_s=interval_s, pids=pids)
        self.receiver = OtlpReceiver(path, host=host, port=port, session_id=session_id)
        self.live = LiveLine(SpanTally(path / SPANS_FILE), self.stream, gpus=self.sampler.latest_readings)

    def start(self) -> str:
        """Create the run directory, start sampling and listening, write run.json; returns the endpoint.

        Raises:
            GpuUnavailableError: `gpu="nvml"` and no GPU.
            ReceiverError: the receiver cannot listen where asked (nothing is left running).
        """
        endpoint = self.receiver.start()  # first: a port in use leaves nothing behind
        create_run_dir(self.path)
        self.started_ns = time.time_ns()
        self.sampler.start()
        if not self.sampler.gpus:
            if self.gpu == "nvml":
                self.sampler.stop()
                self.receiver.stop()
                raise GpuUnavailableError(self.sampler.unavailable_reason or "no GPU")
            if self.gpu != "none":  # asked for no GPU: nothing to tell
                self._say(f"no GPU data ({self.sampler.unavailable_reason}); recording a CPU-only run")
        write_meta(self.path, {**self.meta(), "status": "running"})
        self.live.start()
        return endpoint

    def finish(self, exit_code: int, **extra: Any) -> RunResult:
        """Stop the live line, take in what exporters are still sending, stop sampling, write run.json."""
        self.live.stop()
        self.receiver.stop()
        self.sampler.stop()
        write_meta(self.path, {**self.meta(), "status": "complete", "ended_ns": time.time_ns(),
                               "exit_code": exit_code, **extra})
        return RunResult(path=self.path, exit_code=exit_code, spans_recorded=spans_recorded(self.path),
                         gpu_sampled=self.sampler.stats.samples > 0, receiver=self.receiver.stats,
                         endpoint=self.receiver.endpoint)

    def meta(self) -> dict[str, Any]:
        """run.json as it stands: host, command, sampler, prices, the receiver's counts, what was dropped."""
        stats = self.receiver.stats
        return {
            "run_id": self.path.name,
            "started_ns": self.started_ns,
            "host": host_info(),
            "command": self.command,
            **self.sampler.describe(),
            "prices": self.prices.to_json(),
            "otlp_receiver": {"endpoint": self.receiver.endpoint, **stats.to_json()},
            "dropped": {"sample_read_errors": self.sampler.stats.read_errors,
                        "otlp_rejected_spans": stats.rejected_spans},
            **self.extra_meta,
        }

    def _say(self, message: str) -> None:
        print(f"sessionprof: {message}", file=self.stream)
