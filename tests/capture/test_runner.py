"""`sessionprof run`: where the run directory goes, and what the child is handed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from instrumentation.bootstrap import DIRECTORY
from instrumentation.instrumentors import parse_selection
from profiler.capture.runner import child_environment
from tests.cli.helpers import invoke

#: One step, so that the run is not empty (an empty run exits 3).
ONE_STEP = "import profiler\nwith profiler.step('work'):\n    pass"


def test_run_puts_its_directory_under_sessionprof_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSIONPROF_HOME", str(tmp_path / "home"))
    result = invoke("run", "--no-report", "--gpu", "none", "--", sys.executable, "-c", ONE_STEP)
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "home").iterdir()
    assert json.loads((run_dir / "run.json").read_text())["status"] == "complete"
    assert not (tmp_path / ".sessionprof").exists()


def test_run_does_not_write_into_an_outer_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSIONPROF_RUN_DIR", str(tmp_path / "outer"))
    result = invoke("run", "--no-report", "--gpu", "none", "--", sys.executable, "-c", ONE_STEP)
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "outer").exists()
    assert len(list((tmp_path / ".sessionprof" / "runs").iterdir())) == 1


def test_the_child_gets_the_bootstrap_first_on_its_path_and_no_outer_parent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", f"/user/lib:{DIRECTORY}")
    monkeypatch.setenv("SESSIONPROF_TRACEPARENT", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    monkeypatch.setenv("SESSIONPROF_PARENT_PID", "1")
    env = child_environment(tmp_path, "abc", parse_selection("openai,anthropic"))
    assert env["PYTHONPATH"] == f"{DIRECTORY}:/user/lib"  # once, and first
    assert env["SESSIONPROF_SESSION_ID"] == "abc" and env["SESSIONPROF_INSTRUMENT"] == "openai,anthropic"
    assert env["SESSIONPROF_RUN_DIR"] == str(tmp_path.resolve())
    assert "SESSIONPROF_TRACEPARENT" not in env and "SESSIONPROF_PARENT_PID" not in env
