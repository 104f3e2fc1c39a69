"""Write the golden run directory beside this script: a small, fixed, realistic agent session.

    python tests/data/golden/build.py

One session of a planner agent on one H100: three calls to a self-hosted model (vLLM, local GPU),
one to a hosted reasoning model (o4-mini), one to a model genai-prices does not know (unpriced),
tool calls (two of them concurrent, one failing, one shorter than the energy sensor's resolution)
during which the GPU idles with the KV cache held.
Fixed ids and times make every renderer's output stable. Re-run after changing this file and commit
`spans.jsonl`, `samples.csv` and `run.json`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
T0_NS = 1_800_000_000_000_000_000  # 2027-01-15, a fixed instant
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
CONVERSATION = "conv-golden-1"
GPU_UUID = "GPU-6b1e0c1a-golden-0000-0000-000000000000"
GIB = 1024**3

# (span id, parent, name, start s, end s, attributes, status)
_VLLM = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "vllm", "server.address": "localhost",
         "gen_ai.request.model": "meta-llama/Llama-3.1-8B-Instruct",
         "gen_ai.response.model": "meta-llama/Llama-3.1-8B-Instruct"}
SPANS: list[tuple[str, str | None, str, float, float, dict[str, Any], str]] = [
    ("a000000000000001", None, "session golden", 0.0, 12.0,
     {"sessionprof.session.root": True, "sessionprof.session.name": "golden"}, "ok"),
    ("a000000000000002", "a000000000000001", "invoke_agent planner", 0.1, 11.9,
     {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}, "ok"),
    ("a000000000000003", "a000000000000002", "chat meta-llama/Llama-3.1-8B-Instruct", 0.2, 2.2,
     {**_VLLM, "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 300,
      "gen_ai.usage.cache_read.input_tokens": 0}, "ok"),
    ("a00000000000000d", "a000000000000002", "execute_tool cache_lookup", 2.22, 2.27,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "cache_lookup"}, "ok"),
    ("a000000000000004", "a000000000000002", "execute_tool web_search", 2.3, 5.3,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web_search"}, "ok"),
    ("a000000000000005", "a000000000000002", "chat meta-llama/Llama-3.1-8B-Instruct", 5.4, 7.0,
     {**_VLLM, "gen_ai.usage.input_tokens": 1800, "gen_ai.usage.output_tokens": 200,
      "gen_ai.usage.cache_read.input_tokens": 1024}, "ok"),
    ("a000000000000006", "a000000000000002", "execute_tool read_page", 7.1, 8.1,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read_page"}, "ok"),
    ("a000000000000007", "a000000000000002", "execute_tool calculator", 7.2, 7.5,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "calculator"}, "ok"),
    ("a000000000000008", "a000000000000002", "chat o4-mini", 8.2, 9.2,
     {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "server.address": "api.openai.com",
      "gen_ai.request.model": "o4-mini", "gen_ai.response.model": "o4-mini",
      "gen_ai.usage.input_tokens": 2600, "gen_ai.usage.output_tokens": 400,
      "gen_ai.usage.cache_read.input_tokens": 1536, "gen_ai.usage.reasoning.output_tokens": 250}, "ok"),
    ("a000000000000009", "a000000000000002", "chat acme-llm-1", 9.3, 10.0,
     {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "acme", "server.address": "llm.acme.example",
      "gen_ai.request.model": "acme-llm-1", "gen_ai.usage.input_tokens": 3100,
      "gen_ai.usage.output_tokens": 150}, "ok"),
    ("a00000000000000a", "a000000000000002", "summarise", 10.1, 11.5,
     {"sessionprof.step.kind": "step"}, "ok"),
    ("a00000000000000b", "a00000000000000a", "chat meta-llama/Llama-3.1-8B-Instruct", 10.2, 11.4,
     {**_VLLM, "gen_ai.usage.input_tokens": 3400, "gen_ai.usage.output_tokens": 500,
      "gen_ai.usage.cache_read.input_tokens": 2900}, "ok"),
    ("a00000000000000c", "a000000000000002", "execute_tool flaky_api", 11.5, 11.8,
     {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "flaky_api", "error.type": "TimeoutError"},
     "error"),
]
#: When the self-hosted model computes (high power and utilization); otherwise the GPU idles.
BUSY_S = [(0.2, 2.2), (5.4, 7.0), (10.2, 11.4)]


def _value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def _ns(seconds: float) -> int:
    return T0_NS + round(seconds * 1e9)


def spans_document() -> dict[str, Any]:
    """The session's spans as one OTLP `TracesData`."""
    spans = []
    for span_id, parent, name, start, end, attrs, status in SPANS:
        attributes = {**attrs, "gen_ai.conversation.id": CONVERSATION}
        span: dict[str, Any] = {
            "traceId": TRACE_ID, "spanId": span_id, "name": name, "kind": 1,
            "startTimeUnixNano": str(_ns(start)), "endTimeUnixNano": str(_ns(end)),
            "attributes": [{"key": k, "value": _value(v)} for k, v in attributes.items()],
            "status": {"code": 2 if status == "error" else 1},
        }
        if parent:
            span["parentSpanId"] = parent
        spans.append(span)
    resource = {"attributes": [{"key": "service.name", "value": {"stringValue": "golden"}}]}
    return {"resourceSpans": [{"resource": resource, "scopeSpans": [
        {"scope": {"name": "agent-session-profiler"}, "spans": spans}]}]}


def sample_rows() -> list[str]:
    """Samples every 100 ms from 0.5 s before the session to 0.5 s after it."""
    rows = ["t_ns,gpu,energy_j,power_w,mem_used_bytes,proc_mem_bytes,util_pct"]
    energy_j = 5_000_000.0
    previous_w = None
    for tick in range(-5, 126):
        t_s = tick / 10
        busy = any(a <= t_s < b for a, b in BUSY_S)
        power_w = 345.0 + 5.0 * (tick % 3) if busy else 72.0 + (tick % 2)
        if previous_w is not None:
            energy_j += 0.1 * (power_w + previous_w) / 2
        previous_w = power_w
        mem = 1 * GIB if t_s < 0.1 else (41 * GIB + (2 * GIB if t_s >= 5.4 else 0))
        util = 92.0 if busy else 0.0
        rows.append(f"{_ns(t_s)},{GPU_UUID},{energy_j:.3f},{power_w:.1f},{mem},,{util:.1f}")
    return rows


def run_meta() -> dict[str, Any]:
    """run.json: the host, the GPU and the settings of a complete run."""
    return {
        "format": "sessionprof-run/1", "run_id": "golden", "started_ns": _ns(-0.5), "ended_ns": _ns(12.5),
        "status": "complete", "exit_code": 0, "command": ["python", "agent.py"],
        "host": {"hostname": "golden-host", "platform": "Linux", "python": "3.11", "cpu_count": 16},
        "gpu_backend": "nvml", "gpu_unavailable_reason": None,
        "gpus": [{"index": 0, "uuid": GPU_UUID, "name": "NVIDIA H100 80GB HBM3",
                  "supports": {"energy_counter": True, "power_instant": True, "memory_v2": True,
                               "processes": False, "utilization": True},
                  "details": {}, "mem_baseline_bytes": 1 * GIB}],
        "sampler": {"interval_s": 0.1, "slow_every": 1, "read_errors": 0},
        "dropped": {"sample_read_errors": 0},
    }


def build(directory: Path = HERE) -> Path:
    """Write spans.jsonl, samples.csv and run.json into `directory`; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "spans.jsonl").write_text(json.dumps(spans_document(), separators=(",", ":")) + "\n")
    (directory / "samples.csv").write_text("\n".join(sample_rows()) + "\n")
    (directory / "run.json").write_text(json.dumps(run_meta(), indent=2) + "\n")
    return directory


if __name__ == "__main__":
    print(f"golden run written to {build()}")
