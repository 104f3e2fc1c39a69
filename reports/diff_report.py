"""`sessionprof diff`: two runs side by side, step by step (figures from `profiler.analysis.diff`)."""

from __future__ import annotations

import io
import json
import math
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from profiler.analysis.diff import Diff
from profiler.attribution.ledger import _json_tree
from reports._cells import NOT_MEASURED, missing, usd
from reports.registry import DIFF_FORMATS

FORMATS = DIFF_FORMATS
MAX_ROWS = 200
_HEADER = ("Step", "Status", "Δ tokens", "Δ total $", "Δ GPU J", "Δ GiB·s", "Δ wall s", "A total $",
           "B total $")


def render_diff(diff: Diff, format: str = "table", *, rows: pd.DataFrame | None = None, caption: str = "",
                width: int | None = None) -> str:
    """Render a `Diff`; `rows` (default: every step) are the steps to show, e.g. `top_changes()`."""
    rows = diff.steps if rows is None else rows
    if format == "json":
        document = {"a": diff.a, "b": diff.b, "totals": diff.totals,
                    "steps": rows.to_dict("records")}
        return json.dumps(_json_tree(document), indent=2, default=str) + "\n"
    indent = caption == ""  # a tree when showing every step in order; flat for a ranked selection
    if format == "markdown":
        lines = [f"### Diff: A = {diff.a.get('source')}, B = {diff.b.get('source')}", ""]
        lines += ["| " + " | ".join(_HEADER) + " |", "|" + "---|" * len(_HEADER)]
        for count, (_, row) in enumerate(rows.iterrows()):
            if count >= MAX_ROWS:
                lines.append(f"| … {len(rows) - MAX_ROWS} more steps (use --top N or --format json) |")
                break
            cells = _cells(row, indent, "&nbsp;&nbsp;")
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("| **Total** | | " + " | ".join(_total_cells(diff.totals)) + " |")
        lines += ["", *(f"- {line}" for line in _notes(diff, caption))]
        return "\n".join(lines) + "\n"
    if format != "table":
        raise ValueError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    stream = io.StringIO()
    # markup=False: brackets in a name are text, not a style (see reports/table.py)
    console = Console(file=stream, markup=False, width=width or 150, no_color=True, highlight=False, soft_wrap=False)
    console.print(Text(f"A: {diff.a.get('source')}\nB: {diff.b.get('source')}", style="bold"))
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in _HEADER:
        table.add_column(name, justify="left" if name in ("Step", "Status") else "right",
                         no_wrap=name != "Step", overflow="fold")
    for count, (_, row) in enumerate(rows.iterrows()):
        if count >= MAX_ROWS:
            table.add_row(f"… {len(rows) - MAX_ROWS} more steps (use --top N or --format json)")
            break
        table.add_row(*_cells(row, indent, "  "))
    table.add_section()
    table.add_row("Total", "", *_total_cells(diff.totals))
    console.print(table)
    for line in _notes(diff, caption):
        console.print(Text(line, style="dim"))
    return stream.getvalue()


def _cells(row: pd.Series, indent: bool, pad: str) -> list[str]:
    label = (pad * int(row["depth"]) + str(row["name"])) if indent else str(row["key"])
    return [label, str(row["status"]), _signed(row["tokens_delta"], 0),
            _signed_usd(row["total_cost_usd_delta"]),
            _signed(row["energy_j_delta"], 1), _signed(row["gpu_mem_gib_s_delta"], 2),
            _signed(row["wall_s_delta"], 2), usd(row["total_cost_usd_a"]), usd(row["total_cost_usd_b"])]


def _total_cells(totals: dict[str, Any]) -> list[str]:
    def delta(metric: str, digits: int, money: bool = False) -> str:
        entry = totals[metric]
        text = _signed_usd(entry["delta"]) if money else _signed(entry["delta"], digits)
        return text + (f" ({entry['pct']:+.1f}%)" if entry.get("pct") is not None else "")

    return [delta("tokens", 0), delta("total_cost_usd", 0, money=True), delta("energy_j", 1),
            delta("gpu_mem_gib_s", 2), delta("wall_s", 2), usd(totals["total_cost_usd"]["a"]),
            usd(totals["total_cost_usd"]["b"])]


def _notes(diff: Diff, caption: str) -> list[str]:
    counts = diff.totals["counts"]
    lines = [f"steps: {counts['changed']} changed, {counts['same']} same, {counts['added']} only in B "
             "(added), "
             f"{counts['removed']} only in A (removed); model calls {counts['model_calls_a']} -> "
             f"{counts['model_calls_b']}",
             "steps are matched by their path of names and their ordinal among same-named siblings; "
             "figures are inclusive (a step and everything beneath it); Δ = B - A"]
    api = diff.totals["api_cost_usd"]
    lines.append(f"API $: {usd(api['a'])} -> {usd(api['b'])}")
    if caption:
        lines.append(caption)
    for side in ("a", "b"):
        selection = getattr(diff, side).get("selection")
        if selection:
            lines.append(f"{side.upper()} selection: {selection}")
    return lines


def _signed(value: Any, digits: int) -> str:
    if missing(value):
        return NOT_MEASURED
    if round(value, digits) == 0:
        return "0"
    return f"{value:+,.{digits}f}"


def _signed_usd(value: Any) -> str:
    if missing(value):
        return NOT_MEASURED
    if value == 0 or (isinstance(value, float) and math.isclose(value, 0.0, abs_tol=1e-12)):
        return "$0"
    return ("+" if value > 0 else "-") + usd(abs(value))
