"""Fork safety: what a forked child must re-create because a thread of its parent may have held it.

`os.fork()` copies a lock in whatever state it is in, and only the forking thread survives. A lock
that the exporter thread held at that moment stays held in the child for ever, and the child's first
span (`multiprocessing.Pool` with the fork start method) would wait on it without end.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Callable
from typing import Protocol


class ForkAware(Protocol):
    """An object with locks (or threads) that a forked child must replace."""

    def after_fork_in_child(self) -> None:
        """Re-create the object's locks; runs in the child, before anything else can use them."""
        ...


_objects: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def register(obj: ForkAware) -> None:
    """Call `obj.after_fork_in_child()` in every forked child while `obj` lives."""
    _objects.add(obj)


def at_fork_in_child(callback: Callable[[], None]) -> None:
    """Run `callback` in every forked child (module-level locks); nothing where fork does not exist."""
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=callback)


def _reset_objects() -> None:
    for obj in list(_objects):
        with contextlib.suppress(Exception):  # one object's trouble must not leave the others locked
            obj.after_fork_in_child()


at_fork_in_child(_reset_objects)
