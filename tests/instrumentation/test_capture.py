"""The pieces of capture that need no global provider: `SessionSpanProcessor()` writing where the
session or the environment says, OTel's suppression key under `@profiler.llm`, tracers that follow
the program's provider, and the instrumentor selection."""

from __future__ import annotations

from pathlib import Path

import pytest
from opentelemetry import context as otel_context
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import profiler
from instrumentation import SessionSpanProcessor
from instrumentation.capture import CaptureProvider
from instrumentation.instrumentors import Selection, parse_selection


def _names(run_dir: Path) -> list[str]:
    path = run_dir / "spans.jsonl"
    return sorted(profiler.load(run_dir).spans["name"]) if path.exists() else []


def test_a_processor_without_arguments_writes_where_the_session_or_the_environment_says(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSIONPROF_RUN_DIR", str(tmp_path / "env"))
    processor = SessionSpanProcessor()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("sdk")

    with tracer.start_as_current_span("outside"):
        pass
    with profiler.session("s", run_dir=tmp_path / "session", gpu="none") as session:
        with tracer.start_as_current_span("inside"):
            pass
        processor.force_flush()
    provider.shutdown()

    assert _names(tmp_path / "env") == ["outside"]
    assert _names(tmp_path / "session") == ["inside", "session s"]
    inside = profiler.load(tmp_path / "session").spans.set_index("name").loc["inside"]
    assert inside["session_id"] == session.session_id


def test_a_processor_without_arguments_or_environment_records_only_sessions(tmp_path: Path) -> None:
    processor = SessionSpanProcessor()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(processor)
    with provider.get_tracer("sdk").start_as_current_span("outside"):
        pass
    provider.shutdown()
    assert processor.spans_outside_sessions == 1 and processor.dropped_spans == 0


def test_a_processor_takes_an_exporter_or_a_run_directory_not_both(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most one of exporter= or run_dir="):
        SessionSpanProcessor(InMemorySpanExporter(), run_dir=tmp_path)  # type: ignore[arg-type]


def _suppressed() -> bool:
    return bool(otel_context.get_value(_SUPPRESS_INSTRUMENTATION_KEY))


def test_our_model_call_span_tells_instrumentors_not_to_make_a_second(tmp_path: Path) -> None:
    @profiler.llm(model="gpt-4o")
    def call() -> bool:
        return _suppressed()

    @profiler.llm(model="gpt-4o")
    def stream() -> object:
        yield _suppressed()
        yield _suppressed()

    @profiler.tool
    def search() -> bool:
        return _suppressed()

    with profiler.session(run_dir=tmp_path, gpu="none"):
        with profiler.llm("chat") as _:
            in_block = _suppressed()
        seen = {"call": call(), "stream": list(stream()), "tool": search(), "block": in_block,
                "after": _suppressed()}
    assert seen == {"call": True, "stream": [True, True], "tool": False, "block": True, "after": False}


def test_tracers_of_our_provider_follow_the_program_s_provider_once_it_has_one() -> None:
    ours, theirs = InMemorySpanExporter(), InMemorySpanExporter()
    capture = CaptureProvider(SimpleSpanProcessor(ours))
    tracer = capture.get_tracer("instrumentor")  # handed out before the program sets its provider
    with tracer.start_as_current_span("before"):
        pass
    program = TracerProvider(shutdown_on_exit=False)
    program.add_span_processor(SimpleSpanProcessor(theirs))
    capture.program_provider = program
    span = tracer.start_span("after")
    span.end()
    assert [s.name for s in ours.get_finished_spans()] == ["before"]
    assert [s.name for s in theirs.get_finished_spans()] == ["after"]
    assert theirs.get_finished_spans()[0].resource is program.resource


@pytest.mark.parametrize(("text", "expected"), [
    ("auto", Selection("auto")), (" None ", Selection("none")), (None, Selection("auto")),
    ("openai, anthropic", Selection("list", ("openai", "anthropic"))),
    (["openinference-instrumentation-openai"], Selection("list", ("openinference-instrumentation-openai",))),
])
def test_the_instrumentor_selection(text: object, expected: Selection) -> None:
    assert parse_selection(text) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["", "openai,", "open ai", "openai;rm"])
def test_a_malformed_selection_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="auto, none or a comma list"):
        parse_selection(text)
