"""Read a run for a command: load it (with a progress bar on a terminal), attribute it, narrow it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from profiler.attribution.ledger import Ledger
    from profiler.model import Run
    from profiler.pricing.prices import Prices

#: Loads smaller than this (bytes) finish before a bar would be worth drawing.
_BAR_FROM_BYTES = 20_000_000


def load_run(path: Path, gpu_samples: Path | None = None, *, tz: str | None = None) -> Run:
    """Load a run directory or trace file (and GPU telemetry to join), with a progress bar on a
    terminal for a big one."""
    from profiler.traces.load import load

    update, done = _progress()
    try:
        return load(path, gpu_samples, tz=tz, progress=update)
    finally:
        done()


def attribute_path(path: Path, prices: Prices, policy: str = "equal", *, gpu_samples: Path | None = None,
                   tz: str | None = None) -> Ledger:
    """Load a run or trace file (`load_run`) and attribute it."""
    from profiler.attribution.engine import attribute

    return attribute(load_run(path, gpu_samples, tz=tz), policy=policy, prices=prices)  # type: ignore[arg-type]


def select_steps(ledger: Ledger, sessions: list[str] | None, since: str | None = None,
                 until: str | None = None) -> Ledger:
    """Narrow a ledger to some sessions and/or the steps that overlap a time window."""
    from profiler.analysis.sessions import parse_time, select

    return select(ledger, sessions=sessions or None,
                  since_ns=parse_time(since, option="--since") if since is not None else None,
                  until_ns=parse_time(until, option="--until") if until is not None else None)


def _progress() -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A progress bar on stderr for long loads (only on a terminal): its update and its stop."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress("loading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True,
                   console=Console(stderr=True))
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            if total < _BAR_FROM_BYTES:
                return
            bar.start()
            task = bar.add_task("load", total=total)
        bar.update(task, completed=done)

    return update, bar.stop
