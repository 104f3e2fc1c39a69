"""The sessions of a run, one line each with its totals (`sessionprof sessions`).

Cells are formatted a column at a time and the table is laid out here, in time linear in the
sessions: a table of 300,000 sessions is written in seconds."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from rich.cells import cell_len

from profiler.attribution.ledger import _json_tree
from reports._cells import NOT_MEASURED, missing, number, tokens, usd
from reports.registry import SESSIONS_FORMATS

FORMATS = SESSIONS_FORMATS
_HEADER = ("Session", "Start (UTC)", "Wall s", "Steps", "Model calls", "Tools", "Errors", "In tok", "Out tok",
           "API $", "GPU J", "Total $", "Models")


def render_sessions(sessions: pd.DataFrame, format: str = "table", *, source: str = "") -> str:
    """Render `profiler.analysis.sessions.session_summaries()` as `table`, `json`, `csv` or `markdown`."""
    if format == "json":
        return json.dumps({"source": source, "sessions": _json_tree(sessions.to_dict("records"))}, indent=2,
                          default=str) + "\n"
    if format == "csv":
        return sessions.to_csv(index=False)
    if format == "markdown":
        lines = [f"### Sessions in {source}", "", "| " + " | ".join(_HEADER) + " |",
                 "|" + "---|" * len(_HEADER)]
        columns = [[cell.replace("|", "\\|") for cell in column] for column in _columns(sessions)]
        lines += ["| " + " | ".join(cells) + " |" for cells in zip(*columns, strict=True)]
        return "\n".join(lines) + "\n"
    if format != "table":
        raise ValueError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    title = f"{len(sessions)} session(s) in {source}"
    return "\n".join([title, *_aligned(_columns(sessions))]) + "\n"


def _columns(sessions: pd.DataFrame) -> list[list[str]]:
    """The cells of the table, a column at a time, in `_HEADER` order."""
    def each(function: Any, name: str) -> list[str]:
        return list(map(function, sessions[name].tolist()))

    def count(name: str) -> list[str]:
        return [str(int(v)) for v in sessions[name].tolist()]

    api = [_usd(u, a) for u, a in zip(sessions["unpriced_calls"].tolist(), sessions["api_cost_usd"].tolist(),
                                      strict=True)]
    return [each(str, "session_id"), each(_utc, "start_ns"), each(lambda v: number(v, 2), "wall_s"), count("steps"),
            count("model_calls"), count("tool_calls"), count("errors"), each(tokens, "input_tokens"),
            each(tokens, "output_tokens"), api, each(lambda v: number(v, 1), "energy_j"), each(usd, "total_cost_usd"),
            each(lambda v: str(v or ""), "models")]


def _aligned(columns: list[list[str]]) -> list[str]:
    """The header and rows, each column as wide as its widest cell (Models at most 40, cut with an
    ellipsis), two spaces apart; text to the left, figures to the right. No cell is wrapped."""
    left = {"Session", "Start (UTC)", "Models"}
    specs, laid_out = [], []
    for name, cells in zip(_HEADER, columns, strict=True):
        if name == "Models":
            cells = [_cut(cell, 40) for cell in cells]
        cells = [name, *cells]
        if "".join(cells).isascii():  # one character, one terminal cell: `format` pads it
            specs.append(f"{{:{'<' if name in left else '>'}{max(map(len, cells))}}}")
        else:  # wide or combining characters: padded here by their terminal width
            widths = list(map(cell_len, cells))
            size = max(widths)
            cells = [cell + " " * (size - w) if name in left else " " * (size - w) + cell
                     for cell, w in zip(cells, widths, strict=True)]
            specs.append("{}")
        laid_out.append(cells)
    line = "  ".join(specs)
    return [line.format(*row).rstrip() for row in zip(*laid_out, strict=True)]


def _cut(text: str, most: int) -> str:
    return text if cell_len(text) <= most else text[: most - 1] + "…"


def _usd(unpriced: Any, api_cost_usd: Any) -> str:
    if unpriced and not missing(unpriced):
        return "unpriced" if missing(api_cost_usd) else usd(api_cost_usd) + "+?"
    return "" if missing(api_cost_usd) else usd(api_cost_usd)


def _utc(ns: Any) -> str:
    if missing(ns):
        return NOT_MEASURED
    moment = datetime.fromtimestamp(int(ns) // 1_000_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
