"""Decorator overhead, side by side: what one decorated call costs with ours against raw OpenTelemetry
and the peer SDKs, in one run on one machine.

    pip install -e '.[bench]'                                  # OTel's OTLP JSON file exporter
    python benchmarks/decorator_overhead.py --peer-envs .bench-envs

The peer SDKs pin different OpenTelemetry versions, so `--peer-envs DIR` gives each its own virtual
environment under DIR (created on first use: this project plus the peer, from PyPI); a peer that
cannot be installed is reported in the table, not fatal.

Workload: an agent step that calls a model call and a tool call, three decorated functions a step.
Each configuration runs in a fresh interpreter (peers install global tracer providers), rounds are
interleaved so drift hits every configuration alike, and the table gives the median over rounds of
the microseconds added per decorated call (configuration minus plain functions, divided by three),
and the ratio to raw OpenTelemetry. Every span must reach its exporter: the spans column checks it.
Nothing leaves the machine: peers export to a counting no-op exporter or a local file.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PEER_PACKAGES = {"openlit": "openlit", "traceloop": "traceloop-sdk", "langfuse": "langfuse"}
CONFIGS = ("plain", "otel-noop", "otel-sdk", "ours-no-session", "ours", "otel-sdk-counting", "ours-counting",
           "openlit", "traceloop", "langfuse")
LABELS = {
    "plain": "plain functions (baseline)",
    "otel-noop": "OTel API only, no SDK",
    "otel-sdk": "raw OTel SDK: BatchSpanProcessor + OTLP JSON file exporter",
    "ours-no-session": "ours, no session active",
    "ours": "ours, session writing the run directory",
    "otel-sdk-counting": "raw OTel SDK: BatchSpanProcessor + counting no-op exporter",
    "ours-counting": "ours: our span processor + counting no-op exporter",
    "openlit": "OpenLIT @openlit.trace",
    "traceloop": "Traceloop @workflow/@task/@tool",
    "langfuse": "Langfuse @observe (capture off)",
}


# --- the workload -----------------------------------------------------------------------------------

def build_workload(decorate: Callable[[str, str], Callable[[Any], Any]], is_async: bool) -> Callable[[], Any]:
    """One agent step: a model call and a tool call inside a step, each decorated by `decorate(kind, name)`."""
    if is_async:
        @decorate("llm", "model_call")
        async def model_call(x: int) -> dict[str, Any]:
            return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10 + x, "completion_tokens": 2}}

        @decorate("tool", "tool_call")
        async def tool_call(x: int) -> int:
            return x + 1

        @decorate("agent", "agent_step")
        async def agent_step(x: int) -> int:
            await model_call(x)
            return await tool_call(x)

        return agent_step

    @decorate("llm", "model_call")
    def model_call(x: int) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "usage": {"prompt_tokens": 10 + x, "completion_tokens": 2}}

    @decorate("tool", "tool_call")
    def tool_call(x: int) -> int:
        return x + 1

    @decorate("agent", "agent_step")
    def agent_step(x: int) -> int:
        model_call(x)
        return tool_call(x)

    return agent_step


def time_steps(step: Callable[[int], Any], steps: int, is_async: bool) -> float:
    """Seconds for `steps` agent steps after a warm-up."""
    if is_async:
        async def loop(n: int) -> float:
            for i in range(min(n, 500)):
                await step(i)
            started = time.perf_counter()
            for i in range(n):
                await step(i)
            return time.perf_counter() - started
        return asyncio.run(loop(steps))
    for i in range(min(steps, 500)):
        step(i)
    started = time.perf_counter()
    for i in range(steps):
        step(i)
    return time.perf_counter() - started


# --- the configurations (each runs in its own interpreter) -------------------------------------------

class CountingExporter:
    """A no-op span exporter that counts what reaches it."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[Any]) -> Any:
        from opentelemetry.sdk.trace.export import SpanExportResult

        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def unbounded_batch_processor(exporter: Any) -> Any:
    """A BatchSpanProcessor whose queue never drops in this workload."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter, max_queue_size=2_000_000, max_export_batch_size=512, schedule_delay_millis=500)


def run_config(config: str, steps: int, is_async: bool, workdir: Path) -> dict[str, Any]:
    """Set up one configuration, time the workload, tear down, count spans."""
    spans_exported: Callable[[], int | None] = lambda: None  # noqa: E731
    teardown: Callable[[], None] = lambda: None  # noqa: E731
    if config == "plain":
        def decorate(kind: str, name: str) -> Callable[[Any], Any]:
            return lambda f: f
    elif config in ("otel-noop", "otel-sdk", "otel-sdk-counting"):
        from opentelemetry import trace

        if config == "otel-sdk-counting":
            from opentelemetry.sdk.trace import TracerProvider

            exporter = CountingExporter()
            provider = TracerProvider()
            provider.add_span_processor(unbounded_batch_processor(exporter))
            tracer = provider.get_tracer("bench")

            def teardown() -> None:
                provider.shutdown()

            spans_exported = lambda: exporter.count  # noqa: E731
        elif config == "otel-sdk":
            from opentelemetry.exporter.otlp.json.file.trace_exporter import FileSpanExporter
            from opentelemetry.sdk.trace import TracerProvider

            provider = TracerProvider()
            path = workdir / "otel.jsonl"
            provider.add_span_processor(unbounded_batch_processor(FileSpanExporter(path)))
            tracer = provider.get_tracer("bench")

            def teardown() -> None:
                provider.shutdown()

            def spans_exported() -> int:
                return sum(line.count('"spanId"') for line in path.read_text().splitlines())
        else:
            tracer = trace.get_tracer("bench")

        def decorate(kind: str, name: str) -> Callable[[Any], Any]:
            return tracer.start_as_current_span(name)
    elif config in ("ours", "ours-no-session", "ours-counting"):
        import profiler

        kinds = {"llm": profiler.llm, "tool": profiler.tool, "agent": profiler.agent}

        def decorate(kind: str, name: str) -> Callable[[Any], Any]:
            return kinds[kind](name=name) if kind != "llm" else kinds[kind](model="gpt-4o-mini", provider="openai")
        if config == "ours-counting":
            # A user-owned provider with our processor: the decorators use it with no session open.
            from opentelemetry import trace
            from opentelemetry.sdk.trace import TracerProvider

            from instrumentation import SessionSpanProcessor

            exporter = CountingExporter()
            provider = TracerProvider()
            provider.add_span_processor(SessionSpanProcessor(exporter, max_queue_size=2_000_000))
            trace.set_tracer_provider(provider)

            def teardown() -> None:
                provider.shutdown()

            spans_exported = lambda: exporter.count  # noqa: E731
        if config == "ours":
            session = profiler.session("bench", run_dir=workdir / "run", gpu="none")
            session.__enter__()

            def teardown() -> None:
                session.__exit__(None, None, None)

            def spans_exported() -> int:
                text = (workdir / "run" / "spans.jsonl").read_text()
                return text.count('"spanId"') - 1  # less the session's own span
    elif config == "openlit":
        if is_async:
            # @openlit.trace ends the span of an `async def` before the coroutine runs (the span sees
            # the coroutine object, not its work): no like-for-like figure exists.
            return {"config": config, "error": "async: span ends before the coroutine runs"}
        import openlit

        exporter = CountingExporter()
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider()
        provider.add_span_processor(unbounded_batch_processor(exporter))
        trace.set_tracer_provider(provider)  # openlit.init reuses an SDK provider already installed
        openlit.init(disable_metrics=True, disable_events=True, collect_gpu_stats=False,
                     disabled_instrumentors=_all_openlit_instrumentors(), pricing_json=_empty_pricing(workdir))

        def decorate(kind: str, name: str) -> Callable[[Any], Any]:
            return openlit.trace

        def teardown() -> None:
            provider.shutdown()

        spans_exported = lambda: exporter.count  # noqa: E731
    elif config == "traceloop":
        from traceloop.sdk import Traceloop
        from traceloop.sdk.decorators import task, tool, workflow

        exporter = CountingExporter()
        Traceloop.init(app_name="bench", exporter=exporter, disable_batch=False, telemetry_enabled=False,
                       should_enrich_metrics=False, block_instruments=set(), instruments=set())
        mapping = {"llm": task, "tool": tool, "agent": workflow}

        def decorate(kind: str, name: str) -> Callable[[Any], Any]:
            return mapping[kind](name=name)

        def teardown() -> None:
            from opentelemetry import trace

            trace.get_tracer_provider().shutdown()  # type: ignore[attr-defined]

        spans_exported = lambda: exporter.count  # noqa: E731
    elif config == "langfuse":
        from langfuse import Langfuse, observe

        exporter = CountingExporter()
        client = Langfuse(public_key="pk-lf-local", secret_key="sk-lf-local", host="http://127.0.0.1:9",
                          tracing_enabled=True, span_exporter=exporter)  # type: ignore[call-arg]
        os.environ["LANGFUSE_OBSERVE_DECORATOR_IO_CAPTURE_ENABLED"] = "false"

        as_type = {"llm": "generation", "tool": "tool", "agent": "agent"}

        def decorate(kind: str, name: str) -> Callable[[Any], Any]:
            return observe(name=name, as_type=as_type[kind], capture_input=False, capture_output=False)

        def teardown() -> None:
            client.shutdown()

        spans_exported = lambda: exporter.count  # noqa: E731
    else:
        raise SystemExit(f"unknown configuration {config}")

    step = build_workload(decorate, is_async)
    gc.collect()
    elapsed = time_steps(step, steps, is_async)
    teardown()
    warmup = min(steps, 500)
    return {"config": config, "seconds_per_step": elapsed / steps, "spans_exported": spans_exported(),
            "spans_expected": 3 * (steps + warmup) if config not in ("plain", "otel-noop", "ours-no-session") else None,
            "ratio_base": "otel-sdk-counting" if config in ("ours-counting", "openlit", "traceloop", "langfuse")
            else "otel-sdk"}


def _all_openlit_instrumentors() -> list[str]:
    try:
        from openlit.__helpers import MODULE_NAME_MAP  # type: ignore[import-not-found]

        return list(MODULE_NAME_MAP)
    except Exception:  # noqa: BLE001
        return []


def _empty_pricing(workdir: Path) -> str:
    path = workdir / "pricing.json"
    path.write_text("{}")
    return str(path)


# --- the driver ------------------------------------------------------------------------------------

def worker(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        try:
            result = run_config(args.worker, args.steps, args.mode == "async", Path(workdir))
        except ImportError as err:
            result = {"config": args.worker, "error": f"not installed ({err.name})"}
        except Exception as err:  # noqa: BLE001 - a peer that fails to start is reported, not fatal
            result = {"config": args.worker, "error": f"{type(err).__name__}: {err}"[:200]}
    if args.worker in PEER_PACKAGES:
        import importlib.metadata as md

        with contextlib.suppress(md.PackageNotFoundError):
            result["version"] = md.version(PEER_PACKAGES[args.worker])
    print("RESULT " + json.dumps(result), flush=True)


def peer_python(config: str, envs: Path | None) -> str:
    """The interpreter for a configuration: this one, or the peer's own environment under `envs`."""
    if config not in PEER_PACKAGES or envs is None:
        return sys.executable
    env_dir = envs / config
    python = env_dir / "bin" / "python"
    if not python.exists():
        print(f"creating {env_dir} for {PEER_PACKAGES[config]} ...", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
        root = Path(__file__).resolve().parents[1]
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(root), PEER_PACKAGES[config]],
                       check=False)
    return str(python)


def run_worker(config: str, steps: int, mode: str, python: str) -> dict[str, Any]:
    env = dict(os.environ, OTEL_SDK_DISABLED="false", TRACELOOP_TELEMETRY="false", OPENLIT_DISABLE_TELEMETRY="true")
    proc = subprocess.run([python, __file__, "--worker", config, "--steps", str(steps), "--mode", mode],
                          capture_output=True, text=True, env=env, timeout=600)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    return {"config": config, "error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="agent steps per round (3 decorated calls each)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--modes", default="sync,async")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--peer-envs", type=Path, help="folder of per-peer virtual environments (made if missing)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="sync", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return

    configs = args.configs.split(",")
    pythons = {config: peer_python(config, args.peer_envs) for config in configs}
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for round_index in range(args.rounds):
        for mode in args.modes.split(","):
            for config in configs:
                results.setdefault((config, mode), []).append(run_worker(config, args.steps, mode, pythons[config]))
        print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print_table(results, configs, args.modes.split(","), args)
    if args.json:
        args.json.write_text(json.dumps({f"{c}|{m}": r for (c, m), r in results.items()}, indent=1))


def _median_step_us(runs: list[dict[str, Any]]) -> float | None:
    values = [r["seconds_per_step"] * 1e6 for r in runs if "seconds_per_step" in r]
    return statistics.median(values) if values else None


def print_table(results: dict[tuple[str, str], list[dict[str, Any]]], configs: list[str], modes: list[str],
                args: argparse.Namespace) -> None:
    import importlib.metadata as md

    def version(name: str) -> str:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            return "-"

    peers = ", ".join(f"{config} {r.get('version', '-')}" for config in PEER_PACKAGES
                      for r in results.get((config, modes[0]), [])[:1])
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"opentelemetry-sdk {version('opentelemetry-sdk')}; {peers}; "
          f"{args.steps} steps x 3 calls, median of {args.rounds} rounds\n")
    header = ("| configuration | " + " | ".join(f"{m} us/call" for m in modes)
              + " | x raw OTel, same exporter (sync) | spans |")
    print(header)
    print("|---|" + "---:|" * len(modes) + "---:|---|")
    added: dict[tuple[str, str], float | None] = {}
    for mode in modes:
        base = _median_step_us(results.get(("plain", mode), []))
        for config in configs:
            step_us = _median_step_us(results.get((config, mode), []))
            added[(config, mode)] = None if step_us is None or base is None else (step_us - base) / 3
    for config in configs:
        runs = results.get((config, modes[0]), [])
        errors = sorted({r["error"] for mode in modes for r in results.get((config, mode), []) if "error" in r})
        cells = []
        for mode in modes:
            value = added.get((config, mode))
            cells.append("-" if value is None else f"{value:.2f}")
        ratio = added.get((config, "sync"))
        base_config = next((r.get("ratio_base") for r in runs if r.get("ratio_base")), None)
        raw = added.get((base_config, "sync")) if base_config else None
        ratio_cell = f"{ratio / raw:.2f}" if ratio is not None and raw and config != "plain" else "-"
        checks = [r for mode in modes for r in results.get((config, mode), []) if r.get("spans_expected")]
        spans = ("all exported" if checks and all(r["spans_exported"] == r["spans_expected"] for r in checks)
                 else "n/a" if not checks else "DROPPED " + ", ".join(
                     f"{r['spans_exported']}/{r['spans_expected']}" for r in checks
                     if r["spans_exported"] != r["spans_expected"])[:60])
        label = LABELS.get(config, config) + (f" ({'; '.join(errors)})" if errors else "")
        print(f"| {label} | " + " | ".join(cells) + f" | {ratio_cell} | {spans} |")


if __name__ == "__main__":
    main()
