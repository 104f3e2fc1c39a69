"""The terminal report: a tree of steps with their costs, totals, and where each figure came from."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table
from rich.text import Text

from profiler.attribution.ledger import Ledger
from reports._cells import api_cell, notes, number, step_label, tokens, usd

MAX_TREE_ROWS = 200
_COLUMNS = (
    ("Step", "left"),
    ("Kind", "left"),
    ("Wall s", "right"),
    ("In tok", "right"),
    ("Out tok", "right"),
    ("API $", "right"),
    ("GPU J", "right"),
    ("GiB·s", "right"),
    ("Idle GiB·s", "right"),
    ("Peak GiB", "right"),
    ("Total $", "right"),
)


def render_table(ledger: Ledger, *, by: str = "step", top: int | None = None, width: int | None = None,
                 color: bool = False) -> str:
    """Render the ledger as a terminal table (a tree of steps unless `by` or `top` is given)."""
    stream = io.StringIO()
    # markup=False: a step named "x [error: E]" or "[draft] y" is text to print, not a style to apply
    console = Console(file=stream, markup=False, width=width or 150, no_color=not color,
                      color_system="auto" if color else None, highlight=False, soft_wrap=False)
    console.print(_title(ledger))
    if by != "step":
        console.print(_group_table(ledger, by, top))
    else:
        console.print(_steps_table(ledger, top))
    for line in notes(ledger):
        console.print(Text(line, style="dim"))
    return stream.getvalue()


def _title(ledger: Ledger) -> Text:
    totals = ledger.totals
    run = ledger.run
    text = Text(f"Run {run.get('run_id') or run.get('source') or ''}", style="bold")
    text.append(f"   {totals.get('sessions', 0)} session(s), {totals.get('steps', 0)} steps, "
                f"{totals.get('model_calls', 0)} model calls, {totals.get('tool_calls', 0)} tool calls, "
                f"{number(totals.get('wall_s'), 2)} s")
    return text


def _steps_table(ledger: Ledger, top: int | None) -> Table:
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name, justify in _COLUMNS:
        table.add_column(name, justify=justify, no_wrap=name != "Step", overflow="fold")
    if top is not None:
        steps = ledger.steps[ledger.steps["kind"] != "session"]
        rows = steps.sort_values("self_total_cost_usd", ascending=False, na_position="last").head(top)
        for _, row in rows.iterrows():
            table.add_row(*_cells(row, step_label(row), self_only=True))
        table.caption = f"top {top} steps by their own total $ (children excluded)"
    else:
        ordered = ledger.tree_order()
        if not ledger.totals.get("gpus"):
            ordered = ordered[ordered["kind"] != "unattributed"]  # it only ever holds GPU figures
        for count, (_, row) in enumerate(ordered.iterrows()):
            if count >= MAX_TREE_ROWS:
                table.add_row(f"… {len(ordered) - MAX_TREE_ROWS} more steps (use --top N or --format json)")
                break
            indent = "  " * int(row["depth"])
            table.add_row(*_cells(row, indent + step_label(row)))
    table.add_section()
    table.add_row(*_total_cells(ledger.totals))
    return table


def _cells(row: pd.Series, label: str, self_only: bool = False) -> list[str]:
    prefix = "self_" if self_only else ""
    return [
        label,
        str(row["kind"]),
        number(row[f"{prefix}wall_s"], 2),
        tokens(row[f"{prefix}input_tokens"]),
        tokens(row[f"{prefix}output_tokens"]),
        api_cell(row) if not self_only else usd(row["self_api_cost_usd"]),
        number(row[f"{prefix}energy_j"], 1),
        number(row[f"{prefix}gpu_mem_gib_s"], 2),
        number(row[f"{prefix}idle_hold_gib_s"], 2),
        number(row["gpu_mem_peak_gib"], 2),  # a peak has no self twin: it is not split
        usd(row[f"{prefix}total_cost_usd"]),
    ]


def _total_cells(totals: dict[str, Any]) -> list[str]:
    return ["Total (measured)", "", number(totals.get("wall_s"), 2), tokens(totals.get("input_tokens")),
            tokens(totals.get("output_tokens")), usd(totals.get("api_cost_usd")), number(totals.get("energy_j"), 1),
            number(totals.get("gpu_mem_gib_s"), 2), number(totals.get("idle_hold_gib_s"), 2),
            number(totals.get("gpu_mem_peak_gib"), 2), usd(totals.get("total_cost_usd"))]


def _group_table(ledger: Ledger, by: str, top: int | None) -> Table:
    grouped = ledger.group_by(by)
    if top is not None:
        grouped = grouped.head(top)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in (by.capitalize(), "Count", "Wall s", "In tok", "Out tok", "API $", "GPU J", "GiB·s", "Idle GiB·s",
                 "Peak GiB", "Total $"):
        table.add_column(name, justify="left" if name == by.capitalize() else "right")
    for _, row in grouped.iterrows():
        table.add_row(str(row[by]), str(int(row["count"])), number(row["wall_s"], 2), tokens(row["input_tokens"]),
                      tokens(row["output_tokens"]), usd(row["api_cost_usd"]), number(row["energy_j"], 1),
                      number(row["gpu_mem_gib_s"], 2), number(row["idle_hold_gib_s"], 2),
                      number(row["gpu_mem_peak_gib"], 2), usd(row["total_cost_usd"]))
    table.caption = f"by {by}: each step's own share (children excluded), summed"
    return table
