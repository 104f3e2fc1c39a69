"""`sessionprof whatif`: a run priced as recorded and under another model or other prices."""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from profiler.analysis.whatif import WhatIf
from profiler.attribution.ledger import _json_tree
from reports._cells import NOT_MEASURED, missing, number, tokens, usd
from reports.registry import WHATIF_FORMATS

FORMATS = WHATIF_FORMATS
_LABELS = {"api_cost_usd": "API $", "gpu_cost_usd": "GPU $", "energy_cost_usd": "Energy $",
           "total_cost_usd": "Total $", "co2_g": "CO2 g"}


def render_whatif(result: WhatIf, format: str = "table", *, width: int | None = None) -> str:
    """Render a `WhatIf` as `table`, `markdown` or `json`."""
    if format == "json":
        document = {"source": result.original.run.get("source"), "changes": result.changes,
                    "comparison": result.comparison.to_dict("records"),
                    "by_model": result.by_model.to_dict("records"),
                    "break_even": result.break_even, "original_totals": result.original.totals,
                    "what_if_totals": result.scenario.totals}
        return json.dumps(_json_tree(document), indent=2, default=str) + "\n"
    comparison = [[_LABELS[r["component"]], _value(r["component"], r["original"]),
                   _value(r["component"], r["what_if"]), _delta(r["component"], r["delta"]), _pct(r["pct"])]
                  for _, r in result.comparison.iterrows()]
    models = [[f"{r['provider']}/{r['model']}", str(int(r["calls"])), tokens(r["input_tokens"]),
               tokens(r["output_tokens"]), usd(r["original_usd"]),
               "unpriced" if r["unpriced_calls"] and missing(r["what_if_usd"]) else usd(r["what_if_usd"]),
               str(r["what_if_model"])] for _, r in result.by_model.iterrows()]
    lines = _notes(result)
    if format == "markdown":
        out = [f"### What if: {_title(result)}", "", "| Cost | Recorded | What if | Δ | Δ % |",
               "|---|---|---|---|---|"]
        out += ["| " + " | ".join(row) + " |" for row in comparison]
        if models:
            out += ["", "| Model calls (as recorded) | Calls | In tok | Out tok | Recorded $ | What-if $ | "
                    "Priced as |",
                    "|---|---|---|---|---|---|---|"]
            out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in models]
        out += ["", *(f"- {line}" for line in lines)]
        return "\n".join(out) + "\n"
    if format != "table":
        raise ValueError(f"unknown format {format!r} (choose from {', '.join(FORMATS)})")
    stream = io.StringIO()
    # markup=False: brackets in a name are text, not a style (see reports/table.py)
    console = Console(file=stream, markup=False, width=width or 130, no_color=True, highlight=False, soft_wrap=False)
    console.print(Text(f"What if: {_title(result)}", style="bold"))
    console.print(Text(f"run: {result.original.run.get('source')} (read only, not modified)"))
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for name in ("Cost", "Recorded", "What if", "Δ", "Δ %"):
        table.add_column(name, justify="left" if name == "Cost" else "right")
    for row in comparison:
        table.add_row(*row)
    console.print(table)
    if models:
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        for name in ("Model calls (as recorded)", "Calls", "In tok", "Out tok", "Recorded $", "What-if $",
                     "Priced as"):
            left = name in ("Model calls (as recorded)", "Priced as")
            table.add_column(name, justify="left" if left else "right")
        for row in models:
            table.add_row(*row)
        console.print()
        console.print(table)
    console.print()
    for line in lines:
        console.print(Text(line))
    return stream.getvalue()


def _title(result: WhatIf) -> str:
    changes = result.changes
    parts = []
    if changes.get("model"):
        parts.append(f"every model call served by {changes['priced_as']}")
    for name, change in changes.items():
        if isinstance(change, dict):
            parts.append(f"{name} {change['was']} -> {change['now']}")
    return "; ".join(parts) or "the run as recorded (nothing changed)"


def _notes(result: WhatIf) -> list[str]:
    lines = []
    unpriced = result.scenario.checks.get("unpriced_calls")
    if unpriced:
        lines.append(f"unpriced in the what-if: {unpriced} call(s) of "
                     f"{', '.join(result.scenario.checks.get('unpriced_models', []))}")
    even = result.break_even
    if even:
        lines.append(f"self-hosted: {even['self_hosted_calls']} call(s), {tokens(even['input_tokens']) or 0} "
                     f"input + {tokens(even['output_tokens']) or 0} output tokens served on your GPU")
        priced_as = even["api_priced_as"] or "unpriced"
        lines.append(f"  at the API ({priced_as}): {usd(even['api_equivalent_usd'])}")
        if even["gpu_hours"]:
            gpu, energy = usd(even["self_hosted_gpu_usd"]), usd(even["self_hosted_energy_usd"])
            lines.append(f"  on your GPU: {usd(even['self_hosted_usd'])} (GPU {gpu} + energy {energy} over "
                         f"{number(even['gpu_hours'], 3)} GPU-hours, idle time between calls included)")
        if even["break_even_gpu_usd_per_hour"] is not None:
            lines.append(f"  break-even: self-hosting pays while a GPU-hour costs less than "
                         f"{usd(even['break_even_gpu_usd_per_hour'])}"
                         + (f"; at the rate used, the {even['cheaper']} is cheaper"
                            if even["cheaper"] else ""))
        if even["note"]:
            lines.append(f"  {even['note']}")
    lines.append("prices: genai-prices' bundled snapshot, as of each request's time; tokens are the recorded "
                 "ones (another model would tokenise the same text somewhat differently)")
    return lines


def _value(component: str, value: Any) -> str:
    if missing(value):
        return NOT_MEASURED
    return number(value, 1) if component == "co2_g" else usd(value)


def _delta(component: str, value: Any) -> str:
    if missing(value):
        return NOT_MEASURED
    if value == 0:
        return "0"
    if component == "co2_g":
        return f"{value:+,.1f}"
    return ("+" if value > 0 else "-") + usd(abs(value))


def _pct(value: Any) -> str:
    return "" if missing(value) else f"{value:+.1f}%"
