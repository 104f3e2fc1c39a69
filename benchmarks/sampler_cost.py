"""What the GPU sampler costs the host: the real sampler thread reading through the real `pynvml`
bindings at 10 Hz, against the simulated NVML library (tests/nvml_sim) with 1, 2 and 4 GPUs.

    python benchmarks/sampler_cost.py [--seconds 10] [--gpus 1 2 4]

For each GPU count: the sampler's own CPU time (`time.thread_time()` inside its thread, as
`SamplerStats.thread_cpu_s` records it) as a share of one core, in all and per GPU, and the effect on
a busy agent: a CPU-bound Python loop timed with and without the sampler running, in alternating
rounds of the same run (so drift hits both alike). The target is <= 1% of one core per GPU at 10 Hz
(docs/gpus.md#what-it-costs).

The simulated library answers in microseconds; a real driver's calls take longer (tens to hundreds
of microseconds, up to 50-100 ms for process lists), so on real GPUs the NVML share is larger and
the Python share the same. The slow fields (utilization, process list, clocks, temperature) are
read every 10th tick.

A second table prices the energy counter's startup check (`profiler.gpu.counter_probe`: reads every
10 ms for its first 1.1 s): `start()`'s wall time, the sampler thread's CPU time over its first
1.4 s with the check and without it (alternating, median of the pairs' difference) and the check's
own CPU time as it records it, and a busy loop timed over the check's window.
Needs a C compiler (cc, gcc or clang) to build the simulated library.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from profiler.gpu.counter_probe import PROBE_S  # noqa: E402
from profiler.gpu.nvml import NvmlBackend  # noqa: E402
from profiler.gpu.sampler import GpuSampler  # noqa: E402
from profiler.gpu.samples_file import SAMPLES_FILE, read_samples  # noqa: E402

INTERVAL_S = 0.1


def _build_helper() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nvml_sim_build", ROOT / "tests" / "nvml_sim" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scenario(gpus: int) -> str:
    """`gpus` H100-like devices drawing a square wave, each holding this process's memory."""
    lines = ["update_period_ms 100"]
    for i in range(gpus):
        lines += [f'device uuid=GPU-bench{i:04d}-0000-4000-8000-000000000000 name="Sim H100" arch=hopper',
                  "power idle_w=80 busy_w=450 period_ms=1730 duty=0.4",
                  "memory total=80GiB used=20GiB reserved=512MiB", "util gpu=60 memory=30",
                  f"process pid={os.getpid()} mem=18GiB", "process pid=1 mem=1GiB"]
    return "\n".join(lines) + "\n"


def busy_loop(seconds: float) -> tuple[float, int]:
    """An agent's CPU-bound Python work: as many fixed chunks as fit in `seconds`; (wall, chunks)."""
    chunks = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        total = 0
        for i in range(20_000):
            total += i * i % 7
        chunks += 1
    return time.perf_counter() - start, chunks


def measure(build: ModuleType, lib: Path, gpus: int, seconds: float, rounds: int) -> dict[str, float]:
    """Alternate rounds without and with the sampler; return the figures for one GPU count.

    Each round times the busy loop without the sampler, then with it (started before, stopped
    after), and the slowdown is the median over rounds of the pairs' ratio, with the spread of that
    ratio (half the interquartile range) as the noise on a shared host.
    """
    folder = Path(tempfile.mkdtemp(prefix="sampler-cost-"))
    path = folder / "scenario.txt"
    path.write_text(scenario(gpus))
    ratios, off_rates, on_rates = [], [], []
    cpu_s = wall_s = read_s = 0.0
    ticks = reads = 0
    slow_max = 0.0
    per_round = seconds / rounds
    with build.attach(lib, path) as nvml:
        for r in range(rounds):
            wall, chunks = busy_loop(per_round / 2)
            off = chunks / wall
            # Without the counter's startup check, priced on its own below (it would fill each round).
            sampler = GpuSampler(NvmlBackend(nvml, visible_devices=None), folder / f"{r}-{SAMPLES_FILE}",
                                 interval_s=INTERVAL_S, counter_probe_s=0.0)
            assert len(sampler.start()) == gpus
            wall, chunks = busy_loop(per_round)
            on = chunks / wall
            stats = sampler.stop()
            off_rates.append(off)
            on_rates.append(on)
            ratios.append(off / on - 1.0)
            cpu_s += stats.thread_cpu_s
            wall_s += stats.wall_s
            ticks += stats.ticks - 2  # less the first (in start) and last (in stop) readings
            frame = read_samples(folder / f"{r}-{SAMPLES_FILE}", [])
            stamps = frame.loc[frame["gpu"] == frame["gpu"].iloc[0], "t_ns"]
            read_s += (stamps.max() - stamps.min()) / 1e9
            reads += len(stamps) - 1
            slow_max = max(slow_max, stats.slow_tick_max_s)
    share = cpu_s / wall_s
    q1, _, q3 = statistics.quantiles(ratios, n=4)
    return {"gpus": gpus, "wall_s": wall_s, "ticks_per_s": reads / read_s, "cpu_pct": 100 * share,
            "cpu_pct_per_gpu": 100 * share / gpus, "us_per_tick": 1e6 * cpu_s / max(ticks, 1),
            "slow_tick_max_ms": 1e3 * slow_max,
            "loop_off": statistics.median(off_rates), "loop_on": statistics.median(on_rates),
            "slowdown_pct": 100 * statistics.median(ratios), "noise_pct": 100 * (q3 - q1) / 2}


def probe_cost(build: ModuleType, lib: Path, gpus: int, rounds: int) -> dict[str, float]:
    """What the counter check adds for one GPU count, in alternating rounds with and without it."""
    folder = Path(tempfile.mkdtemp(prefix="probe-cost-"))
    path = folder / "scenario.txt"
    path.write_text(scenario(gpus))
    cpu: dict[bool, list[float]] = {True: [], False: []}
    start_ms: dict[bool, list[float]] = {True: [], False: []}
    loop: dict[bool, list[float]] = {True: [], False: []}
    own: list[float] = []
    with build.attach(lib, path) as nvml:
        for _ in range(rounds):
            for on in (True, False):
                sampler = GpuSampler(NvmlBackend(nvml, visible_devices=None), None, interval_s=INTERVAL_S,
                                     counter_probe_s=None if on else 0.0)
                started = time.perf_counter()
                sampler.start()
                start_ms[on].append(1e3 * (time.perf_counter() - started))
                wall, chunks = busy_loop(PROBE_S)
                loop[on].append(chunks / wall)
                time.sleep(0.3)
                cpu[on].append(sampler.stop().thread_cpu_s)
                if on:
                    own.append(sampler.describe()["sampler"]["counter_probe_cpu_s"])
    extra = [a - b for a, b in zip(cpu[True], cpu[False], strict=True)]
    slowdown = [off / on - 1.0 for on, off in zip(loop[True], loop[False], strict=True)]
    q1, _, q3 = statistics.quantiles(slowdown, n=4)
    return {"gpus": gpus, "own_ms": 1e3 * statistics.median(own), "extra_ms": 1e3 * statistics.median(extra),
            "share_pct": 100 * statistics.median(own) / PROBE_S,
            "start_on_ms": statistics.median(start_ms[True]),
            "start_off_ms": statistics.median(start_ms[False]),
            "slowdown_pct": 100 * statistics.median(slowdown), "noise_pct": 100 * (q3 - q1) / 2}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="sampling time per GPU count (default 10)")
    parser.add_argument("--rounds", type=int, default=10, help="off/on rounds per GPU count (default 10)")
    parser.add_argument("--gpus", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--probe-rounds", type=int, default=10,
                        help="rounds with and without the counter check per GPU count (default 10; 0 skips)")
    args = parser.parse_args(argv)
    build = _build_helper()
    try:
        lib = build.build_nvml_sim()
    except build.CompilerNotFoundError as err:
        print(f"skipped: {err}", file=sys.stderr)
        return 2
    print(f"# sampler cost at {1 / INTERVAL_S:g} Hz through pynvml and the simulated NVML library")
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.machine()}, "
          f"{os.cpu_count()} CPUs; {args.seconds:g} s sampled per row, {args.rounds} rounds\n")
    header = ("GPUs", "reads/s per GPU", "sampler CPU % of 1 core", "per GPU %", "CPU us/tick",
              "slowest slow tick ms",
              "busy loop chunks/s off", "on", "slowdown % (median of pairs)", "+- noise %")
    rows = [measure(build, lib, n, args.seconds, args.rounds) for n in args.gpus]
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" for _ in header) + "|")
    for r in rows:
        print(f"| {r['gpus']} | {r['ticks_per_s']:.2f} | {r['cpu_pct']:.3f} | {r['cpu_pct_per_gpu']:.3f} | "
              f"{r['us_per_tick']:.0f} | {r['slow_tick_max_ms']:.2f} | {r['loop_off']:.1f} | "
              f"{r['loop_on']:.1f} | "
              f"{r['slowdown_pct']:+.2f} | {r['noise_pct']:.2f} |")
    worst = max(r["cpu_pct_per_gpu"] for r in rows)
    print(f"\ntarget <= 1% of one core per GPU at 10 Hz: {'met' if worst <= 1.0 else 'MISSED'} "
          f"(worst {worst:.3f}% per GPU)")
    if args.probe_rounds > 0:
        print(f"\n# the energy counter's startup check ({PROBE_S:g} s of reads every 10 ms), "
              f"{args.probe_rounds} rounds with and without it\n")
        header = ("GPUs", "check's own CPU ms", "extra sampler CPU ms", "% of one core over the check",
                  "start() ms with", "without", "busy loop slowdown % during the check", "+- noise %")
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join("---:" for _ in header) + "|")
        for n in args.gpus:
            r = probe_cost(build, lib, n, args.probe_rounds)
            print(f"| {r['gpus']} | {r['own_ms']:.1f} | {r['extra_ms']:.1f} | {r['share_pct']:.2f} | "
                  f"{r['start_on_ms']:.2f} | {r['start_off_ms']:.2f} | {r['slowdown_pct']:+.1f} | "
                  f"{r['noise_pct']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
