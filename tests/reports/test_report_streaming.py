"""Reports are written piece by piece, and a report that fails half way leaves no file behind."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.cli.app import _emit
from reports import json_report, render, render_encoded, render_parts


def test_json_parts_join_to_the_rendered_report(golden_ledger, tmp_path: Path) -> None:
    parts = render_parts(golden_ledger, "json")
    assert not isinstance(parts, (str, bytes))
    out = tmp_path / "report.json"
    _emit(parts, out)
    assert out.read_text(encoding="utf-8") == render(golden_ledger, "json")


@pytest.mark.parametrize("format", ["table", "markdown", "csv"])
def test_other_formats_come_in_one_piece(golden_ledger, format: str) -> None:
    assert list(render_parts(golden_ledger, format)) == [render(golden_ledger, format)]


@pytest.mark.parametrize(("format", "options"), [("json", {}), ("json", {"by": "tool"}), ("json", {"top": 2}),
                                                 ("table", {}), ("markdown", {}), ("csv", {})])
def test_encoded_pieces_are_the_report_in_utf8(golden_ledger, monkeypatch: pytest.MonkeyPatch, format: str,
                                               options: dict) -> None:
    whole = render(golden_ledger, format, **options)  # the steps in one chunk, one piece
    monkeypatch.setattr(json_report, "_CHUNK", 3)  # several chunks of steps, several pieces each
    monkeypatch.setattr(json_report, "_PIECE", 2)
    pieces = list(render_encoded(golden_ledger, format, **options))
    assert all(isinstance(piece, bytes) for piece in pieces)
    if format == "json" and not options:
        assert len(pieces) > 3
    assert b"".join(pieces).decode("utf-8") == whole


def test_pieces_of_text_and_of_bytes_reach_stdout_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    _emit(iter(["one ", b"two ", "three"]), None)
    assert capsys.readouterr().out == "one two three"


def test_pieces_of_bytes_reach_a_text_only_stdout_as_text(monkeypatch: pytest.MonkeyPatch) -> None:
    stand_in = io.StringIO()
    monkeypatch.setattr("sys.stdout", stand_in)
    _emit(iter(["one ", "caf\u00e9 ".encode()]), None)
    assert stand_in.getvalue() == "one caf\u00e9 "


def test_pieces_of_bytes_reach_the_file_as_they_are(tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    _emit(iter(['{"name": ', '"caf\u00e9 ', "café".encode() + b'"}']), out)
    assert out.read_bytes() == '{"name": "caf\u00e9 café"}'.encode()


def test_a_binary_report_is_not_written_to_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    with pytest.raises(ValueError, match="binary"):
        _emit(iter([b"PAR1"]), None, binary=True)


@pytest.mark.parametrize("kind", [str, bytes])
def test_a_report_that_fails_half_way_leaves_no_file(tmp_path: Path, kind: type) -> None:
    def failing() -> Iterator[str | bytes]:
        yield '{"steps": [' if kind is str else b'{"steps": ['
        raise ValueError("cannot group by 'nothing'")

    out = tmp_path / "report.json"
    out.write_text("an older report", encoding="utf-8")
    with pytest.raises(ValueError, match="nothing"):
        _emit(failing(), out)
    # Half a report reads as a whole one: it is never in place; the older report is left as it was.
    assert out.read_text(encoding="utf-8") == "an older report"
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]
