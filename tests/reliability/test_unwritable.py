"""Nowhere to write, or the run directory deleted mid-run: the agent runs on and exits with its own
code; the loss is one warning, never an exception."""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

import profiler
from profiler.testing import FakeGpuBackend
from tests.cli.helpers import invoke
from tests.reliability.helpers import raw_spans, tmpfs


@profiler.tool
def work(i: int) -> int:
    return i + 1


def _sessionprof_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "sessionprof" in r.getMessage()]


def _read_only_below(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """`mkdir` under `root` fails as on a read-only file system (readOnlyRootFilesystem)."""
    real = os.mkdir

    def mkdir(path: str | os.PathLike[str], mode: int = 0o777, *, dir_fd: int | None = None) -> None:
        if os.path.abspath(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        real(path, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_read_only_working_directory_records_to_a_fallback_it_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    _read_only_below(monkeypatch, tmp_path)
    with profiler.session(gpu=FakeGpuBackend()) as session:  # before: OSError [Errno 30] into the agent
        assert work(1) == 2
    fallback = session.path
    try:
        assert not fallback.is_relative_to(tmp_path) and Path(tempfile.gettempdir()) in fallback.parents
        assert [m for m in _sessionprof_warnings(caplog) if "Read-only file system" in m and str(fallback) in m]
        assert len(_sessionprof_warnings(caplog)) == 1
        assert session.ledger.totals["tool_calls"] == 1
    finally:
        shutil.rmtree(fallback)


def test_nowhere_to_write_records_nothing_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    _read_only_below(monkeypatch, tmp_path)
    with profiler.session(gpu=FakeGpuBackend()) as session:
        assert work(1) == 2
    assert not session.recording and len(_sessionprof_warnings(caplog)) == 1
    assert "records nothing" in _sessionprof_warnings(caplog)[0]
    assert "nothing was recorded: cannot write" in session.report()
    assert not (tmp_path / ".sessionprof").exists()


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_a_really_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as read_only:
        monkeypatch.chdir(read_only)
        with profiler.session(gpu="none") as session:
            assert work(2) == 3
        monkeypatch.chdir(tmp_path)
    try:
        assert session.recording and session.ledger.totals["tool_calls"] == 1
    finally:
        shutil.rmtree(session.path)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_sessionprof_run_in_a_read_only_directory_is_a_one_line_error(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=64k") as read_only:
        monkeypatch.chdir(read_only)
        result = invoke("run", "--", sys.executable, "-c", "pass")
        monkeypatch.chdir(tmp_path)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1].startswith("sessionprof: error: cannot create the run directory ")
    assert result.stderr.splitlines()[-1].endswith(": Read-only file system (give --run-dir on a writable disk)")


def test_only_run_json_unwritable(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "run.json").mkdir()  # rename onto it fails, as on a file we may not replace
    (tmp_path / "samples.csv").mkdir()  # and the samples file cannot be opened
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend(), sample_interval_s=0.02):
        assert work(1) == 2
    assert [s["name"] for s in raw_spans(tmp_path)].count("execute_tool work") == 1
    messages = _sessionprof_warnings(caplog)
    assert len(messages) == 2
    assert "run.json (Is a directory); the run's metadata is missing" in messages[1]
    assert "could not write GPU samples" in messages[0]


def test_run_directory_deleted_inside_a_session(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    with profiler.session(run_dir=run_dir, gpu=FakeGpuBackend(), sample_interval_s=0.02) as session:
        work(1)
        session.recorder.flush()
        shutil.rmtree(run_dir)
        for i in range(5):
            work(i)
        session.recorder.flush()
    messages = _sessionprof_warnings(caplog)
    assert len(messages) == 1 and "was deleted" in messages[0], messages


DELETING_AGENT = textwrap.dedent("""
    import os, shutil, time
    import profiler

    @profiler.tool
    def step(i):
        return i

    for i in range(50):
        step(i)
    time.sleep(0.7)  # one flush: spans.jsonl exists
    shutil.rmtree(os.environ["SESSIONPROF_RUN_DIR"])
    for i in range(50):
        step(i)
""")


@pytest.mark.slow
def test_run_directory_deleted_under_sessionprof_run(tmp_path: Path) -> None:
    executable = shutil.which("sessionprof", path=str(Path(sys.executable).parent)) or "sessionprof"
    done = subprocess.run([executable, "run", "--run-dir", str(tmp_path / "run"), "--", sys.executable, "-c",
                           DELETING_AGENT], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr  # the command's code, not ours (before: 1)
    assert "Traceback" not in done.stderr and ".tmp" not in done.stderr
    lost = [line for line in done.stderr.splitlines() if "deleted while" in line]
    assert len(lost) == 1 and "records are lost" in lost[0], done.stderr


def test_a_session_in_a_run_of_its_own_counts_losses_in_run_json(tmp_path: Path) -> None:
    (tmp_path / "spans.jsonl").mkdir()  # every export fails
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()):
        work(1)
    meta = json.loads((tmp_path / "run.json").read_text())
    assert meta["dropped"]["spans_failed_export"] == 2  # the step and the session's own span
