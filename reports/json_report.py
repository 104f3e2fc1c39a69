"""JSON: one object `{"run", "totals", "steps", "checks"}` (schema in the README).

The document is indented, except that each step is one line: the same JSON as
`Ledger.to_json()`, written column by column with the C encoder, so a million-step ledger renders
in seconds instead of minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from profiler.ledger import Ledger, _json_tree, _json_value

_CHUNK = 20_000
_PLACEHOLDER = "\0sessionprof-steps\0"
_encode_step = json.JSONEncoder(default=str, separators=(", ", ": ")).encode


def render_json(ledger: Ledger, *, by: str = "step", top: int | None = None) -> str:
    """Render the ledger as JSON; with `by`, `steps` is replaced by `groups`."""
    head = {"run": _json_tree(ledger.run), "totals": _json_tree(ledger.totals)}
    if by != "step":
        grouped = ledger.group_by(by)
        groups = grouped.head(top) if top else grouped
        document = {**head, "checks": _json_tree(ledger.checks),
                    "groups": _json_tree(groups.to_dict("records"))}
        return json.dumps(document, indent=2, default=str) + "\n"
    steps = ledger.steps.drop(columns=["bills_usage"], errors="ignore")
    if top is not None:
        rank = -steps["self_total_cost_usd"].fillna(0.0).to_numpy()
        steps = steps.iloc[np.argsort(rank, kind="stable")[:top]]
    document = {**head, "steps": _PLACEHOLDER, "checks": _json_tree(ledger.checks)}
    before, after = json.dumps(document, indent=2, default=str).split(json.dumps(_PLACEHOLDER), 1)
    if not len(steps):
        return before + "[]" + after + "\n"
    parts = [before, "[\n    "]
    for chunk in _step_chunks(steps):
        parts.append(chunk)
        parts.append(",\n    ")
    parts[-1] = "\n  ]"
    parts.append(after)
    parts.append("\n")
    return "".join(parts)


def _step_chunks(steps: pd.DataFrame) -> Iterator[str]:
    """The steps as JSON objects, one per line, a chunk of lines at a time."""
    names = [str(name) for name in steps.columns]
    for start in range(0, len(steps), _CHUNK):
        chunk = steps.iloc[start:start + _CHUNK]
        columns = [_column_values(chunk[name]) for name in chunk.columns]
        yield ",\n    ".join(_encode_step(dict(zip(names, values))) for values in zip(*columns))


def _column_values(column: pd.Series) -> list[Any]:
    """A column as JSON-ready Python values: NaN and NA become None, numpy scalars Python ones."""
    dtype = column.dtype
    if dtype.kind == "f":
        values = column.to_numpy()
        listed = values.tolist()
        if np.isnan(values).any():
            return [None if v != v else v for v in listed]
        return listed
    if dtype.kind in "iub":
        return column.to_numpy().tolist()
    return [v if v is None or type(v) is str else _json_value(v)
            for v in column.to_numpy(dtype=object, na_value=None)]
