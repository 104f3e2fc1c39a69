"""One line to record every span of a process: `instrument()`, and the start-up of a Python
process that `sessionprof run` launched (`bootstrap()`, called from our `sitecustomize`)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from instrumentation import _state, capture, forksafe
from instrumentation.instrumentors import activate, parse_selection
from instrumentation.run_dir import ENV_INSTRUMENT, ENV_RUN_DIR, resolve_run_dir


@dataclass(frozen=True)
class Capture:
    """What `instrument()` set up."""

    path: Path
    """The run directory that spans outside a `profiler.session()` go to."""
    session_id: str
    """The session those spans belong to (`gen_ai.conversation.id`, where they name none)."""
    provider: str
    """`installed` (ours is the global tracer provider), `attached` (our processor is on the
    program's) or `unattached` (the program's provider takes no span processor: nothing is recorded)."""
    instrumentors: tuple[str, ...] = ()
    """The instrumentors turned on, as `name (distribution)`."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Instrumentors left off, and why (most often: the library they instrument is not installed)."""


_lock = threading.Lock()


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a parent's thread may have held the old one at the fork


forksafe.at_fork_in_child(_new_lock)
_done: Capture | None = None


def instrument(run_dir: str | Path | None = None, *,
               instrumentors: str | Iterable[str] | None = "auto") -> Capture:
    """Record every span this process makes: ours, the installed instrumentors', and the spans SDKs
    emit themselves. Idempotent: a second call returns the first call's result.

    Sets up OpenTelemetry's global tracer provider (or adds our processor to the one the program
    installed), and turns on the installed instrumentors. A provider the program installs later
    gets our processor too. Spans inside a `profiler.session()` go to its run directory; the rest
    to this one.

    Args:
        run_dir: where spans outside a session go: default $SESSIONPROF_RUN_DIR, else a new
            directory under $SESSIONPROF_HOME (default ./.sessionprof/runs).
        instrumentors: `auto` (every installed one), `none`, or names (entry-point names such as
            `openai`, or distribution names); $OTEL_PYTHON_DISABLED_INSTRUMENTATIONS leaves
            some out of `auto`.

    Returns:
        What was set up: the run directory, the session id, and the instrumentors turned on.

    Raises:
        ValueError: `instrumentors` is not a selection (the only error raised; trouble inside
            OpenTelemetry or an instrumentor is reported in the result instead).
    """
    global _done
    selection = parse_selection(instrumentors)
    with _lock:
        if _done is not None:
            return _done
        path = resolve_run_dir(run_dir)
        _state.join_ambient_run()
        if _state.ambient_session_id is None:
            _state.ambient_session_id = os.urandom(16).hex()  # not `uuid`: slow to import
        processor = capture.processor()
        if processor.fallback_run_dir is None:
            processor.fallback_run_dir = path
        how = capture.install()
        activation = activate(selection)
        skipped = dict(activation.skipped)
        skipped.update({name: "no installed instrumentor has this name" for name in activation.unknown})
        _done = Capture(path=path, session_id=_state.ambient_session_id, provider=how,
                        instrumentors=tuple(activation.active), skipped=skipped)
        return _done


def bootstrap() -> None:
    """Start-up of a Python process under `sessionprof run`: `instrument()` into $SESSIONPROF_RUN_DIR
    with $SESSIONPROF_INSTRUMENT. Never raises; trouble is one line on stderr."""
    run_dir = os.environ.get(ENV_RUN_DIR)
    if not run_dir:
        return
    try:
        selection = parse_selection(os.environ.get(ENV_INSTRUMENT) or "auto")
    except ValueError as err:
        _notice(f"{ENV_INSTRUMENT}: {err}; no instrumentor turned on")
        selection = parse_selection("none")
    try:
        result = instrument(run_dir, instrumentors=selection.names if selection.mode == "list" else selection.mode)
    except Exception as err:  # noqa: BLE001 - the program runs on, uninstrumented
        _notice(f"spans of this process are not recorded: {type(err).__name__}: {err}")
        return
    if result.provider == "unattached":
        _notice("spans of this process are not recorded: its tracer provider takes no span processor")
    for name, reason in result.skipped.items():
        if selection.mode == "list" or reason.startswith("failed"):
            _notice(f"instrumentor {name}: {reason}")


def _notice(message: str) -> None:
    with contextlib.suppress(Exception):  # a closed stderr is no reason to stop the program
        print(f"sessionprof: {message}", file=sys.stderr)
