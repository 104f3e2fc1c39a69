"""CSV: one row per step (or per group with `by`), every ledger column."""

from __future__ import annotations

from profiler.attribution.ledger import Ledger


def render_csv(ledger: Ledger, *, by: str = "step", top: int | None = None) -> str:
    """Render the steps (or groups) as CSV; missing figures are empty cells, never 0."""
    frame = ledger.group_by(by) if by != "step" else ledger.tree_order().drop(columns=["bills_usage"])
    if top is not None:
        key = "total_cost_usd" if by != "step" else "self_total_cost_usd"
        frame = frame.sort_values(key, ascending=False, na_position="last").head(top)
    return frame.to_csv(index=False)
