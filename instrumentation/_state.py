"""Leaf state shared by the writer side: the active session, the ambient run a child process joins,
and the count of failures the profiler swallowed.

Nothing here builds a tracer or touches a file; `_tracer` does that.
"""

from __future__ import annotations

import contextvars
import logging
import os
import sys
from typing import TYPE_CHECKING, Protocol

from opentelemetry import context as otel_context

from instrumentation.run_dir import ENV_PARENT_PID, ENV_RUN_DIR, ENV_SESSION_ID, ENV_TRACEPARENT

if TYPE_CHECKING:
    from pathlib import Path

    from opentelemetry import trace


class ActiveSession(Protocol):
    """What the writer side needs of an open session (`profiler.session()` makes one)."""

    session_id: str
    path: Path

    @property
    def tracer(self) -> trace.Tracer:
        """The tracer that records this session's steps."""
        ...


_current: contextvars.ContextVar[ActiveSession | None] = contextvars.ContextVar("sessionprof_session",
                                                                               default=None)


def current_session() -> ActiveSession | None:
    """The session active in this context, if any."""
    return _current.get()


def enter_session(session: ActiveSession) -> contextvars.Token[ActiveSession | None]:
    """Make `session` the active one in this context."""
    return _current.set(session)


def exit_session(token: contextvars.Token[ActiveSession | None]) -> None:
    """Restore the session that was active before."""
    try:
        _current.reset(token)
    except ValueError:  # exited in another context (an async generator closed elsewhere)
        _current.set(None)


#: In a process started by a session's process (or by `sessionprof run`): the session it belongs to
#: and the span its root steps hang under, both handed down through the environment.
ambient_session_id: str | None = None
ambient_parent: otel_context.Context | None = None


def join_ambient_run() -> None:
    """Read the session id and parent span that the process that started this one handed down."""
    global ambient_session_id, ambient_parent
    ambient_session_id = os.environ.get(ENV_SESSION_ID) or None
    traceparent = os.environ.get(ENV_TRACEPARENT)
    if traceparent:
        # Imported here: only a child process of a run needs it, and it is not free to import.
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        ambient_parent = TraceContextTextMapPropagator().extract({"traceparent": traceparent})


class _Counters:
    """Profiler-side failures swallowed so the agent kept running (reported in run.json)."""

    def __init__(self) -> None:
        self.internal_errors = 0
        self.last_error: str | None = None

    def note(self) -> None:
        """Count the exception being handled and keep its type and where it was raised.

        Never its message: messages quote their input (a pydantic validation error quotes the
        response, prompt and all), and this one ends up in run.json and in every report.
        """
        self.internal_errors += 1
        error = sys.exc_info()[1]
        if error is not None:
            self.last_error = f"{type(error).__name__}{_place(error)}"


def _place(error: BaseException) -> str:
    traceback = error.__traceback__
    if traceback is None:
        return ""
    while traceback.tb_next is not None:
        traceback = traceback.tb_next
    code = traceback.tb_frame.f_code
    return f" in {code.co_name} ({os.path.basename(code.co_filename)}:{traceback.tb_lineno})"


counters = _Counters()
logger = logging.getLogger(__name__)
_lost_runs: set[str] = set()


def owned_elsewhere(run_dir: Path) -> bool:
    """Whether another process (`sessionprof run`, or the session that started this one) owns the
    run in `run_dir` and will report on it."""
    ambient = os.environ.get(ENV_RUN_DIR)
    if not ambient or os.environ.get(ENV_PARENT_PID) == str(os.getpid()):
        return False
    return os.path.abspath(ambient) == os.path.abspath(run_dir)


def claim_loss_warning(run_dir: Path) -> bool:
    """True the first time it is asked for `run_dir` in this process: whoever gets it says the run is lost."""
    key = os.path.abspath(run_dir)
    if key in _lost_runs:
        return False
    _lost_runs.add(key)
    return True


def warn_run_lost(run_dir: Path, message: str) -> None:
    """Warn, once per run directory in this process, that its records are being lost; where another
    process owns the run, leave the warning to it."""
    if not claim_loss_warning(run_dir):
        return
    if owned_elsewhere(run_dir):
        logger.debug("sessionprof: %s", message)
    else:
        logger.warning("sessionprof: %s", message)
