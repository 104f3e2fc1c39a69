"""The installed `sessionprof` command, end to end, in subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import REPO as ROOT

QUICKSTART = ROOT / "examples" / "quickstart.py"
REQUIRED_STEP_FIELDS = {
    "span_id", "parent_span_id", "session_id", "name", "kind", "status", "start_ns", "end_ns", "wall_s",
    "self_wall_s", "energy_j", "self_energy_j", "gpu_mem_gib_s", "self_gpu_mem_gib_s", "idle_hold_gib_s",
    "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "api_cost_usd",
    "gpu_cost_usd", "energy_cost_usd", "co2_g", "total_cost_usd", "api_cost_source", "energy_source",
}


def sessionprof(*args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONPROF_", "OPENAI_", "ANTHROPIC_"))}
    return subprocess.run([executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def quickstart_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    cwd = tmp_path_factory.mktemp("quickstart")
    result = sessionprof("run", "--", sys.executable, str(QUICKSTART), cwd=cwd)
    return result, cwd


def test_run_prints_the_step_tree_and_the_run_directory(quickstart_run) -> None:
    result, cwd = quickstart_run
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "stand-in model" in out
    for step in ("session quickstart", "invoke_agent research-assistant", "chat gpt-4o-mini",
                 "execute_tool web_search", "execute_tool read_page", "execute_tool calculator", "Total (measured)"):
        assert step in out, step
    assert "$" in out
    run_dirs = list((cwd / ".sessionprof" / "runs").iterdir())
    assert len(run_dirs) == 1
    assert f"run directory: {Path('.sessionprof/runs') / run_dirs[0].name}" in result.stderr
    meta = json.loads((run_dirs[0] / "run.json").read_text())
    assert meta["status"] == "complete" and meta["exit_code"] == 0


def test_report_json_schema(quickstart_run) -> None:
    _, cwd = quickstart_run
    run_dir = next((cwd / ".sessionprof" / "runs").iterdir())
    result = sessionprof("report", str(run_dir), "--format", "json", cwd=cwd)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"run", "totals", "steps", "checks"}
    for step in document["steps"]:
        assert set(step) >= REQUIRED_STEP_FIELDS, REQUIRED_STEP_FIELDS - set(step)
    kinds = {s["kind"] for s in document["steps"]}
    assert {"session", "invoke_agent", "chat", "execute_tool"} <= kinds
    chats = [s for s in document["steps"] if s["kind"] == "chat"]
    assert len(chats) == 4 and all(s["api_cost_usd"] > 0 for s in chats)
    agent = next(s for s in document["steps"] if s["kind"] == "invoke_agent")
    assert agent["input_tokens"] == sum(s["input_tokens"] for s in chats)  # inclusive, counted once
    assert document["totals"]["energy_j"] is None  # no GPU here: not measured, not zero


@pytest.mark.parametrize("fmt", ["markdown", "csv"])
def test_report_other_formats_and_groupings(quickstart_run, fmt: str) -> None:
    _, cwd = quickstart_run
    run_dir = next((cwd / ".sessionprof" / "runs").iterdir())
    result = sessionprof("report", str(run_dir), "--format", fmt, "--by", "tool", cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert "web_search" in result.stdout and "calculator" in result.stdout


def test_run_exits_with_the_childs_code(tmp_path: Path) -> None:
    result = sessionprof("run", "--no-report", "--", sys.executable, "-c", "import sys; sys.exit(3)", cwd=tmp_path)
    assert result.returncode == 3


def test_user_mistakes_are_one_line_errors(tmp_path: Path) -> None:
    cases = [
        ("report", str(tmp_path / "missing.jsonl")),
        ("report", str(tmp_path), "--pue", "0.5"),
        ("run", "--", "no-such-program-xyz"),
    ]
    (tmp_path / "spans.jsonl").write_text("")
    for args in cases:
        result = sessionprof(*args, cwd=tmp_path)
        assert result.returncode == 1, (args, result.stderr)
        errors = [line for line in result.stderr.splitlines() if line.startswith("sessionprof: error:")]
        assert len(errors) == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_gpus_without_a_driver_says_so(tmp_path: Path) -> None:
    result = sessionprof("gpus", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith(("no GPU", "GPU "))


def test_run_without_a_command_is_a_usage_error(tmp_path: Path) -> None:
    result = sessionprof("run", cwd=tmp_path)
    assert result.returncode == 2 and "give the command" in result.stderr


def test_run_with_an_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = sessionprof("run", "--no-such-option", "--", sys.executable, "-c", "pass", cwd=tmp_path)
    assert result.returncode == 2 and "No such option: --no-such-option" in result.stderr
    assert "Usage: sessionprof run [OPTIONS] [--] CMD [ARGS]..." in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / ".sessionprof").exists()


def test_the_simulated_gpu_example_measures_every_gpu_figure(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONPROF_", "OPENAI_", "ANTHROPIC_"))}
    example = ROOT / "examples" / "simulated_gpu_agent.py"
    result = subprocess.run([sys.executable, str(example)], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "conservation check: held" in result.stdout and "Peak GiB" in result.stdout
    (run_dir,) = (tmp_path / ".sessionprof" / "runs").iterdir()
    report = sessionprof("report", str(run_dir), "--format", "json", cwd=tmp_path)
    rows = json.loads(report.stdout)["steps"]
    steps = {s["name"]: s for s in rows}
    load, agent = steps["load model weights"], steps["invoke_agent coding-agent"]
    # The weights arrive while the load step runs, and the KV cache grows on top of them afterwards.
    assert 0 < load["gpu_mem_peak_gib"] <= 16.0 < agent["gpu_mem_peak_gib"] < 17.0
    assert load["energy_j"] > 0 and load["gpu_mem_gib_s"] > 0
    tools = [s for s in rows if s["kind"] == "execute_tool"]
    assert len(tools) == 4 and all(s["idle_hold_gib_s"] > 0 for s in tools)  # the cache waits on the tools
