"""Flush what was recorded when the process is asked to stop: a SIGTERM handler that chains to the one before.

SIGTERM (`kill`, `docker stop`, `sessionprof run` passing on a Ctrl-C or a SIGTERM,
`multiprocessing.Pool.terminate`) ends a Python process at once by default, and the spans that
ended since the last background flush (up to `flush_interval_s`) would be lost. The handler
exports them first, then does what would have happened without it: it calls the handler it
replaced, or, where that was the default, ends the process by the same signal, so the exit status
still says SIGTERM (143 in a shell).

It is installed from the main thread only (Python's rule), where SIGTERM has the default action or
a Python handler; a SIGTERM that is ignored, or handled outside Python, is left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

logger = logging.getLogger(__name__)

_flushers: list[Callable[[], None]] = []
_dying_hooks: list[Callable[[int], None]] = []
_previous: Any = None
_installed_pid = 0


def on_terminate(flush: Callable[[], None]) -> None:
    """Call `flush` when SIGTERM arrives, before the handler that was there before ours."""
    if flush not in _flushers:
        _flushers.append(flush)
    _install()


def on_death_by_signal(hook: Callable[[int], None]) -> None:
    """Call `hook(signum)` when SIGTERM is about to end the process (no other handler will run)."""
    if hook not in _dying_hooks:
        _dying_hooks.append(hook)


def forget_death_hook(hook: Callable[[int], None]) -> None:
    """Stop calling `hook` (a session that closed)."""
    with contextlib.suppress(ValueError):
        _dying_hooks.remove(hook)


def _install() -> None:
    global _previous, _installed_pid
    if _installed_pid == os.getpid() or threading.current_thread() is not threading.main_thread():
        return
    try:
        current = signal.getsignal(signal.SIGTERM)
        if current is _handle:  # inherited across fork
            _installed_pid = os.getpid()
            return
        if current is signal.SIG_IGN or current is None:
            return  # ignored on purpose, or a handler outside Python: not ours to wrap
        signal.signal(signal.SIGTERM, _handle)
    except (ValueError, OSError, AttributeError):  # no SIGTERM here, or a restricted interpreter
        logger.debug("sessionprof: no SIGTERM flush", exc_info=True)
        return
    _previous, _installed_pid = current, os.getpid()


def _handle(signum: int, frame: FrameType | None) -> None:
    for flush in list(_flushers):
        with contextlib.suppress(Exception):  # the signal must still do what it was sent for
            flush()
    previous = _previous
    if callable(previous):
        previous(signum, frame)
        return
    for hook in list(_dying_hooks):
        with contextlib.suppress(Exception):
            hook(signum)
    # The default action: die by this signal, as the process would have without us.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
