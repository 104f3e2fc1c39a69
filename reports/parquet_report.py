"""Parquet: the steps (or groups) with every ledger column and its dtype, for pandas, DuckDB, Polars.

Needs `pyarrow` (`pip install pyarrow`); without it, a one-line error says so.
"""

from __future__ import annotations

import io

from profiler.attribution.ledger import Ledger
from profiler.errors import ProfilerError

INSTALL_HINT = "Parquet output needs pyarrow: pip install pyarrow"


def pyarrow_available() -> bool:
    """Whether `pyarrow` can be imported."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def render_parquet(ledger: Ledger, *, by: str = "step", top: int | None = None) -> bytes:
    """Render the steps in tree order (or the groups with `by`) as Parquet bytes.

    Missing figures are nulls, never 0. Raises `ProfilerError` when pyarrow is absent.
    """
    if not pyarrow_available():
        raise ProfilerError(INSTALL_HINT)
    frame = ledger.group_by(by) if by != "step" else ledger.tree_order().drop(columns=["bills_usage"])
    if top is not None:
        key = "total_cost_usd" if by != "step" else "self_total_cost_usd"
        frame = frame.sort_values(key, ascending=False, na_position="last").head(top)
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, engine="pyarrow", index=False)
    return buffer.getvalue()
