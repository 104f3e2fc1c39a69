"""What importing the profiler costs an agent that only decorates, beside OpenTelemetry's own SDK.

    python benchmarks/import_time.py [--rounds 15]

Each round starts two fresh interpreters with `-X importtime`, alternating: one imports
`opentelemetry.sdk.trace` (the baseline: any instrumented agent loads it), the other runs
`import profiler; profiler.tool` (the decorators, which load the SDK too). The table gives the
median cumulative import time of each and their ratio (target: at most 1.2x), and says whether
pandas or numpy were loaded (they must not be). Byte-code caches are written first, as in any
installed environment.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASELINE = "import opentelemetry.sdk.trace"
OURS = "import profiler; profiler.tool"
PROBE = OURS + "; import sys; print(sorted({'pandas', 'numpy'} & set(sys.modules)))"


def _cumulative_us(statement: str, top_module: str, env: dict[str, str]) -> int:
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True,
                          cwd=ROOT, env=env, check=True)
    for line in done.stderr.splitlines():
        fields = [field.strip() for field in line.split("|")]
        if len(fields) == 3 and fields[2] == top_module:
            return int(fields[1])
    raise RuntimeError(f"{top_module} not in the import-time report of {statement!r}")


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    heavy = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT, env=env,
                           check=True).stdout.strip()  # also writes the byte-code caches
    baseline, ours = [], []
    for _ in range(args.rounds):
        baseline.append(_cumulative_us(BASELINE, "opentelemetry.sdk.trace", env))
        ours.append(_cumulative_us(OURS, "profiler", env))
    base_ms, ours_ms = statistics.median(baseline) / 1e3, statistics.median(ours) / 1e3
    print(f"{platform.machine()}, {os.cpu_count()} cores, CPython {platform.python_version()}; "
          f"median of {args.rounds} alternating rounds\n")
    print("| import | ms (median) | x baseline |")
    print("|---|---:|---:|")
    print(f"| `{BASELINE}` (baseline) | {base_ms:.1f} | 1.00 |")
    print(f"| `{OURS}` | {ours_ms:.1f} | {ours_ms / base_ms:.2f} |")
    print(f"\npandas/numpy loaded by `{OURS}`: {heavy}")


if __name__ == "__main__":
    main()
