"""Dispatch a ledger to the renderer for a format."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from profiler.attribution.ledger import Ledger

FORMATS = ("table", "json", "csv", "markdown", "html", "perfetto", "speedscope", "folded", "parquet")
#: Formats whose output is bytes, not text.
BINARY_FORMATS = ("parquet",)
#: The usual file name ending of each format.
FILE_EXTENSIONS = {"table": ".txt", "json": ".json", "csv": ".csv", "markdown": ".md", "html": ".html",
                   "perfetto": ".perfetto.json", "speedscope": ".speedscope.json", "folded": ".folded",
                   "parquet": ".parquet"}
#: What a flame graph (`speedscope`, `folded`) is weighted by.
WEIGHTS = ("usd", "joules", "gib_s")


def render_parts(ledger: Ledger, format: str = "table", **options: Any) -> Iterable[str] | bytes:
    """`render`'s output in consecutive pieces for a writer: JSON a chunk of steps at a time, so a
    million-step report is never held whole; any other format in one piece (bytes for `parquet`).
    Takes the same arguments as `render`."""
    if format == "json":
        from reports.json_report import json_parts

        return json_parts(ledger, by=options.get("by", "step"), top=options.get("top"))
    output = render(ledger, format, **options)
    return output if isinstance(output, bytes) else (output,)


def render_encoded(ledger: Ledger, format: str = "table", **options: Any) -> Iterable[bytes]:
    """`render_parts` in UTF-8 for a file or a pipe (parquet: its bytes, in one piece). The JSON
    steps come as the encoder wrote them, never decoded into text on the way."""
    if format == "json":
        from reports.json_report import json_byte_parts

        return json_byte_parts(ledger, by=options.get("by", "step"), top=options.get("top"))
    output = render(ledger, format, **options)
    return (output if isinstance(output, bytes) else output.encode("utf-8"),)


def render(ledger: Ledger, format: str = "table", *, by: str = "step", top: int | None = None, weight: str = "usd",
           **options: Any) -> str | bytes:
    """Render `ledger` in one of `FORMATS`; `parquet` gives bytes, every other format text.

    Args:
        ledger: the attributed run.
        format: the output format.
        by: `step` (the tree of steps) or a grouping: `tool`, `model`, `session`, `kind`.
        top: show only the N steps (or groups) that cost the most.
        weight: for `speedscope` and `folded`: each step's own `usd`, `joules` or `gib_s`.
        options: renderer-specific settings (`width`, `color` for the table).
    """
    if format in ("speedscope", "folded") and weight not in WEIGHTS:
        raise ValueError(f"unknown weight {weight!r} (choose from {', '.join(WEIGHTS)})")
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
    if format == "html":
        from reports.html import render_html

        return render_html(ledger, by=by, top=top)
    if format == "perfetto":
        from reports.perfetto import render_perfetto

        return render_perfetto(ledger, by=by, top=top)
    if format == "speedscope":
        from reports.flamegraph import render_speedscope

        return render_speedscope(ledger, by=by, top=top, weight=weight)
    if format == "folded":
        from reports.flamegraph import render_folded

        return render_folded(ledger, by=by, top=top, weight=weight)
    if format == "parquet":
        from reports.parquet_report import render_parquet

        return render_parquet(ledger, by=by, top=top)
    raise ValueError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
