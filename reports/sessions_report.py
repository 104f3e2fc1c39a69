"""The sessions of a run, one line each with its totals (`sessionprof sessions`)."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from profiler.attribution.ledger import _json_tree
from reports._cells import NOT_MEASURED, missing, number, tokens, usd
from reports.registry import SESSIONS_FORMATS

FORMATS = SESSIONS_FORMATS
_HEADER = ("Session", "Start (UTC)", "Wall s", "Steps", "Model calls", "Tools", "Errors", "In tok", "Out tok",
           "API $", "GPU J", "Total $", "Models")


def render_sessions(sessions: pd.DataFrame, format: str = "table", *, source: str = "",
                    width: int | None = None) -> str:
    """Render `profiler.analysis.sessions.session_summaries()` as `table`, `json`, `csv` or `markdown`."""
    if format == "json":
        return json.dumps({"source": source, "sessions": _json_tree(sessions.to_dict("records"))}, indent=2,
                          default=str) + "\n"
    if format == "csv":
        return sessions.to_csv(index=False)
    if format == "markdown":
        lines = [f"### Sessions in {source}", "", "| " + " | ".join(_HEADER) + " |",
                 "|" + "---|" * len(_HEADER)]
        lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in _cells(row)) + " |"
                  for _, row in sessions.iterrows()]
        return "\n".join(lines) + "\n"
    if format != "table":
        raise ValueError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    stream = io.StringIO()
    # markup=False: brackets in a name are text, not a style (see reports/table.py)
    console = Console(file=stream, markup=False, width=width or 200, no_color=True, highlight=False, soft_wrap=False)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold",
                  title=f"{len(sessions)} session(s) in {source}", title_justify="left")
    for name in _HEADER:
        table.add_column(name, justify="left" if name in ("Session", "Start (UTC)", "Models") else "right",
                         no_wrap=True, overflow="ellipsis", max_width=40 if name == "Models" else None)
    for _, row in sessions.iterrows():
        table.add_row(*_cells(row))
    console.print(table)
    return stream.getvalue()


def _cells(row: pd.Series) -> list[str]:
    return [str(row["session_id"]), _utc(row["start_ns"]), number(row["wall_s"], 2), str(int(row["steps"])),
            str(int(row["model_calls"])), str(int(row["tool_calls"])), str(int(row["errors"])),
            tokens(row["input_tokens"]), tokens(row["output_tokens"]), _usd(row), number(row["energy_j"], 1),
            usd(row["total_cost_usd"]), str(row["models"] or "")]


def _usd(row: pd.Series) -> str:
    if row["unpriced_calls"] and not missing(row["unpriced_calls"]):
        return "unpriced" if missing(row["api_cost_usd"]) else usd(row["api_cost_usd"]) + "+?"
    return "" if missing(row["api_cost_usd"]) else usd(row["api_cost_usd"])


def _utc(ns: Any) -> str:
    if missing(ns):
        return NOT_MEASURED
    moment = datetime.fromtimestamp(int(ns) // 1_000_000_000, tz=timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")
