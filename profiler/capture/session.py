"""`profiler.session()`: open a session, sample the GPUs, record every step and every span made
inside it (instrumentors' and SDKs' included), give back the result."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from instrumentation import _state, _tracer, capture, content, semconv, threads
from instrumentation._state import counters
from instrumentation.run_dir import (
    ENV_RUN_DIR,
    ENV_SAMPLER,
    create_run_dir,
    read_meta,
    resolve_run_dir,
    write_meta,
)
from profiler.errors import GpuUnavailableError
from profiler.gpu.backend import GpuBackend
from profiler.gpu.host import host_info
from profiler.gpu.sampler import GpuSampler, process_tree
from profiler.gpu.samples_file import SAMPLES_FILE
from profiler.gpu.select import select_backend
from profiler.pricing.prices import Prices, load_prices

logger = logging.getLogger(__name__)
_notice_lock = threading.Lock()
_notified = False


def _notice(message: str) -> None:
    """Print a one-line notice to stderr, once per process."""
    global _notified
    with _notice_lock:
        if not _notified:
            _notified = True
            print(f"sessionprof: {message}", file=sys.stderr)


class Session:
    """An open (or finished) profiling session. Use `profiler.session()` to make one."""

    def __init__(self, name: str | None, run_dir: str | Path | None, gpu: str | GpuBackend,
                 sample_interval_s: float, prices: Prices | None, policy: str,
                 capture_content: bool | None = None, redact: Any = None) -> None:
        """Record the settings; nothing starts until the session is entered."""
        self.name = name or "session"
        self.session_id = uuid.uuid4().hex
        self.path = resolve_run_dir(run_dir)
        self.gpu = gpu
        self.sample_interval_s = sample_interval_s
        self.prices = prices
        self.policy = policy
        self.capture_content = capture_content
        self.redact = redact
        self.sampler: GpuSampler | None = None
        self.recorder: _tracer.Recorder
        self._span: trace.Span | None = None
        self._tokens: list[Any] = []
        self._started_ns = 0
        self._ledger: Any = None
        self.closed = False

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer that records this session's steps."""
        return self.recorder.tracer

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        """Start sampling and tracing; the body's steps become this session's."""
        create_run_dir(self.path)
        self._started_ns = time.time_ns()
        self._internal_errors_at_start = counters.internal_errors
        if os.environ.get(ENV_SAMPLER, "").lower() != "off":
            self._start_sampler()
        self.recorder = _tracer.recorder_for(str(self.path), self.name)
        self._capture_everything()
        threads.install()
        content.env_opt_in()  # pick up the content-capture setting as it is now
        try:
            self._span = self.recorder.tracer.start_span(
                f"session {self.name}",
                attributes={semconv.OPERATION: semconv.OP_INVOKE_WORKFLOW, semconv.WORKFLOW_NAME: self.name,
                            semconv.SESSION_ROOT: True, semconv.SESSION_NAME: self.name,
                            semconv.CONVERSATION_ID: self.session_id},
            )
            self._tokens.append(otel_context.attach(trace.set_span_in_context(self._span)))
        except Exception:  # noqa: BLE001 - tracing trouble must not stop the agent
            counters.note()
            self._span = None
        self._tokens.append(_state.enter_session(self))
        self._publish_environment()
        return self

    def _capture_everything(self) -> None:
        """Let the spans of instrumentors and SDKs in this session reach its run directory too."""
        try:
            if capture.install() == "unattached":
                print("sessionprof: the program's tracer provider takes no span processor: only the "
                      "session's own steps are recorded", file=sys.stderr)
        except Exception:  # noqa: BLE001 - tracing trouble must not stop the agent
            counters.note()

    def _publish_environment(self) -> None:
        """Let child processes (subprocess, multiprocessing spawn) record into this run, unless an
        outer session or `sessionprof run` already did."""
        self._saved_env: dict[str, str | None] = {}
        if os.environ.get(ENV_RUN_DIR):
            return
        for key, value in _tracer.child_environment(self, self._span).items():
            self._saved_env[key] = os.environ.get(key)
            os.environ[key] = value
        self._saved_env[ENV_SAMPLER] = os.environ.get(ENV_SAMPLER)
        os.environ[ENV_SAMPLER] = "off"

    def _restore_environment(self) -> None:
        for key, value in getattr(self, "_saved_env", {}).items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        """End the session: flush spans, stop the sampler, write run.json. Never raises."""
        try:
            self._close(exc)
        except Exception:  # noqa: BLE001
            counters.note()
            logger.warning("sessionprof: could not close the session cleanly", exc_info=True)

    async def __aenter__(self) -> Session:
        """Async form of `__enter__`."""
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        """Async form of `__exit__`."""
        self.__exit__(exc_type, exc, tb)

    def _start_sampler(self) -> None:
        backend = select_backend(self.gpu)
        root_pid = os.getpid()
        self.sampler = GpuSampler(backend, self.path / SAMPLES_FILE, interval_s=self.sample_interval_s,
                                  pids=lambda: process_tree(root_pid))
        self.sampler.start()
        if not self.sampler.gpus:
            if self.gpu == "nvml":
                raise GpuUnavailableError(self.sampler.unavailable_reason or "no GPU")
            if self.gpu != "none":  # asked for no GPU: nothing to tell
                _notice(f"no GPU data ({self.sampler.unavailable_reason}); recording a CPU-only run")
        self._write_meta("running")

    def _close(self, exc: BaseException | None) -> None:
        if self.closed:
            return
        self.closed = True
        self._restore_environment()
        if self._tokens:
            _state.exit_session(self._tokens.pop())
        if self._span is not None:
            if exc is not None:
                self._span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__))
                self._span.set_attribute(semconv.ERROR_TYPE, type(exc).__qualname__)
            self._span.end()
        while self._tokens:
            try:
                otel_context.detach(self._tokens.pop())
            except Exception:  # noqa: BLE001
                counters.note()
        self.recorder.flush()
        capture.flush()
        if self.sampler is not None:
            self.sampler.stop()
            self._write_meta("complete")

    def _write_meta(self, status: str) -> None:
        sampler = self.sampler
        previous = read_meta(self.path)
        prices = self.prices or load_prices()
        processor = self.recorder.processor if hasattr(self, "recorder") else None
        meta = {
            "run_id": self.path.name,
            "status": status,
            "started_ns": previous.get("started_ns", self._started_ns),
            "ended_ns": time.time_ns() if status == "complete" else None,
            "host": host_info(),
            "command": sys.argv,
            **(sampler.describe() if sampler else {"gpu_backend": None, "gpu_unavailable_reason": None,
                                                    "gpus": [], "clock": None, "sampler": None}),
            "prices": prices.to_json(),
            "dropped": {
                "spans": processor.dropped_spans if processor else 0,
                "spans_failed_export": processor.failed_exports if processor else 0,
                "profiler_internal_errors": counters.internal_errors - self._internal_errors_at_start,
                "profiler_last_internal_error": counters.last_error
                if counters.internal_errors > self._internal_errors_at_start else None,
                "sample_read_errors": sampler.stats.read_errors if sampler else 0,
            },
            "sessions": [*previous.get("sessions", []), {"id": self.session_id, "name": self.name}]
            if status == "running" else previous.get("sessions", []),
        }
        write_meta(self.path, meta)

    # --- results --------------------------------------------------------------------------------
    @property
    def ledger(self) -> Any:
        """The attributed ledger of this session's run directory (computed on first use)."""
        if self._ledger is None:
            from profiler.attribution.engine import attribute
            from profiler.traces.load import load

            self.recorder.flush()
            capture.flush()
            self._ledger = attribute(load(self.path), prices=self.prices or load_prices(),
                                     policy=self.policy)  # type: ignore[arg-type]
        return self._ledger

    def report(self, format: str = "table", **options: Any) -> str:
        """The ledger rendered as text (`table`, `markdown`, `json` or `csv`)."""
        from reports import render

        return render(self.ledger, format, **options)


def session(name: str | None = None, *, run_dir: str | Path | None = None, gpu: str | GpuBackend = "auto",
            sample_interval_s: float = 0.1, prices: Prices | None = None, policy: str = "equal",
            capture_content: bool | None = None,
            redact: Callable[[str, str], str | None] | None = None) -> Session:
    """Open a profiling session (a sync or async context manager).

    Args:
        name: a label for the session, shown in reports.
        run_dir: the run's own directory; default: $SESSIONPROF_RUN_DIR, else a new directory
            under ./.sessionprof/runs/.
        gpu: `auto` (NVML if present, else a CPU-only run with one notice), `nvml` (fail without a
            GPU), `none`, `replay:<samples.csv>`, or a `GpuBackend`.
        sample_interval_s: seconds between GPU readings.
        prices: GPU, energy and carbon factors; default from flags, environment and sessionprof.toml.
        policy: how concurrent steps share a GPU slice (`equal`, `tokens` or `memory`).
        capture_content: record prompts, completions and tool arguments and results. None (the
            default) follows OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT, which is off unless set.
        redact: called as `redact(attribute_key, text)` on every captured value before it is
            recorded; return the text to keep (changed or not) or None to drop it.

    Returns:
        The session; after the `with` block, `.ledger`, `.report()` and `.path` give the result.
    """
    return Session(name, run_dir, gpu, sample_interval_s, prices, policy, capture_content, redact)

