"""A child forked at any moment records its own steps and never waits on a lock its parent's threads held."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import profiler
from instrumentation import _tracer
from profiler.testing import FakeGpuBackend
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


def _wait_for(pid: int, timeout_s: float) -> int | None:
    """The child's exit status, or None (after killing it) when it did not end within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return None


def _fork(child: Callable[[], None]) -> int:
    with _forking_allowed():
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child()
            code = 0
        finally:
            os._exit(code)
    return pid


def test_a_child_forked_while_the_recorder_registry_is_locked_opens_its_own_session(tmp_path: Path) -> None:
    def child() -> None:
        with profiler.session(run_dir=tmp_path / "child", gpu="none"):
            forked_work(1)

    with _held(_tracer._recorders_lock):
        pid = _fork(child)
    assert _wait_for(pid, 30) == 0  # before: the child hung in recorder_for
    assert [s["name"] for s in raw_spans(tmp_path / "child")].count("execute_tool forked_work") == 1


def test_a_forked_child_leaving_the_session_leaves_it_to_the_parent(tmp_path: Path) -> None:
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend(), sample_interval_s=0.02) as session:
        forked_work(0)
        sampler = session.sampler
        assert sampler is not None

        def child() -> None:
            forked_work(1)
            session.__exit__(None, None, None)  # the child runs on past the `with` block

        with _held(sampler._lock):  # the sampler thread mid-tick at the fork
            pid = _fork(child)
        assert _wait_for(pid, 30) == 0
        # The child neither ended the session nor wrote run.json: the parent's run is still going.
        assert json.loads((tmp_path / "run.json").read_text())["status"] == "running"
        forked_work(2)
    names = [s["name"] for s in raw_spans(tmp_path)]
    assert names.count("execute_tool forked_work") == 3
    assert names.count("session session") == 1  # ended once, by the parent
    assert json.loads((tmp_path / "run.json").read_text())["status"] == "complete"


@pytest.mark.parametrize(("module", "name"), [("instrumentation._tracer", "_recorders_lock"),
                                              ("instrumentation.threads", "_lock"),
                                              ("instrumentation.capture", "_lock"),
                                              ("instrumentation.auto", "_lock"),
                                              ("profiler.capture.session", "_notice_lock")])
def test_every_module_lock_is_free_in_a_forked_child(module: str, name: str) -> None:
    import importlib

    owner = importlib.import_module(module)

    def child() -> None:
        if not getattr(owner, name).acquire(timeout=5):
            os._exit(3)

    with _held(getattr(owner, name)):
        pid = _fork(child)
    assert _wait_for(pid, 30) == 0
