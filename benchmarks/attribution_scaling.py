"""Attribution throughput and memory: how `profiler.attribute` grows with spans and samples.

    python benchmarks/attribution_scaling.py                 # 10k/100k/1M spans with 100k/1M/10M samples
    python benchmarks/attribution_scaling.py --max-spans 100000

Each size runs in a fresh process so its peak memory (ru_maxrss) is its own. The baseline, timed in
the same process on the same data, is the cheapest thing that gives every span an energy figure:
two `np.interp` calls on the energy counter at each span's ends (what a window-based tool does, with
its double counting of nested and concurrent spans). The table shows both, their ratio, and the time
per span, which should stay flat if attribution is near-linear.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pandas as pd

SIZES = ((10_000, 100_000), (100_000, 1_000_000), (1_000_000, 10_000_000))
MODELS = ("gpt-4o-mini", "claude-sonnet-4-5", "llama-3.1-8b-instruct")


def synthetic_run(n_spans: int, n_samples: int, seed: int = 1) -> Any:
    """Sessions of agent turns (a chat call and two concurrent tool calls per turn) and one GPU."""
    from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run

    rng = np.random.default_rng(seed)
    turns_per_session = 50
    spans_per_turn = 3
    n_turns = max(1, (n_spans - 1) // spans_per_turn)
    n_sessions = max(1, n_turns // turns_per_session)
    duration_ns = n_samples * 100_000_000  # one sample every 100 ms
    turn_ns = duration_ns // (n_turns + 1)

    turn = np.arange(n_turns)
    session = np.minimum(turn // turns_per_session, n_sessions - 1)
    turn_start = (turn + 1) * turn_ns
    chat_start, chat_end = turn_start, turn_start + turn_ns // 2
    tool_start, tool_end = chat_end, chat_end + (turn_ns * 2) // 5
    agent_ids = np.array([f"{s:016x}" for s in range(n_sessions)], dtype=object)

    def ids(offset: int, count: int) -> np.ndarray:
        return np.array([f"{offset + i:016x}" for i in range(count)], dtype=object)

    chats, tools_a, tools_b = ids(10**9, n_turns), ids(2 * 10**9, n_turns), ids(3 * 10**9, n_turns)
    parents = agent_ids[session]
    first_turn = np.searchsorted(session, np.arange(n_sessions))
    last_turn = np.append(first_turn[1:], n_turns) - 1
    frames = {
        "trace_id": np.concatenate([np.array([f"{s:032x}" for s in range(n_sessions)], dtype=object),
                                    *[np.array([f"{s:032x}" for s in session], dtype=object)] * 3]),
        "span_id": np.concatenate([agent_ids, chats, tools_a, tools_b]),
        "parent_span_id": np.concatenate([np.full(n_sessions, None, dtype=object), parents, parents, parents]),
        "session_id": np.concatenate([agent_ids, *[agent_ids[session]] * 3]),
        "name": np.concatenate([np.full(n_sessions, "invoke_agent coder", dtype=object),
                                np.full(n_turns, "chat gpt-4o-mini", dtype=object),
                                np.full(2 * n_turns, "execute_tool search", dtype=object)]),
        "kind": np.concatenate([np.full(n_sessions, "invoke_agent", dtype=object),
                                np.full(n_turns, "chat", dtype=object),
                                np.full(2 * n_turns, "execute_tool", dtype=object)]),
        "status": np.full(n_sessions + 3 * n_turns, "ok", dtype=object),
        "start_ns": np.concatenate([turn_start[first_turn], chat_start, tool_start, tool_start]),
        "end_ns": np.concatenate([tool_end[last_turn] + 1, chat_end, tool_end, tool_end - turn_ns // 10]),
    }
    spans = pd.DataFrame(frames)
    n = len(spans)
    is_chat = spans["kind"].to_numpy() == "chat"
    spans["model"] = np.where(is_chat, np.array(MODELS, dtype=object)[rng.integers(0, 3, n)], None)
    spans["provider"] = np.where(is_chat, np.where(spans["model"] == "llama-3.1-8b-instruct", "vllm", None), None)
    for column, high in (("input_tokens", 20_000), ("output_tokens", 800), ("cache_read_tokens", 10_000)):
        spans[column] = np.where(is_chat, rng.integers(10, high, n).astype(float), np.nan)
    spans["cache_write_tokens"] = np.nan
    spans["reasoning_tokens"] = np.nan
    spans["bills_usage"] = is_chat
    spans["reported_cost_usd"] = np.nan
    spans["remote"] = is_chat & (spans["provider"].to_numpy() != "vllm")
    spans["session_root"] = False
    spans["pid"] = np.nan
    spans["attributes"] = [{}] * n
    spans = spans[list(SPAN_COLUMNS)]

    t = np.arange(n_samples, dtype=np.int64) * 100_000_000
    power = 80 + 400 * (rng.random(n_samples) > 0.5)
    samples = pd.DataFrame({
        "t_ns": t, "gpu": "GPU-bench-0",
        "energy_j": np.concatenate([[0.0], np.cumsum(power[:-1] * 0.1)]),
        "power_w": power.astype(float), "mem_used_bytes": np.full(n_samples, 40 * 1024**3, dtype=float),
        "proc_mem_bytes": np.nan, "util_pct": np.where(power > 100, 95.0, 0.0),
    }).reindex(columns=list(SAMPLE_COLUMNS))
    return Run(spans=spans, samples=samples, meta={"gpus": [{"uuid": "GPU-bench-0", "name": "NVIDIA H100"}]})


def measure(n_spans: int, n_samples: int) -> dict[str, Any]:
    """Build one size, time the baseline and attribution, report peak memory."""
    import profiler

    started = time.perf_counter()
    run = synthetic_run(n_spans, n_samples)
    build_s = time.perf_counter() - started

    started = time.perf_counter()
    t = run.samples["t_ns"].to_numpy(dtype=float)
    e = run.samples["energy_j"].to_numpy()
    naive_j = np.interp(run.spans["end_ns"].to_numpy(dtype=float), t, e) - np.interp(
        run.spans["start_ns"].to_numpy(dtype=float), t, e)
    baseline_s = time.perf_counter() - started

    started = time.perf_counter()
    ledger = profiler.attribute(run)
    attribute_s = time.perf_counter() - started
    assert ledger.checks["conservation_held"], ledger.checks["conservation"]
    return {"spans": len(run.spans), "samples": len(run.samples), "build_s": build_s, "baseline_s": baseline_s,
            "attribute_s": attribute_s, "naive_sum_over_measured": float(naive_j.sum() / ledger.totals["energy_j"]),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-spans", type=int, default=1_000_000)
    parser.add_argument("--worker", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print("RESULT " + json.dumps(measure(*args.worker)), flush=True)
        return
    rows = []
    for n_spans, n_samples in SIZES:
        if n_spans > args.max_spans:
            continue
        proc = subprocess.run([sys.executable, __file__, "--worker", str(n_spans), str(n_samples)],
                              capture_output=True, text=True, timeout=3_600)
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
        if line is None:
            print(f"{n_spans} spans failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            continue
        rows.append(json.loads(line[7:]))
        print(f"done: {n_spans} spans", file=sys.stderr, flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"pandas {pd.__version__}, numpy {np.__version__}\n")
    print("| spans | samples | naive interp (s) | attribute (s) | ratio | us/span | peak RSS (MiB) "
          "| naive J / measured J |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['spans']:,} | {r['samples']:,} | {r['baseline_s']:.3f} | {r['attribute_s']:.2f} | "
              f"{r['attribute_s'] / r['baseline_s']:.0f}x | {r['attribute_s'] / r['spans'] * 1e6:.1f} | "
              f"{r['peak_rss_mib']:,.0f} | {r['naive_sum_over_measured']:.2f} |")


if __name__ == "__main__":
    main()
