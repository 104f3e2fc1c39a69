"""Run an agent script inside `profiler.session()` in this process, as a user who adds two lines would.

Usage: python in_process.py AGENT.py RUN_DIR REPORT.json
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import profiler

if __name__ == "__main__":
    agent, run_dir, report = sys.argv[1:4]
    profiler.instrument()
    with profiler.session("integration", run_dir=run_dir, gpu="none") as run:
        runpy.run_path(agent, run_name="__main__")
    Path(report).write_text(run.report("json"), encoding="utf-8")
