"""Many threads, many tasks, forked and spawned children: every step recorded, correctly parented."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import profiler
from profiler.testing import FakeGpuBackend
from tests.reliability.helpers import raw_spans


@profiler.tool
def tiny(i: int) -> int:
    return i


@profiler.step
def worker_body(n: int) -> None:
    for i in range(n):
        tiny(i)


@pytest.mark.slow
def test_64_threads_by_1000_steps(tmp_path: Path) -> None:
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend(), sample_interval_s=0.05) as session:
        threads = [threading.Thread(target=worker_body, args=(1000,)) for _ in range(64)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["dropped"]["spans"] == 0 and meta["dropped"]["profiler_internal_errors"] == 0
    spans = raw_spans(tmp_path)
    bodies = {s["spanId"] for s in spans if s["name"] == "worker_body"}
    tools = [s for s in spans if s["name"] == "execute_tool tiny"]
    assert len(bodies) == 64 and len(tools) == 64_000
    assert all(s["parentSpanId"] in bodies for s in tools)
    per_body = {}
    for span in tools:
        per_body[span["parentSpanId"]] = per_body.get(span["parentSpanId"], 0) + 1
    assert set(per_body.values()) == {1000}
    assert session.ledger.checks["conservation_held"]


def test_1000_concurrent_asyncio_tasks(tmp_path: Path) -> None:
    @profiler.tool
    async def fetch(i: int) -> int:
        await asyncio.sleep(0.01)
        return i

    @profiler.agent
    async def crawl() -> int:
        return sum(await asyncio.gather(*(fetch(i) for i in range(1000))))

    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend(), sample_interval_s=0.02) as session:
        assert asyncio.run(crawl()) == sum(range(1000))
    spans = raw_spans(tmp_path)
    agent_id = next(s["spanId"] for s in spans if s["name"] == "invoke_agent crawl")
    fetches = [s for s in spans if s["name"] == "execute_tool fetch"]
    assert len(fetches) == 1000 and {s["parentSpanId"] for s in fetches} == {agent_id}
    ledger = session.ledger
    assert ledger.checks["conservation_held"]
    # 1000 overlapping siblings share the GPU: each gets a slice, none gets the whole window.
    fetch_rows = ledger.steps[ledger.steps["name"] == "execute_tool fetch"]
    assert (fetch_rows["self_gpu_s"] > 0).all()
    assert fetch_rows["self_gpu_s"].sum() <= ledger.totals["gpu_s"] + 1e-9


def _child_work(n: int) -> int:
    worker_body(n)
    return n


def _run_children(method: str, tmp_path: Path) -> list[dict]:
    context = multiprocessing.get_context(method)
    with profiler.session(run_dir=tmp_path, gpu="none"), profiler.step("parent step"), context.Pool(2) as pool:
        assert pool.map(_child_work, [3, 4]) == [3, 4]
    return raw_spans(tmp_path)


def test_forked_children_record_into_the_run(tmp_path: Path) -> None:
    spans = _run_children("fork", tmp_path)
    parent_step = next(s for s in spans if s["name"] == "parent step")
    bodies = [s for s in spans if s["name"] == "worker_body"]
    assert len(bodies) == 2
    # A forked child inherits the context: its steps hang under the step that forked it.
    assert {s["parentSpanId"] for s in bodies} == {parent_step["spanId"]}
    assert len([s for s in spans if s["name"] == "execute_tool tiny"]) == 7


def test_spawned_children_record_into_the_run(tmp_path: Path) -> None:
    spans = _run_children("spawn", tmp_path)
    session_span = next(s for s in spans if s["name"] == "session session")
    bodies = [s for s in spans if s["name"] == "worker_body"]
    assert len(bodies) == 2
    # A spawned child starts fresh: its root steps hang under the session that started it.
    assert {s["parentSpanId"] for s in bodies} == {session_span["spanId"]}
    assert len([s for s in spans if s["name"] == "execute_tool tiny"]) == 7
    ledger = profiler.attribute(profiler.load(tmp_path))
    assert ledger.totals["sessions"] == 1


SHARING_PROCESS = """
import sys, time
from pathlib import Path
import profiler

run_dir, go, index = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
while not go.exists():
    time.sleep(0.001)
for k in range(10):
    with profiler.session(f"p{index}-{k}", run_dir=run_dir, gpu="none"), profiler.step("work"):
        pass
"""


@pytest.mark.slow
def test_three_processes_sharing_a_run_directory_keep_every_session(tmp_path: Path) -> None:
    run_dir, go = tmp_path / "run", tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", SHARING_PROCESS, str(run_dir), str(go), str(i)])
             for i in range(3)]
    go.touch()
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0, 0]
    meta = json.loads((run_dir / "run.json").read_text())
    # Before: a read-modify-write race lost some of the sessions each process added.
    assert sorted(s["name"] for s in meta["sessions"]) == sorted(f"p{i}-{k}" for i in range(3) for k in range(10))
    assert len([s for s in raw_spans(run_dir) if s["name"] == "work"]) == 30
    assert sorted(meta["writers"]) == sorted(str(proc.pid) for proc in procs)
