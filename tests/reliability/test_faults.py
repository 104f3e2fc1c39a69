"""Faults in the exporter, the GPU, the user's objects and the call shapes never reach agent code."""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import profiler
from instrumentation import SessionSpanProcessor
from instrumentation.exporter import RunDirExporter
from profiler.testing import FakeGpuBackend
from tests.reliability.helpers import DiskFillsOnce, raw_spans


class RaisingExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        raise RuntimeError("exporter exploded")


class HangingExporter(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(30)
        return SpanExportResult.SUCCESS


def _provider(processor: SessionSpanProcessor) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    return provider


def test_an_exporter_that_raises_is_counted_not_raised() -> None:
    processor = SessionSpanProcessor(RaisingExporter())
    tracer = _provider(processor).get_tracer("t")
    for _ in range(5):
        with tracer.start_as_current_span("step"):
            pass
    assert processor.force_flush() is True
    assert processor.failed_exports == 5
    processor.shutdown()


def test_a_hanging_exporter_delays_the_agent_by_at_most_the_flush_timeout() -> None:
    exporter = HangingExporter()
    processor = SessionSpanProcessor(exporter, flush_interval_s=0.01)
    tracer = _provider(processor).get_tracer("t")
    with tracer.start_as_current_span("first"):
        pass
    time.sleep(0.1)  # the worker is now stuck inside export()
    started = time.monotonic()
    for _ in range(100):
        with tracer.start_as_current_span("more"):
            pass
    assert time.monotonic() - started < 0.5  # ending spans never waits on the exporter
    assert processor.force_flush(timeout_millis=200) is False
    assert time.monotonic() - started < 1.5
    exporter.release.set()
    assert processor.force_flush(timeout_millis=5_000) is True
    processor.shutdown()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_full_disk_is_a_counted_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    DiskFillsOnce(monkeypatch, "spans.jsonl", always=True)
    exporter = RunDirExporter(tmp_path)
    processor = SessionSpanProcessor(exporter)
    tracer = _provider(processor).get_tracer("t")
    with tracer.start_as_current_span("step"):
        pass
    processor.force_flush()
    assert exporter.failed_spans == 1 and processor.failed_exports == 1
    processor.shutdown()


def test_gpu_read_errors_and_a_lost_gpu_leave_a_loadable_run(tmp_path: Path) -> None:
    gpu = FakeGpuBackend(devices=2, fail_reads={3, 4, 7}, lose_after_reads=40)

    @profiler.tool
    def work() -> int:
        time.sleep(0.02)
        return 1

    with profiler.session(run_dir=tmp_path, gpu=gpu, sample_interval_s=0.02) as session:
        for _ in range(30):
            work()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["status"] == "complete"
    assert meta["dropped"]["sample_read_errors"] == 3
    assert sorted(meta["sampler"]["lost_gpus"]) == ["GPU-fake-0", "GPU-fake-1"]
    ledger = session.ledger
    assert ledger.checks["conservation_held"]
    assert ledger.totals["tool_calls"] == 30


def test_unserialisable_attributes_and_wrong_usage_shapes(tmp_path: Path) -> None:
    class Opaque:
        def __repr__(self) -> str:
            raise RuntimeError("repr exploded")

    @profiler.llm(model="gpt-4o")
    def odd_usage() -> object:
        return {"usage": {"prompt_tokens": "lots", "completion_tokens": [1, 2]}, "model": 7}

    @profiler.llm
    def not_a_response() -> object:
        return Opaque()

    with profiler.session(run_dir=tmp_path, gpu="none") as session:
        with profiler.step("s") as step:
            step.set("opaque", Opaque())  # OTel drops invalid types with a warning; never raises
            step.set("nested", {"a": [1, {"b": 2}]})
        assert isinstance(odd_usage(), dict)
        assert isinstance(not_a_response(), Opaque)
    ledger = session.ledger
    assert ledger.totals["model_calls"] == 0  # usage that cannot be read is not invented


def test_every_kind_of_callable(tmp_path: Path) -> None:
    class Agent:
        @classmethod
        @profiler.step
        def make(cls) -> Agent:
            return cls()

        @staticmethod
        @profiler.tool
        def helper(x: int) -> int:
            return x

        @profiler.step
        def fact(self, n: int) -> int:
            return 1 if n <= 1 else n * self.fact(n - 1)

    square = profiler.tool(name="square")(lambda x: x * x)
    add_one = profiler.tool(functools.partial(lambda a, b: a + b, 1))

    with profiler.session(run_dir=tmp_path, gpu="none"):
        agent = Agent.make()
        assert agent.fact(5) == 120
        assert Agent.helper(3) == 3 and square(4) == 16 and add_one(2) == 3
    spans = raw_spans(tmp_path)
    names = [s["name"] for s in spans]
    assert names.count("fact") == 5 and "make" in names and "execute_tool helper" in names
    assert "execute_tool square" in names and "execute_tool partial" in names
    facts = {s["spanId"]: s for s in spans if s["name"] == "fact"}
    depths = []
    for span in facts.values():
        depth, parent = 0, span.get("parentSpanId")
        while parent in facts:
            depth, parent = depth + 1, facts[parent].get("parentSpanId")
        depths.append(depth)
    assert sorted(depths) == [0, 1, 2, 3, 4]  # recursion nests


def test_keyboard_interrupt_inside_a_step_still_closes_the_run(tmp_path: Path) -> None:
    @profiler.step
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt), profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()):
        interrupted()
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["status"] == "complete"
    spans = {s["name"]: s for s in raw_spans(tmp_path)}
    assert spans["interrupted"]["status"]["code"] == 2
    assert spans["session session"]["status"]["code"] == 2
    assert os.environ.get("SESSIONPROF_RUN_DIR") is None  # the session's environment was restored


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_export_failure_reaches_run_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    DiskFillsOnce(monkeypatch, "spans.jsonl", always=True)
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()), profiler.step("lost"):
        pass
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["dropped"]["spans_failed_export"] >= 1  # ENOSPC on every write: counted, never raised
