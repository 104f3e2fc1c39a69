"""Reports are written piece by piece, and a report that fails half way leaves no file behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.cli import _emit
from reports import render, render_parts


def test_json_parts_join_to_the_rendered_report(golden_ledger, tmp_path: Path) -> None:
    parts = render_parts(golden_ledger, "json")
    assert not isinstance(parts, (str, bytes))
    out = tmp_path / "report.json"
    _emit(parts, out)
    assert out.read_text(encoding="utf-8") == render(golden_ledger, "json")


@pytest.mark.parametrize("format", ["table", "markdown", "csv"])
def test_other_formats_come_in_one_piece(golden_ledger, format: str) -> None:
    assert list(render_parts(golden_ledger, format)) == [render(golden_ledger, format)]


def test_a_report_that_fails_half_way_leaves_no_file(tmp_path: Path) -> None:
    def failing() -> Iterator[str]:
        yield '{"steps": ['
        raise ValueError("cannot group by 'nothing'")

    out = tmp_path / "report.json"
    out.write_text("an older report", encoding="utf-8")
    with pytest.raises(ValueError, match="nothing"):
        _emit(failing(), out)
    assert not out.exists()
