"""JSON: one object `{"run", "totals", "steps", "checks"}` (schema in the README)."""

from __future__ import annotations

import json

from profiler.ledger import Ledger, _json_tree


def render_json(ledger: Ledger, *, by: str = "step", top: int | None = None) -> str:
    """Render the ledger as JSON; with `by`, `steps` is replaced by `groups`."""
    document = ledger.to_json()
    if by != "step":
        grouped = ledger.group_by(by)
        document.pop("steps")
        document["groups"] = _json_tree(grouped.head(top).to_dict("records") if top else grouped.to_dict("records"))
    elif top is not None:
        ranked = sorted(document["steps"], key=lambda s: -(s.get("self_total_cost_usd") or 0))
        document["steps"] = ranked[:top]
    return json.dumps(document, indent=2, default=str) + "\n"
