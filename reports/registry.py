"""The one registry of report formats: each renderer's name, file extension, text or bytes, and function.

Adding a format is adding a module with its render function and one `Renderer` entry below; the CLI's
`--format` choices, `reports.FORMATS` and the dispatch in `reports.render` all read this table.
Functions are named as `module:function` and imported on first use, so listing the formats (as the
CLI does when it starts) loads neither pandas nor rich.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

#: What a flame graph (`speedscope`, `folded`) is weighted by: each step's own dollars, joules or GiB*s.
WEIGHTS = ("usd", "joules", "gib_s")
#: The formats of the reports on something other than one ledger (`sessionprof sessions`, `diff`, `whatif`).
SESSIONS_FORMATS = ("table", "json", "csv", "markdown")
DIFF_FORMATS = ("table", "markdown", "json")
WHATIF_FORMATS = ("table", "markdown", "json")


def _load(reference: str) -> Callable[..., Any]:
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Renderer:
    """One output format of a ledger: how it is named, saved and produced."""

    name: str
    """The format's name, as `reports.render` and `sessionprof report --format` take it."""
    file_extension: str
    """The usual ending of a file in this format, with its dot."""
    function: str
    """`module:function` that renders a ledger: `(ledger, *, by, top, **options) -> str | bytes`."""
    binary: bool = False
    """Whether the output is bytes (never written to a terminal), not text."""
    options: tuple[str, ...] = ()
    """The keyword options the function takes beyond `by` and `top`; others are not passed on."""
    byte_parts: str | None = None
    """`module:function` giving the output as consecutive UTF-8 pieces, for a format too big to hold
    whole; None: the output comes in one piece."""

    def render(self, ledger: Any, *, by: str, top: int | None, **options: Any) -> str | bytes:
        """The whole report: text, or bytes for a binary format."""
        if "weight" in self.options and options.get("weight", "usd") not in WEIGHTS:
            raise ValueError(f"unknown weight {options['weight']!r} (choose from {', '.join(WEIGHTS)})")
        taken = {key: value for key, value in options.items() if key in self.options}
        return _load(self.function)(ledger, by=by, top=top, **taken)  # type: ignore[no-any-return]

    def encoded(self, ledger: Any, *, by: str, top: int | None, **options: Any) -> Iterable[bytes]:
        """The report as consecutive pieces of bytes (UTF-8 for a text format)."""
        if self.byte_parts is not None:
            return _load(self.byte_parts)(ledger, by=by, top=top)  # type: ignore[no-any-return]
        output = self.render(ledger, by=by, top=top, **options)
        return (output if isinstance(output, bytes) else output.encode("utf-8"),)


RENDERERS: dict[str, Renderer] = {renderer.name: renderer for renderer in (
    Renderer("table", ".txt", "reports.table:render_table", options=("width", "color")),
    Renderer("json", ".json", "reports.json_report:render_json", byte_parts="reports.json_report:json_byte_parts"),
    Renderer("csv", ".csv", "reports.csv_report:render_csv"),
    Renderer("markdown", ".md", "reports.markdown:render_markdown"),
    Renderer("html", ".html", "reports.html:render_html"),
    Renderer("perfetto", ".perfetto.json", "reports.perfetto:render_perfetto"),
    Renderer("speedscope", ".speedscope.json", "reports.flamegraph:render_speedscope", options=("weight",)),
    Renderer("folded", ".folded", "reports.flamegraph:render_folded", options=("weight",)),
    Renderer("parquet", ".parquet", "reports.parquet_report:render_parquet", binary=True),
)}


def renderer_for(format: str) -> Renderer:
    """The renderer of `format`; raises `ValueError` naming the formats there are."""
    try:
        return RENDERERS[format]
    except KeyError:
        raise ValueError(f"unknown format {format!r} (choose from {', '.join(RENDERERS)})") from None
