"""A child forked at any moment records its own steps and never waits on a lock its parent's threads held."""

from __future__ import annotations

import multiprocessing
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import profiler
from instrumentation import _tracer
from tests.reliability.helpers import raw_spans

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


@profiler.tool
def forked_work(i: int) -> int:
    return i * 2


@contextmanager
def _held(lock: threading.Lock) -> Iterator[None]:
    """Hold `lock` from another thread, as the exporter or sampler thread does mid-write."""
    taken, release = threading.Event(), threading.Event()

    def hold() -> None:
        with lock:
            taken.set()
            release.wait(60)

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    assert taken.wait(5)
    try:
        yield
    finally:
        release.set()
        thread.join(5)


@contextmanager
def _forking_allowed() -> Iterator[None]:
    with warnings.catch_warnings():  # Python 3.12+ warns of fork() in a process with threads
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def _exporter_lock(run_dir: Path) -> threading.Lock:
    exporter = _tracer.recorder_for(str(run_dir)).processor.exporter
    return exporter._file.lock  # type: ignore[attr-defined]


def test_a_pool_forked_while_the_exporter_writes_does_not_hang(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    with profiler.session(run_dir=tmp_path, gpu="none"), profiler.step("parent step"):
        with _held(_exporter_lock(tmp_path)), _forking_allowed():
            pool = context.Pool(2)
        try:
            # Before: every worker waited for ever on the exporter lock it inherited held.
            assert pool.map_async(forked_work, range(20)).get(timeout=30) == [i * 2 for i in range(20)]
        finally:
            pool.terminate()
            pool.join()
    assert len([s for s in raw_spans(tmp_path) if s["name"] == "execute_tool forked_work"]) == 20
