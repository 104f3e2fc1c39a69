"""No write goes through a link planted where a run's file belongs, no run directory that is a link,
another user's, or a folder of other files is used, and what we write is readable by its owner only."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

import profiler
from instrumentation.run_dir import RUN_FILES, UnsafeRunDirError, create_run_dir
from profiler.testing import FakeGpuBackend
from tests.cli.helpers import agent_session, invoke, write_trace

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX links and modes")
BASHRC = "# the user's shell setup\nexport PATH=$HOME/bin:$PATH\n"
#: One step, so that the run is not empty (an empty run exits 3 and writes no report).
ONE_STEP = "import profiler\nwith profiler.step('work'):\n    pass"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file of the user's that an attacker points a link at."""
    path = tmp_path / "home" / ".bashrc"
    path.parent.mkdir()
    path.write_text(BASHRC)
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.parametrize("planted", ["spans.jsonl", "samples.csv", "run.json", ".run.json.{pid}.tmp",
                                     ".run.json.lock"])
def test_a_link_planted_in_the_run_directory_is_not_followed(tmp_path: Path, victim: Path, planted: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / planted.format(pid=os.getpid())).symlink_to(victim)
    if planted not in RUN_FILES:
        (run_dir / "spans.jsonl").touch()  # a run's directory, so it is used
    with profiler.session(run_dir=run_dir, gpu=FakeGpuBackend(), sample_interval_s=0.02), profiler.step("s"):
        pass
    assert victim.read_text() == BASHRC  # before: spans appended to it, or run.json written over it
    assert _mode(victim) == 0o644


def test_a_refused_spans_file_is_counted(tmp_path: Path, victim: Path) -> None:
    (tmp_path / "spans.jsonl").symlink_to(victim)
    with profiler.session(run_dir=tmp_path, gpu=FakeGpuBackend()), profiler.step("s"):
        pass
    assert json.loads((tmp_path / "run.json").read_text())["dropped"]["spans_failed_export"] == 2


def test_a_run_directory_that_is_a_link_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "someone-elses"
    target.mkdir(mode=0o755)
    os.chmod(target, 0o755)
    link = tmp_path / "run"
    link.symlink_to(target)
    with pytest.raises(UnsafeRunDirError, match="symbolic link"):
        create_run_dir(link)
    result = invoke("run", "--run-dir", str(link), "--", sys.executable, "-c", "pass")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"sessionprof: error: refusing run directory {link}: it is a "
                                                   "symbolic link"]
    assert _mode(target) == 0o755 and list(target.iterdir()) == []  # before: chmod-ed to 700 through the link


def test_a_session_given_a_refused_run_directory_records_elsewhere_and_says_so(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "target"
    target.mkdir(mode=0o755)
    (tmp_path / "run").symlink_to(target)
    with profiler.session(run_dir=tmp_path / "run", gpu="none") as session, profiler.step("s"):
        pass
    try:
        assert list(target.iterdir()) == [] and session.path != tmp_path / "run"
        assert any("symbolic link" in r.getMessage() and str(session.path) in r.getMessage() for r in caplog.records)
    finally:
        import shutil

        shutil.rmtree(session.path)


def test_a_directory_of_other_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(UnsafeRunDirError, match="holds other files and no run"):
        create_run_dir(tmp_path)
    create_run_dir(tmp_path / "empty")  # new: fine
    create_run_dir(tmp_path / "empty")  # ours and empty: fine
    (tmp_path / "empty" / "run.json").write_text("{}")
    create_run_dir(tmp_path / "empty")  # ours and a run: fine


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="giving a folder away needs root")
def test_another_users_directory_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, 12345, 12345)
    with pytest.raises(UnsafeRunDirError, match="belongs to another user"):
        create_run_dir(theirs)


def _trace(tmp_path: Path) -> Path:
    return write_trace(tmp_path / "trace.jsonl", agent_session())


def test_report_output_through_a_link_is_refused(tmp_path: Path, victim: Path) -> None:
    output = tmp_path / "report.html"
    output.symlink_to(victim)
    result = invoke("report", str(_trace(tmp_path)), "-f", "html", "-o", str(output))
    assert result.exit_code == 1 and "symbolic link" in result.stderr and "Traceback" not in result.stderr
    assert victim.read_text() == BASHRC  # before: overwritten with HTML


def test_report_output_is_private_and_replaces_a_file(tmp_path: Path) -> None:
    output = tmp_path / "out.md"
    output.write_text("old")
    os.chmod(output, 0o644)
    assert invoke("report", str(_trace(tmp_path)), "-f", "markdown", "-o", str(output)).exit_code == 0
    assert _mode(output) == 0o600 and "old" not in output.read_text()  # before: 0644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_report_output_to_a_device_is_written_directly(tmp_path: Path) -> None:
    assert invoke("report", str(_trace(tmp_path)), "-f", "json", "-o", os.devnull).exit_code == 0
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device, not replaced by a file


def test_the_run_html_report_is_private(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    result = invoke("run", "--run-dir", str(run_dir), "--gpu", "none", "--", sys.executable, "-c", ONE_STEP)
    assert result.exit_code == 0, result.stderr
    assert _mode(run_dir / "report.html") == 0o600  # before: 0644


def test_the_run_html_report_is_never_written_through_a_link(tmp_path: Path, victim: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "run.json").write_text("{}")
    (run_dir / "report.html").symlink_to(victim)
    result = invoke("run", "--run-dir", str(run_dir), "--gpu", "none", "--", sys.executable, "-c", ONE_STEP)
    assert result.exit_code == 0, result.stderr
    assert victim.read_text() == BASHRC  # before: overwritten with HTML
    assert f"could not write {run_dir / 'report.html'}: is a symbolic link" in result.stderr


@pytest.mark.parametrize("planted", ["spans.jsonl", "run.json", ".run.json.lock"])
def test_a_fifo_planted_in_the_run_directory_never_blocks(tmp_path: Path, planted: str) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    (run_dir / "samples.csv").touch()
    os.mkfifo(run_dir / planted)
    with profiler.session(run_dir=run_dir, gpu="none"), profiler.step("s"):
        pass  # before: open(2) of the FIFO waited for a reader for ever
