"""Trace files and run directories for the CLI tests, written in the formats the readers accept."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from profiler.cli.app import app
from profiler.model import SAMPLE_COLUMNS, format_pid_memory

BASE_NS = 1_760_000_000_000_000_000
S = 1_000_000_000
TRACE = "0af7651916cd43dd8448eb211c80319c"


def invoke(*args: str) -> Any:
    """Run `sessionprof ARGS` in process; returns the result (exit_code, stdout, stderr)."""
    return CliRunner().invoke(app, [str(a) for a in args])


def _kv(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, int):
        return {"key": key, "value": {"intValue": str(value)}}
    return {"key": key, "value": {"stringValue": str(value)}}


def otlp_span(span_id: str, parent: str | None, name: str, start: float, end: float, *,
              trace: str = TRACE, **attrs: Any) -> dict[str, Any]:
    """One OTLP JSON span; times in seconds after BASE_NS; attributes given with `.` as `__`."""
    span = {"traceId": trace, "spanId": span_id, "name": name, "kind": 1,
            "startTimeUnixNano": str(BASE_NS + round(start * S)), "endTimeUnixNano": str(BASE_NS + round(end * S)),
            "attributes": [_kv(k.replace("__", "."), v) for k, v in attrs.items()], "status": {"code": 0}}
    if parent:
        span["parentSpanId"] = parent
    return span


def chat(span_id: str, parent: str, start: float, end: float, *, model: str = "gpt-4o", provider: str = "openai",
         inp: int = 1000, out: int = 100, conversation: str = "conv-a", trace: str = TRACE) -> dict[str, Any]:
    return otlp_span(span_id, parent, f"chat {model}", start, end, trace=trace, gen_ai__operation__name="chat",
                     gen_ai__provider__name=provider, gen_ai__request__model=model,
                     gen_ai__usage__input_tokens=inp, gen_ai__usage__output_tokens=out,
                     gen_ai__conversation__id=conversation)


def tool(span_id: str, parent: str, start: float, end: float, name: str, *, conversation: str = "conv-a",
         trace: str = TRACE) -> dict[str, Any]:
    return otlp_span(span_id, parent, f"execute_tool {name}", start, end, trace=trace,
                     gen_ai__operation__name="execute_tool", gen_ai__tool__name=name,
                     gen_ai__conversation__id=conversation)


def agent(span_id: str, start: float, end: float, *, conversation: str = "conv-a", trace: str = TRACE,
          name: str = "planner") -> dict[str, Any]:
    return otlp_span(span_id, None, f"invoke_agent {name}", start, end, trace=trace,
                     gen_ai__operation__name="invoke_agent", gen_ai__agent__name=name,
                     gen_ai__conversation__id=conversation)


def write_trace(path: Path, spans: list[dict[str, Any]], *, pid: int | None = None,
                append: bool = False) -> Path:
    """Write spans as OTLP JSON Lines, one `TracesData` per span (from process `pid`, when given)."""
    resource = [_kv("process.pid", pid)] if pid is not None else []
    text = "".join(json.dumps({"resourceSpans": [{"resource": {"attributes": resource}, "scopeSpans": [
        {"spans": [span]}]}]}) + "\n" for span in spans)
    with path.open("a" if append else "w", encoding="utf-8") as stream:
        stream.write(text)
    return path


def agent_session(*, second_chat_tokens: int = 500, extra_tool: bool = False, drop_search: bool = False,
                  conversation: str = "conv-a", trace: str = TRACE, offset: float = 0.0) -> list[dict[str, Any]]:
    """An agent: chat, search tool, chat (, an extra tool)."""
    o = offset
    spans = [agent("a000000000000001", o + 0, o + 10, conversation=conversation, trace=trace),
             chat("c000000000000001", "a000000000000001", o + 1, o + 3, inp=1000, out=100, conversation=conversation,
                  trace=trace)]
    if not drop_search:
        spans.append(tool("t000000000000001", "a000000000000001", o + 3, o + 5, "search", conversation=conversation,
                          trace=trace))
    spans.append(chat("c000000000000002", "a000000000000001", o + 5, o + 8, inp=second_chat_tokens, out=50,
                      conversation=conversation, trace=trace))
    if extra_tool:
        spans.append(tool("t000000000000002", "a000000000000001", o + 8, o + 9, "calculator",
                          conversation=conversation, trace=trace))
    return spans


def write_samples(path: Path, start_s: float, end_s: float, *, watts: float = 200.0, gpu: str = "GPU-test",
                  mem_bytes: float = 8 * 1024**3, by_pid: dict[int, int] | None = None) -> Path:
    """Our samples.csv for one GPU, every 0.1 s, at a steady power, memory and full utilisation."""
    lines = [",".join(SAMPLE_COLUMNS)]
    steps = round((end_s - start_s) * 10)
    for i in range(steps + 1):
        t = start_s + i / 10
        values = {"t_ns": BASE_NS + round(t * S), "gpu": gpu, "energy_j": watts * (t - start_s), "power_w": watts,
                  "mem_used_bytes": mem_bytes if i else 0.0,
                  "proc_mem_bytes": sum((by_pid or {}).values()) or "",
                  "util_pct": 100.0, "proc_mem_bytes_by_pid": format_pid_memory(by_pid) or ""}
        lines.append(",".join(str(values.get(c, "")) for c in SAMPLE_COLUMNS))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
