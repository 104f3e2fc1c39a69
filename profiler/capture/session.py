"""`profiler.session()`: open a session, sample the GPUs, record every step and every span made
inside it (instrumentors' and SDKs' included), give back the result."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from instrumentation import _state, _tracer, capture, content, forksafe, semconv, termination, threads
from instrumentation._state import counters
from instrumentation.run_dir import (
    ENV_RUN_DIR,
    ENV_SAMPLER,
    SAMPLES_FILE,
    create_run_dir,
    resolve_run_dir,
    update_meta,
    with_losses,
)
from profiler.capture.argv import mask_command
from profiler.errors import GpuUnavailableError
from profiler.gpu.backend import GpuBackend
from profiler.gpu.host import host_info, process_tree
from profiler.gpu.sampler import GpuSampler
from profiler.gpu.select import select_backend
from profiler.pricing.prices import Prices, load_prices

logger = logging.getLogger(__name__)
_notice_lock = threading.Lock()
_notified = False


def _new_notice_lock() -> None:
    global _notice_lock
    _notice_lock = threading.Lock()  # a parent's thread may have held the old one at the fork


forksafe.at_fork_in_child(_new_notice_lock)


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
        self.recording = True
        """False when no run directory could be written: the session then records nothing."""
        self.not_recorded_reason: str | None = None
        self._owner_pid = os.getpid()
        self._meta_warned = False

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer that records this session's steps."""
        return self.recorder.tracer

    # --- lifecycle ------------------------------------------------------------------------------
    def __enter__(self) -> Session:
        """Start sampling and tracing; the body's steps become this session's.

        Never fails for want of a place to write: an unwritable run directory (a read-only file
        system, a refused link) is one warning and a fallback directory, or nothing recorded.
        """
        self._owner_pid = os.getpid()
        self._started_ns = time.time_ns()
        if not self._prepare_run_dir():
            return self
        self.recorder = _tracer.recorder_for(str(self.path), self.name)
        if os.environ.get(ENV_SAMPLER, "").lower() != "off":
            self._start_sampler()
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

    def _prepare_run_dir(self) -> bool:
        """Create the run directory, else a private one under the temporary folder (named in a
        warning), else record nothing. Returns whether the session records."""
        try:
            create_run_dir(self.path)
            return True
        except OSError as err:
            reason = _reason(err)
        try:
            fallback = Path(tempfile.mkdtemp(prefix=f"sessionprof-{self.path.name}-"))
        except OSError as err:
            self.recording = False
            self.not_recorded_reason = f"cannot write {self.path} ({reason}) nor a temporary folder ({_reason(err)})"
            logger.warning("sessionprof: %s; this session records nothing", self.not_recorded_reason)
            return False
        logger.warning("sessionprof: cannot write the run directory %s (%s); recording to %s instead",
                       self.path, reason, fallback)
        self.path = fallback
        return True

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
            logger.warning("sessionprof: could not close the session cleanly (%s); counted in run.json",
                           counters.last_error)

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
        termination.on_death_by_signal(self._on_death)

    def _on_death(self, signum: int) -> None:
        """SIGTERM is ending the process: say so in run.json (spans were flushed just before)."""
        self._write_meta("killed", signum=signum)

    def _close(self, exc: BaseException | None) -> None:
        if self.closed or not self.recording:
            return
        self.closed = True
        # A child forked inside the session may leave it too: its spans are flushed, but the
        # session's span, sampler and run.json stay the parent's to end.
        forked_child = os.getpid() != self._owner_pid
        termination.forget_death_hook(self._on_death)
        self._restore_environment()
        if self._tokens:
            _state.exit_session(self._tokens.pop())
        if self._span is not None and not forked_child:
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
        if self.sampler is not None and not forked_child:
            self.sampler.stop()
            self._write_meta("complete")

    def _write_meta(self, status: str, signum: int | None = None) -> None:
        """Merge this session into run.json (under its lock, so no other writer's update is lost).
        A run.json that cannot be written is one warning; the agent goes on."""
        fields = self._meta_fields(status, signum)
        sampler, pid = self.sampler, os.getpid()
        losses = {**self.recorder.losses(), "sample_read_errors": sampler.stats.read_errors if sampler else 0,
                  "samples_failed_write": sampler.stats.samples_failed_write if sampler else 0}
        entry = {"id": self.session_id, "name": self.name}

        def merge(previous: dict[str, Any]) -> dict[str, Any]:
            sessions = [s for s in previous.get("sessions", []) if isinstance(s, dict)]
            if not any(s.get("id") == self.session_id for s in sessions):
                sessions.append(entry)
            started = previous.get("started_ns", self._started_ns)
            return with_losses({**previous, **fields, "started_ns": started, "sessions": sessions}, pid, losses)

        try:
            update_meta(self.path, merge)
        except OSError as err:
            if not self.path.is_dir():
                _state.warn_run_lost(self.path, f"the run directory {self.path} was deleted while the session "
                                     "ran; its records are lost")
            elif not self._meta_warned:
                self._meta_warned = True
                logger.warning("sessionprof: cannot write %s (%s); the run's metadata is missing",
                               self.path / "run.json", _reason(err))

    def _meta_fields(self, status: str, signum: int | None) -> dict[str, Any]:
        sampler = self.sampler
        prices = self.prices or load_prices()
        fields: dict[str, Any] = {
            "run_id": self.path.name,
            "status": status,
            "ended_ns": time.time_ns() if status != "running" else None,
            "host": host_info(),
            "command": mask_command(sys.argv),
            **(sampler.describe() if sampler else {"gpu_backend": None, "gpu_unavailable_reason": None,
                                                    "gpus": [], "clock": None, "sampler": None}),
            "prices": prices.to_json(),
        }
        if signum is not None:
            fields.update(signal=signal.Signals(signum).name, signal_number=signum, exit_code=128 + signum)
        return fields

    # --- results --------------------------------------------------------------------------------
    @property
    def ledger(self) -> Any:
        """The attributed ledger of this session's run directory (computed on first use); an empty
        one, with a warning that says why, when the session could record nothing."""
        if self._ledger is None:
            from profiler.attribution.engine import attribute
            from profiler.traces.load import load

            if self.recording:
                self.recorder.flush()
                capture.flush()
                run = load(self.path)
            else:
                run = _empty_run(self.path, f"nothing was recorded: {self.not_recorded_reason}")
            self._ledger = attribute(run, prices=self.prices or load_prices(),
                                     policy=self.policy)  # type: ignore[arg-type]
        return self._ledger

    def report(self, format: str = "table", **options: Any) -> str:
        """The ledger rendered as text (`table`, `markdown`, `json` or `csv`)."""
        from reports import render

        return render(self.ledger, format, **options)


def _reason(err: OSError) -> str:
    """An OS error as a short reason: `Read-only file system`, or our own message."""
    return err.strerror or str(err)


def _empty_run(path: Path, warning: str) -> Any:
    from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, empty_frame

    return Run(spans=empty_frame(SPAN_COLUMNS), samples=empty_frame(SAMPLE_COLUMNS), meta={}, source=path,
               warnings=[warning])


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

