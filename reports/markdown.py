"""Markdown: a table for pull-request comments and notebooks, with the same notes as the terminal."""

from __future__ import annotations

from typing import Any

from profiler.attribution.ledger import Ledger
from reports._cells import api_cell, notes, number, step_label, tokens, usd

_HEADER = ("Step", "Kind", "Wall s", "In tok", "Out tok", "API $", "GPU J", "GiB·s", "Idle GiB·s", "Peak GiB",
           "Total $")


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _gpu_cells(row: Any) -> list[str]:
    """Energy, memory held, idle hold and peak memory of a step or group row."""
    return [number(row["energy_j"], 1), number(row["gpu_mem_gib_s"], 2), number(row["idle_hold_gib_s"], 2),
            number(row["gpu_mem_peak_gib"], 2)]


def render_markdown(ledger: Ledger, *, by: str = "step", top: int | None = None) -> str:
    """Render the ledger as a Markdown document."""
    totals = ledger.totals
    lines = [f"### Run {_escape(str(ledger.run.get('run_id') or ledger.run.get('source') or ''))}", ""]
    if by != "step":
        grouped = ledger.group_by(by)
        grouped = grouped.head(top) if top else grouped
        lines.append("| " + " | ".join((by.capitalize(), "Count", *_HEADER[2:])) + " |")
        lines.append("|" + "---|" * (len(_HEADER)))
        for _, row in grouped.iterrows():
            lines.append("| " + " | ".join([_escape(str(row[by])), str(int(row["count"])), number(row["wall_s"], 2),
                                            tokens(row["input_tokens"]), tokens(row["output_tokens"]),
                                            usd(row["api_cost_usd"]), *_gpu_cells(row),
                                            usd(row["total_cost_usd"])]) + " |")
    else:
        steps = ledger.tree_order()
        if not ledger.totals.get("gpus"):
            steps = steps[steps["kind"] != "unattributed"]
        if top is not None:
            steps = steps[steps["kind"] != "session"].sort_values("self_total_cost_usd", ascending=False,
                                                                   na_position="last").head(top)
        lines.append("| " + " | ".join(_HEADER) + " |")
        lines.append("|" + "---|" * len(_HEADER))
        for _, row in steps.iterrows():
            indent = "&nbsp;&nbsp;" * int(row["depth"]) if top is None else ""
            lines.append("| " + " | ".join([indent + _escape(step_label(row)), row["kind"], number(row["wall_s"], 2),
                                            tokens(row["input_tokens"]), tokens(row["output_tokens"]),
                                            api_cell(row), *_gpu_cells(row),
                                            usd(row["total_cost_usd"])]) + " |")
    lines.append("| **Total (measured)** | | " + " | ".join([
        number(totals.get("wall_s"), 2), tokens(totals.get("input_tokens")), tokens(totals.get("output_tokens")),
        usd(totals.get("api_cost_usd")), number(totals.get("energy_j"), 1), number(totals.get("gpu_mem_gib_s"), 2),
        number(totals.get("idle_hold_gib_s"), 2), number(totals.get("gpu_mem_peak_gib"), 2),
        usd(totals.get("total_cost_usd"))]) + " |")
    lines.append("")
    lines.extend(f"- {_escape(line)}" for line in notes(ledger))
    return "\n".join(lines) + "\n"
