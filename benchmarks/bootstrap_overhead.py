"""What `sessionprof run`'s bootstrap costs a Python child: the start of an interpreter, and each
decorated call, with the bootstrap and without it (the child's decorators then write the run
directory through the environment alone, as `sessionprof run` did before the bootstrap).

    python benchmarks/bootstrap_overhead.py [--steps 20000] [--rounds 5] [--starts 15]

The child sees exactly what `sessionprof run` hands it (`profiler.capture.runner.child_environment`);
"without" drops the bootstrap folder from its PYTHONPATH. Decorated calls: the workload of
`decorator_overhead.py` (an agent step with a model call and a tool call, three decorated calls a
step), each configuration in a fresh interpreter, rounds interleaved, median microseconds added per
call over plain functions; every span must reach spans.jsonl. Start-up: `python -c pass`, median of
alternating starts, beside one that imports the OpenTelemetry SDK. No instrumentor is installed
unless the environment has some (the table says how many); each adds its own import and patching.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from decorator_overhead import build_workload, time_steps  # noqa: E402

from instrumentation.bootstrap import DIRECTORY  # noqa: E402
from instrumentation.instrumentors import installed, parse_selection  # noqa: E402
from profiler.capture.runner import child_environment  # noqa: E402

CONFIGS = {"plain": "plain functions (baseline)", "without": "run directory from the environment, no bootstrap",
           "with": "with the bootstrap (global provider, instrumentors auto)"}


def environment(config: str, run_dir: Path) -> dict[str, str]:
    """The child's environment for a configuration."""
    env = child_environment(run_dir, os.urandom(16).hex(), parse_selection("auto"))
    if config != "with":
        env["PYTHONPATH"] = os.pathsep.join(p for p in env["PYTHONPATH"].split(os.pathsep) if p != str(DIRECTORY))
    if config == "plain":
        env.pop("SESSIONPROF_RUN_DIR")
    env["PYTHONPATH"] = os.pathsep.join([*env["PYTHONPATH"].split(os.pathsep), str(HERE.parent)]).strip(os.pathsep)
    return env


def worker(config: str, steps: int) -> None:
    """Time the workload in this interpreter (started with the configuration's environment)."""
    if config == "plain":
        def decorate(kind: str, name: str) -> Any:
            return lambda f: f
    else:
        import profiler

        kinds = {"llm": profiler.llm, "tool": profiler.tool, "agent": profiler.agent}

        def decorate(kind: str, name: str) -> Any:
            return kinds[kind](name=name) if kind != "llm" else kinds[kind](model="gpt-4o-mini", provider="openai")
    seconds = time_steps(build_workload(decorate, False), steps, False)
    bootstrapped = "instrumentation.capture" in sys.modules
    print("RESULT " + json.dumps({"seconds_per_step": seconds / steps, "bootstrapped": bootstrapped}), flush=True)


def run_worker(config: str, steps: int, workdir: Path) -> dict[str, Any]:
    run_dir = workdir / f"{config}-{time.perf_counter_ns()}"
    proc = subprocess.run([sys.executable, __file__, "--worker", config, "--steps", str(steps)], capture_output=True,
                          text=True, env=environment(config, run_dir), timeout=600)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{config} failed: {proc.stderr.strip()[-400:]}")
    result = json.loads(line[len("RESULT "):])
    spans = run_dir / "spans.jsonl"
    result["spans"] = spans.read_text().count('"spanId"') if spans.exists() else None
    result["expected"] = 3 * (steps + min(steps, 500)) if config != "plain" else None
    return result


STARTS = {"without": "pass", "with": "pass", "sdk": "import opentelemetry.sdk.trace"}
START_LABELS = {"without": "`python -c pass`, no bootstrap", "with": "`python -c pass`, with the bootstrap",
                "sdk": "`python -c 'import opentelemetry.sdk.trace'`, no bootstrap (for reference)"}


def start_ms(config: str, workdir: Path) -> float:
    env = environment("with" if config == "with" else "without", workdir / "starts")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", STARTS[config]], env=env, check=True)
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--starts", type=int, default=15)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.steps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        starts: dict[str, list[float]] = {config: [] for config in STARTS}
        for _ in range(args.starts):
            for config in starts:
                starts[config].append(start_ms(config, workdir))
        calls: dict[str, list[dict[str, Any]]] = {config: [] for config in CONFIGS}
        for round_index in range(args.rounds):
            for config in CONFIGS:
                calls[config].append(run_worker(config, args.steps, workdir))
            print(f"round {round_index + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    print_tables(starts, calls, args)


def print_tables(starts: dict[str, list[float]], calls: dict[str, list[dict[str, Any]]],
                 args: argparse.Namespace) -> None:
    import importlib.metadata as md

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"opentelemetry-sdk {md.version('opentelemetry-sdk')}; instrumentors installed: {len(installed())}\n")
    print(f"| interpreter start, median of {args.starts} | ms |\n|---|---:|")
    for config, values in starts.items():
        print(f"| {START_LABELS[config]} | {statistics.median(values):.1f} |")
    base = statistics.median(r["seconds_per_step"] for r in calls["plain"]) * 1e6
    print(f"\n| decorated call, {args.steps} steps x 3 calls, median of {args.rounds} | us/call added | spans |")
    print("|---|---:|---|")
    for config in ("without", "with"):
        runs = calls[config]
        added = (statistics.median(r["seconds_per_step"] for r in runs) * 1e6 - base) / 3
        complete = all(r["spans"] == r["expected"] for r in runs)
        bootstrapped = {r["bootstrapped"] for r in runs} == {config == "with"}
        spans = "all written" if complete else "MISSING " + ", ".join(f"{r['spans']}/{r['expected']}" for r in runs)
        print(f"| {CONFIGS[config]}{'' if bootstrapped else ' (BOOTSTRAP STATE WRONG)'} | {added:.2f} | {spans} |")


if __name__ == "__main__":
    main()
