"""Carry the current context (active session and span) into threads, as asyncio does into tasks.

Python does not copy context variables into a new `threading.Thread` or into work submitted to a
`ThreadPoolExecutor`, so a step started there would lose its parent. `install()` wraps both so the
context at `Thread.start()` / `submit()` is the one the work runs in. It is installed once, when
the first session opens; set SESSIONPROF_THREAD_CONTEXT=off to leave threading untouched.
"""

from __future__ import annotations

import contextvars
import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from instrumentation import forksafe

_installed = False
_lock = threading.Lock()


def _new_lock() -> None:
    global _lock
    _lock = threading.Lock()  # a parent's thread may have held the old one at the fork


forksafe.at_fork_in_child(_new_lock)


def install() -> None:
    """Patch `Thread.start` and `ThreadPoolExecutor.submit` to carry context. Idempotent."""
    global _installed
    if _installed or os.environ.get("SESSIONPROF_THREAD_CONTEXT", "").lower() == "off":
        return
    with _lock:
        if _installed:
            return
        _installed = True
        original_start = threading.Thread.start
        original_submit = ThreadPoolExecutor.submit

        @functools.wraps(original_start)
        def start(self: threading.Thread) -> None:
            run = self.run
            context = contextvars.copy_context()
            self.run = lambda: context.run(run)  # type: ignore[method-assign]
            original_start(self)

        @functools.wraps(original_submit)
        def submit(self: ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            return original_submit(self, contextvars.copy_context().run, fn, *args, **kwargs)

        threading.Thread.start = start  # type: ignore[method-assign]
        ThreadPoolExecutor.submit = submit  # type: ignore[method-assign]
