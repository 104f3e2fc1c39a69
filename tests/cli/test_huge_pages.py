"""numpy's huge-page advice: off in the `sessionprof` process, left alone for library callers and
for a user who chose with NUMPY_MADVISE_HUGEPAGE."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from numpy._core import multiarray

from profiler.cli import huge_pages
from profiler.cli.huge_pages import skip_numpy_huge_page_advice
from tests.cli.helpers import agent_session, write_trace
from tests.paths import REPO


@pytest.fixture
def advice_on() -> Iterator[None]:
    """numpy's advice on for the test, and this process's own setting restored after it."""
    before = multiarray._set_madvise_hugepage(True)
    yield
    multiarray._set_madvise_hugepage(before)


def test_the_advice_is_turned_off(advice_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    assert skip_numpy_huge_page_advice() is True
    assert multiarray._get_madvise_hugepage() is False


def test_a_users_own_choice_is_kept(advice_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    assert skip_numpy_huge_page_advice() is False
    assert multiarray._get_madvise_hugepage() is True


def test_a_numpy_without_the_switch_is_left_alone(advice_on: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    monkeypatch.setattr(huge_pages, "_setter", lambda: None)
    assert skip_numpy_huge_page_advice() is False
    assert multiarray._get_madvise_hugepage() is True


_PROBE = """
import sys
from numpy._core import multiarray
from tests.paths import REPO
multiarray._set_madvise_hugepage(True)
if sys.argv[1] == "command":
    from typer.testing import CliRunner
    from profiler.cli.app import app
    result = CliRunner().invoke(app, ["report", sys.argv[2], "--format", "json"])
    assert result.exit_code == 0, result.output
else:
    import profiler
    profiler.attribute(profiler.load(sys.argv[2]))
print(multiarray._get_madvise_hugepage())
"""


@pytest.mark.parametrize(("way", "advice_after"), [("command", "False"), ("library", "True")])
def test_only_the_command_changes_its_process(tmp_path: Path, way: str, advice_after: str) -> None:
    trace = write_trace(tmp_path / "trace.jsonl", agent_session())
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    done = subprocess.run([sys.executable, "-c", _PROBE, way, str(trace)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == advice_after
