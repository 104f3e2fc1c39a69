"""Dispatch a ledger to the renderer for a format."""

from __future__ import annotations

from typing import Any

from profiler.ledger import Ledger

FORMATS = ("table", "json", "csv", "markdown")


def render(ledger: Ledger, format: str = "table", *, by: str = "step", top: int | None = None, **options: Any) -> str:
    """Render `ledger` as `table`, `json`, `csv` or `markdown`.

    Args:
        ledger: the attributed run.
        format: the output format.
        by: `step` (the tree of steps) or a grouping: `tool`, `model`, `session`, `kind`.
        top: show only the N steps (or groups) that cost the most.
        options: renderer-specific settings (`width`, `color` for the table).
    """
    if format == "table":
        from reports.table import render_table

        return render_table(ledger, by=by, top=top, **options)
    if format == "markdown":
        from reports.markdown import render_markdown

        return render_markdown(ledger, by=by, top=top)
    if format == "json":
        from reports.json_report import render_json

        return render_json(ledger, by=by, top=top)
    if format == "csv":
        from reports.csv_report import render_csv

        return render_csv(ledger, by=by, top=top)
    raise ValueError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
