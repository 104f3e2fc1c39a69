"""A slow exporter costs the agent neither time nor unbounded memory: spans beyond the queue are dropped
and counted, and none are dropped in the normal case."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from instrumentation import SessionSpanProcessor


class SlowExporter(SpanExporter):
    def __init__(self, seconds_per_batch: float) -> None:
        self.seconds_per_batch = seconds_per_batch
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        time.sleep(self.seconds_per_batch)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS


def _emit(processor: SessionSpanProcessor, count: int) -> float:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("t")
    started = time.perf_counter()
    for _ in range(count):
        with tracer.start_as_current_span("step"):
            pass
    return time.perf_counter() - started


@pytest.mark.slow
def test_queue_is_bounded_and_drops_are_counted() -> None:
    exporter = SlowExporter(seconds_per_batch=0.5)
    processor = SessionSpanProcessor(exporter, max_queue_size=1_000, max_batch_size=100, flush_interval_s=0.01)
    elapsed = _emit(processor, 20_000)
    assert len(processor._queue) <= 1_000
    assert processor.dropped_spans > 0
    processor.shutdown_timeout_s = 30
    processor.shutdown()
    assert exporter.exported + processor.dropped_spans == 20_000
    # Ending 20k spans took no longer than without any exporter cost at all (generous bound: 2 cores, CI).
    assert elapsed < 20_000 * 200e-6


def test_no_drops_in_the_normal_case() -> None:
    exporter = SlowExporter(seconds_per_batch=0.001)
    processor = SessionSpanProcessor(exporter)
    _emit(processor, 20_000)
    processor.shutdown()
    assert processor.dropped_spans == 0 and exporter.exported == 20_000
