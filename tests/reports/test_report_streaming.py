"""Reports are written piece by piece, and a report that fails half way leaves no file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from profiler.cli.output import emit
from reports import json_report, render, render_encoded, render_parts


def test_json_parts_join_to_the_rendered_report(golden_ledger, tmp_path: Path) -> None:
    parts = render_parts(golden_ledger, "json")
    assert not isinstance(parts, (str, bytes))
    out = tmp_path / "report.json"
    emit(parts, out)
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
