"""The command line writes a report piece by piece, never bytes to a terminal, and no half file."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.cli.output import emit


def test_pieces_of_text_and_of_bytes_reach_stdout_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    emit(iter(["one ", b"two ", "three"]), None)
    assert capsys.readouterr().out == "one two three"


def test_pieces_of_bytes_reach_a_text_only_stdout_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = io.StringIO()
    monkeypatch.setattr("sys.stdout", stand_in)
    emit(iter(["one ", "caf\u00e9 ".encode()]), None)
    assert stand_in.getvalue() == "one caf\u00e9 "


def test_pieces_of_bytes_reach_the_file_as_they_are(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    emit(iter(['{"name": ', '"caf\u00e9 ', "café".encode() + b'"}']), out)
    assert out.read_bytes() == '{"name": "caf\u00e9 café"}'.encode()


def test_a_binary_report_is_not_written_to_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    with pytest.raises(ValueError, match="binary"):
        emit(iter([b"PAR1"]), None, binary=True)


@pytest.mark.parametrize("kind", [str, bytes])
def test_a_report_that_fails_half_way_leaves_no_file(tmp_path: Path, kind: type) -> None:
    def failing() -> Iterator[str | bytes]:
        yield '{"steps": [' if kind is str else b'{"steps": ['
        raise ValueError("cannot group by 'nothing'")

    out = tmp_path / "report.json"
    out.write_text("an older report", encoding="utf-8")
    with pytest.raises(ValueError, match="nothing"):
        emit(failing(), out)
    # Half a report reads as a whole one: it is never in place; the older report is left as it was.
    assert out.read_text(encoding="utf-8") == "an older report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_logged_warning_carries_the_prefix_once() -> None:
    import logging

    from profiler.cli.app import _Prefixed

    def line(message: str) -> str:
        return _Prefixed().format(logging.LogRecord("x", logging.WARNING, __file__, 1, message, None, None))

    assert line("sessionprof: the run directory is gone") == "sessionprof: the run directory is gone"
    assert line("skipping GPU 1: lost") == "sessionprof: skipping GPU 1: lost"
