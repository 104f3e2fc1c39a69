"""Which tracer a decorated call uses, found in a few attribute reads.

In order: the session active in this context (`profiler.session()`), the process's ambient
recorder (set up from `SESSIONPROF_RUN_DIR` by `sessionprof run`), then a `TracerProvider` the user
installed globally. With none of these, decorators call straight through.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from profiler.run_dir import ENV_PARENT_PID, ENV_RUN_DIR, ENV_SESSION_ID, ENV_TRACEPARENT

if TYPE_CHECKING:
    from instrumentation.processor import SessionSpanProcessor
    from instrumentation._session import Session

logger = logging.getLogger(__name__)
SCOPE = "agent-session-profiler"

_current: contextvars.ContextVar[Session | None] = contextvars.ContextVar("sessionprof_session", default=None)


def current_session() -> Session | None:
    """The session active in this context, if any."""
    return _current.get()


def enter_session(session: Session) -> contextvars.Token[Session | None]:
    """Make `session` the active one in this context."""
    return _current.set(session)


def exit_session(token: contextvars.Token[Session | None]) -> None:
    """Restore the session that was active before."""
    try:
        _current.reset(token)
    except ValueError:  # exited in another context (an async generator closed elsewhere)
        _current.set(None)


class Recorder:
    """A private `TracerProvider` writing one run directory. One per run directory per process."""

    def __init__(self, run_dir: str, service_name: str) -> None:
        """Create the provider and its processor; nothing is written until a span ends."""
        from instrumentation.processor import SessionSpanProcessor

        self.run_dir = run_dir
        self.processor: SessionSpanProcessor = SessionSpanProcessor(run_dir=run_dir)
        # shutdown_on_exit=False: the atexit hook below flushes every recorder once, in order.
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}),
                                       shutdown_on_exit=False)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer(SCOPE)

    def flush(self, timeout_s: float = 5.0) -> None:
        """Export every finished span now (waiting at most `timeout_s` on a stuck exporter)."""
        self.processor.force_flush(timeout_millis=int(timeout_s * 1000))


_recorders: dict[str, Recorder] = {}
_recorders_lock = threading.Lock()
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER"
_global_tracer: trace.Tracer | None = None
_ambient_checked = False
_env_provider = False
#: In a process started by a session's process (or by `sessionprof run`): the session it belongs to
#: and the span its root steps hang under, both handed down through the environment.
ambient_session_id: str | None = None
ambient_parent: otel_context.Context | None = None


def recorder_for(run_dir: str, service_name: str = "agent") -> Recorder:
    """The process's recorder for `run_dir`, created on first use."""
    with _recorders_lock:
        recorder = _recorders.get(run_dir)
        if recorder is None:
            recorder = _recorders[run_dir] = Recorder(run_dir, service_name)
        return recorder


def tracer() -> trace.Tracer | None:
    """The tracer for a decorated call starting now, or None to call straight through."""
    session = _current.get()
    if session is not None:
        return session.recorder.tracer
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
            _join_ambient_run()
            recorder = recorder_for(run_dir)
            # A worker started by a session's process is often ended by a signal: write each span
            # at once. The agent that `sessionprof run` starts keeps batching.
            recorder.processor.synchronous = bool(os.environ.get(ENV_PARENT_PID))
            _global_tracer = recorder.tracer
            return _global_tracer
    # Fast path for the common case: no global provider was ever set (checked without building the
    # proxy provider and an ABC isinstance on every decorated call).
    if getattr(trace, "_TRACER_PROVIDER", False) is None and not _env_provider:
        return None
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        # The global provider is set once, so the tracer can be kept for good.
        _global_tracer = provider.get_tracer(SCOPE)
        return _global_tracer
    return None


def _join_ambient_run() -> None:
    global ambient_session_id, ambient_parent
    ambient_session_id = os.environ.get(ENV_SESSION_ID) or None
    traceparent = os.environ.get(ENV_TRACEPARENT)
    if traceparent:
        ambient_parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})


def child_environment(session: Session, span: trace.Span | None) -> dict[str, str]:
    """What a session hands its child processes so their steps join its run under its root span."""
    env = {ENV_RUN_DIR: str(session.path.resolve()), ENV_SESSION_ID: session.session_id,
           ENV_PARENT_PID: str(os.getpid())}
    if span is not None:
        carrier: dict[str, str] = {}
        TraceContextTextMapPropagator().inject(carrier, context=trace.set_span_in_context(span))
        if "traceparent" in carrier:
            env[ENV_TRACEPARENT] = carrier["traceparent"]
    return env


def flush_all() -> None:
    """Flush every recorder of this process (at exit, and when a session closes)."""
    for recorder in list(_recorders.values()):
        try:
            recorder.flush()
        except Exception:  # noqa: BLE001 - flushing at exit must not raise
            logger.debug("flush failed", exc_info=True)


def shutdown_all() -> None:
    """Flush and stop every recorder's worker (registered with atexit)."""
    for recorder in list(_recorders.values()):
        try:
            recorder.processor.shutdown()
        except Exception:  # noqa: BLE001
            logger.debug("shutdown failed", exc_info=True)
