"""Which tracer a decorated call uses, found in a few attribute reads, and the private providers
that write run directories.

In order: the session active in this context (`profiler.session()`), the process's ambient
recorder (set up from `SESSIONPROF_RUN_DIR` by `sessionprof run`), then a `TracerProvider`
installed globally (the user's, or ours from `instrument()`). With none of these, decorators call
straight through.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from instrumentation import _state, forksafe, termination
from instrumentation._state import counters
from instrumentation.processor import SessionSpanProcessor
from instrumentation.run_dir import (
    ENV_PARENT_PID,
    ENV_RUN_DIR,
    ENV_SESSION_ID,
    ENV_TRACEPARENT,
    META_FILE,
    update_meta,
    with_losses,
)

logger = logging.getLogger(__name__)
SCOPE = "agent-session-profiler"


class Recorder:
    """A private `TracerProvider` writing one run directory. One per run directory per process."""

    def __init__(self, run_dir: str, service_name: str) -> None:
        """Create the provider and its processor; nothing is written until a span ends."""
        self.run_dir = run_dir
        self.processor = SessionSpanProcessor(run_dir=run_dir)
        # shutdown_on_exit=False: `shutdown_all` (registered with atexit) flushes every recorder once.
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer(SCOPE)
        self.errors_at_start = counters.internal_errors
        forksafe.register(self)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Export every finished span now (waiting at most `timeout_s` on a stuck exporter)."""
        self.processor.force_flush(timeout_millis=int(timeout_s * 1000))

    def losses(self) -> dict[str, object]:
        """What this process lost of this run so far (run.json's `dropped` keys)."""
        processor, errors = self.processor, counters.internal_errors - self.errors_at_start
        return {"spans": processor.dropped_spans, "spans_failed_export": processor.failed_exports,
                "profiler_internal_errors": errors,
                "profiler_last_internal_error": counters.last_error if errors else None}

    def record_losses(self) -> None:
        """Add this process's losses to run.json, where there are any and the run has a run.json.

        A child process (a worker, or the agent `sessionprof run` started) has no other way to tell
        the run what it could not write. Never raises.
        """
        losses = self.losses()
        if not any(losses.values()) or not (Path(self.run_dir) / META_FILE).is_file():
            return
        pid = os.getpid()
        with contextlib.suppress(OSError):
            update_meta(Path(self.run_dir), lambda meta: with_losses(meta, pid, losses))

    def after_fork_in_child(self) -> None:
        """A forked child counts its own internal errors, not the parent's."""
        self.errors_at_start = counters.internal_errors


_recorders: dict[str, Recorder] = {}
_recorders_lock = threading.Lock()
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER"
_global_tracer: trace.Tracer | None = None
_ambient_checked = False
_env_provider = False


def recorder_for(run_dir: str, service_name: str = "agent") -> Recorder:
    """The process's recorder for `run_dir`, created on first use."""
    with _recorders_lock:
        recorder = _recorders.get(run_dir)
        if recorder is None:
            if not _recorders:
                # Here, not where sessions live: a process that only decorates (under `sessionprof
                # run`) must flush at exit too, or a short agent's last batch is lost.
                atexit.register(shutdown_all)
            recorder = _recorders[run_dir] = Recorder(run_dir, service_name)
    termination.on_terminate(_flush_on_terminate)
    return recorder


def _flush_on_terminate() -> None:
    for recorder in list(_recorders.values()):
        recorder.flush(timeout_s=2.0)
        recorder.record_losses()


def _after_fork_in_child() -> None:
    global _recorders_lock
    _recorders_lock = threading.Lock()
    # multiprocessing's forked workers leave through os._exit, which skips atexit: its finalizers
    # still run (after the processors' flush, which has a higher priority).
    with contextlib.suppress(Exception):
        from multiprocessing import util

        util.Finalize(None, _record_all_losses, exitpriority=90)


def _record_all_losses() -> None:
    for recorder in list(_recorders.values()):
        recorder.record_losses()


forksafe.at_fork_in_child(_after_fork_in_child)


def tracer() -> trace.Tracer | None:
    """The tracer for a decorated call starting now, or None to call straight through."""
    session = _state.current_session()
    if session is not None:
        return session.tracer
    return _fallback_tracer()


def _fallback_tracer() -> trace.Tracer | None:
    global _global_tracer, _ambient_checked, _env_provider
    if _global_tracer is not None:
        return _global_tracer
    if not _ambient_checked:
        _ambient_checked = True
        _env_provider = _ENV_PROVIDER in os.environ  # OTel itself reads it once, at first use
        run_dir = os.environ.get(ENV_RUN_DIR)
        if run_dir and os.environ.get(ENV_PARENT_PID) != str(os.getpid()):
            _state.join_ambient_run()
            recorder = recorder_for(run_dir)
            # A worker started by a session's process is often ended by a signal: write each span
            # at once. The agent that `sessionprof run` starts keeps batching.
            recorder.processor.synchronous = bool(os.environ.get(ENV_PARENT_PID))
            _global_tracer = recorder.tracer
            return _global_tracer
    # Fast path for the common case: no global provider was ever set (checked without building the
    # proxy provider and an ABC isinstance on every decorated call, which cost 0.8 us a call:
    # `benchmarks/techniques.py`). A later OTel without the attribute takes the general path.
    if getattr(trace, "_TRACER_PROVIDER", False) is None and not _env_provider:
        return None
    provider = trace.get_tracer_provider()
    capture = sys.modules.get("instrumentation.capture")  # not imported: no provider of ours exists
    if capture is not None and isinstance(provider, capture.CaptureProvider) and not capture.records_outside_sessions():
        return None  # ours, put there by a session to catch instrumentors' spans: nowhere to write now
    if isinstance(provider, TracerProvider):
        # The global provider is set once, so the tracer can be kept for good.
        _global_tracer = provider.get_tracer(SCOPE)
        return _global_tracer
    return None


def child_environment(session: _state.ActiveSession, span: trace.Span | None) -> dict[str, str]:
    """What a session hands its child processes so their steps join its run under its root span."""
    env = {ENV_RUN_DIR: str(session.path.resolve()), ENV_SESSION_ID: session.session_id,
           ENV_PARENT_PID: str(os.getpid())}
    if span is not None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
        if "traceparent" in carrier:
            env[ENV_TRACEPARENT] = carrier["traceparent"]
    return env


def shutdown_all() -> None:
    """Flush and stop every recorder's worker, and record what each lost (registered with atexit)."""
    for recorder in list(_recorders.values()):
        try:
            recorder.processor.shutdown()
            recorder.record_losses()
        except Exception:  # noqa: BLE001 - flushing at exit must not raise
            logger.debug("shutdown failed", exc_info=True)
