"""Decorators: span shape on every kind of callable, errors, nesting, and the no-session path."""

from __future__ import annotations

import asyncio
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import profiler
from instrumentation._state import counters


def spans_of(run_dir: Path) -> list[dict[str, Any]]:
    """Every span in a run directory's spans.jsonl, raw OTLP JSON."""
    spans = []
    for line in (run_dir / "spans.jsonl").read_text().splitlines():
        for resource_spans in json.loads(line)["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                spans.extend(scope_spans["spans"])
    return spans


def attrs(span: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for item in span.get("attributes", []):
        (kind, value), = item["value"].items()
        out[item["key"]] = int(value) if kind == "intValue" else value
    return out


def by_name(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in spans}


@pytest.fixture
def record(tmp_path: Path):
    """Run a function inside a GPU-less session and return its spans by name."""
    def run(body) -> dict[str, dict[str, Any]]:
        with profiler.session("t", run_dir=tmp_path, gpu="none"):
            body()
        return by_name(spans_of(tmp_path))
    return run


def test_sync_async_generator_and_async_generator_functions(record) -> None:
    @profiler.tool
    def sync_tool(x: int) -> int:
        return x + 1

    @profiler.tool(name="renamed")
    async def async_tool(x: int) -> int:
        await asyncio.sleep(0)
        return x * 2

    @profiler.step
    def gen(n: int):
        yield from range(n)

    @profiler.step("agen")
    async def agen(n: int):
        for i in range(n):
            yield i

    results: dict[str, Any] = {}

    def body() -> None:
        results["sync"] = sync_tool(1)
        results["async"] = asyncio.run(async_tool(3))
        results["gen"] = list(gen(3))

        async def collect() -> list[int]:
            return [i async for i in agen(2)]
        results["agen"] = asyncio.run(collect())

    spans = record(body)
    assert results == {"sync": 2, "async": 6, "gen": [0, 1, 2], "agen": [0, 1]}
    assert attrs(spans["execute_tool sync_tool"])["gen_ai.tool.name"] == "sync_tool"
    assert attrs(spans["execute_tool renamed"])["gen_ai.operation.name"] == "execute_tool"
    assert attrs(spans["gen"])["gen_ai.operation.name"] == "step"
    assert "agen" in spans
    session_id = attrs(spans["session t"])["gen_ai.conversation.id"]
    assert all(attrs(s)["gen_ai.conversation.id"] == session_id for s in spans.values())


def test_otlp_json_mapping_is_valid(record) -> None:
    @profiler.agent
    def agent() -> None:
        pass

    spans = record(agent)
    span = spans["invoke_agent agent"]
    assert len(span["traceId"]) == 32 and span["traceId"] == span["traceId"].lower()
    assert len(span["spanId"]) == 16 and int(span["spanId"], 16)
    assert isinstance(span["startTimeUnixNano"], str) and int(span["startTimeUnixNano"]) > 0
    assert isinstance(span["kind"], int) and span["kind"] == 1  # SPAN_KIND_INTERNAL
    assert isinstance(span["status"]["code"], int)
    assert span["parentSpanId"] == spans["session t"]["spanId"]


def test_methods_classmethods_and_nesting(record) -> None:
    class Agent:
        @profiler.llm(model="gpt-4o", provider="openai")
        def think(self) -> dict[str, Any]:
            return {"model": "gpt-4o-2024-08-06", "usage": {"prompt_tokens": 100, "completion_tokens": 7}}

        @profiler.agent(name="planner")
        def run(self) -> None:
            self.think()
            self.act()

        @profiler.tool
        def act(self) -> str:
            return "done"

    spans = record(lambda: Agent().run())
    agent, chat, tool = spans["invoke_agent planner"], spans["chat gpt-4o"], spans["execute_tool act"]
    assert chat["parentSpanId"] == agent["spanId"] and tool["parentSpanId"] == agent["spanId"]
    chat_attrs = attrs(chat)
    assert chat_attrs["gen_ai.request.model"] == "gpt-4o"
    assert chat_attrs["gen_ai.response.model"] == "gpt-4o-2024-08-06"
    assert chat_attrs["gen_ai.usage.input_tokens"] == 100 and chat_attrs["gen_ai.usage.output_tokens"] == 7
    assert chat["kind"] == 3  # SPAN_KIND_CLIENT


def test_exception_propagates_unchanged_and_marks_error(record) -> None:
    class Boom(Exception):
        pass

    error = Boom("secret prompt text")

    @profiler.tool
    def fails() -> None:
        raise error

    @profiler.step
    async def fails_async() -> None:
        raise KeyError("k")

    caught: list[BaseException] = []

    def body() -> None:
        for call in (fails, lambda: asyncio.run(fails_async())):
            try:
                call()
            except Exception as exc:  # noqa: BLE001
                caught.append(exc)

    spans = record(body)
    assert caught[0] is error and isinstance(caught[1], KeyError)
    failed = spans["execute_tool fails"]
    assert failed["status"]["code"] == 2
    assert attrs(failed)["error.type"] == "test_exception_propagates_unchanged_and_marks_error.<locals>.Boom"
    assert "secret prompt text" not in json.dumps(failed)  # messages are content: not recorded
    assert spans["fails_async"]["status"]["code"] == 2


def test_generator_span_is_not_current_between_items(record) -> None:
    @profiler.step
    def producer():
        yield 1
        yield 2

    @profiler.tool
    def consumer(item: int) -> int:
        return item

    def body() -> None:
        for item in producer():
            consumer(item)

    spans = record(body)
    # The consumer runs in the caller between items: its parent is the session, not the generator.
    assert spans["execute_tool consumer"]["parentSpanId"] == spans["session t"]["spanId"]
    assert spans["producer"]["parentSpanId"] == spans["session t"]["spanId"]


def test_context_manager_form_sync_and_async(record) -> None:
    def body() -> None:
        with profiler.tool("search") as call:
            call.set("search.results", 3)
        with profiler.llm(model="claude-haiku-4-5") as model_call:
            model_call.record_usage({"type": "message", "model": "claude-haiku-4-5",
                                     "usage": {"input_tokens": 10, "output_tokens": 5,
                                               "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20}})

        async def run() -> None:
            async with profiler.step("async block"):
                await asyncio.sleep(0)
        asyncio.run(run())

    spans = record(body)
    assert attrs(spans["execute_tool search"])["search.results"] == 3
    usage = attrs(spans["chat claude-haiku-4-5"])
    # Anthropic's input excludes cache; written inclusive, as OTel requires.
    assert usage["gen_ai.usage.input_tokens"] == 130
    assert usage["gen_ai.usage.cache_read.input_tokens"] == 100
    assert usage["gen_ai.usage.cache_creation.input_tokens"] == 20
    assert "async block" in spans


def test_every_thread_and_task_span_has_the_agent_as_parent(tmp_path: Path) -> None:
    @profiler.tool
    def work(i: int) -> int:
        return i

    @profiler.tool
    async def awork(i: int) -> int:
        await asyncio.sleep(0.001)
        return i

    @profiler.agent
    def fan_out() -> None:
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(work, range(8)))
        threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

        async def tasks() -> None:
            await asyncio.gather(*(awork(i) for i in range(5)))
        asyncio.run(tasks())

    with profiler.session("t", run_dir=tmp_path, gpu="none"):
        fan_out()
    spans = spans_of(tmp_path)
    agent_id = next(s["spanId"] for s in spans if s["name"] == "invoke_agent fan_out")
    workers = [s for s in spans if s["name"] in ("execute_tool work", "execute_tool awork")]
    assert len(workers) == 16
    assert {s["parentSpanId"] for s in workers} == {agent_id}


def test_no_session_calls_straight_through() -> None:
    calls = []

    @profiler.tool
    def plain(x: int) -> int:
        calls.append(x)
        return x

    assert plain(5) == 5 and calls == [5]
    with profiler.tool("free-standing") as scope:
        scope.set("ignored", 1)  # no span: a no-op, not an error


def test_decorator_rejects_non_callables() -> None:
    with pytest.raises(TypeError):
        profiler.tool("x")(42)


def test_profiler_failure_never_reaches_the_agent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry.sdk.trace import Tracer

    def broken(*_args: Any, **_kwargs: Any) -> None:
        raise RuntimeError("tracer exploded")

    @profiler.tool
    def still_works() -> str:
        return "ok"

    before = counters.internal_errors
    with profiler.session("t", run_dir=tmp_path, gpu="none"):
        monkeypatch.setattr(Tracer, "start_span", broken)
        assert still_works() == "ok"
        monkeypatch.undo()
    assert counters.internal_errors == before + 1


def _durations_s(run_dir: Path, name: str) -> list[float]:
    """Each span's duration, in the order of its `hold` attribute (what the call meant to hold)."""
    spans = sorted((s for s in spans_of(run_dir) if s["name"] == name), key=lambda s: float(attrs(s)["hold"]))
    return [(int(s["endTimeUnixNano"]) - int(s["startTimeUnixNano"])) / 1e9 for s in spans]


def test_one_step_object_entered_by_two_tasks_at_once_keeps_each_entry_apart(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    search = profiler.tool("search")

    async def call(hold_s: float) -> None:
        async with search as scope:
            scope.set("hold", hold_s)
            await asyncio.sleep(hold_s)

    async def both() -> None:
        # The short call enters first and exits first: a stack shared by both entries would then end
        # the long call's span, and later the short one's.
        await asyncio.gather(call(0.1), call(0.5))

    with profiler.session("t", run_dir=tmp_path, gpu="none"):
        asyncio.run(both())
    short, long = _durations_s(tmp_path, "execute_tool search")
    assert 0.09 < short < 0.3 and 0.45 < long < 0.8
    assert not [r for r in caplog.records if "different Context" in r.getMessage() or "detach" in r.getMessage()]


def test_one_step_object_entered_by_two_threads_at_once_keeps_each_entry_apart(tmp_path: Path) -> None:
    search = profiler.tool("search")
    entered = threading.Barrier(2)

    def call(hold_s: float, delay_s: float) -> None:
        threading.Event().wait(delay_s)  # the short call enters first
        with search as scope:
            scope.set("hold", hold_s)
            entered.wait()
            threading.Event().wait(hold_s)

    with profiler.session("t", run_dir=tmp_path, gpu="none"), ThreadPoolExecutor(2) as pool:
        list(pool.map(call, [0.1, 0.5], [0.0, 0.05]))
    short, long = _durations_s(tmp_path, "execute_tool search")
    assert 0.09 < short < 0.3 and 0.45 < long < 0.8


def test_a_step_object_nested_in_itself_ends_the_inner_entry_first(tmp_path: Path) -> None:
    step = profiler.step("phase")
    with profiler.session("t", run_dir=tmp_path, gpu="none"), step as outer:
        outer.set("hold", 0.2)
        with step as inner:
            inner.set("hold", 0.0)
        threading.Event().wait(0.2)
    inner, outer = _durations_s(tmp_path, "phase")
    assert inner < 0.1 and outer >= 0.2
