"""The step tree of a run: parent positions, session rows, depths and leaf intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiler import semconv

SESSION_KIND = "session"
UNATTRIBUTED_KIND = "unattributed"


def add_session_rows(spans: pd.DataFrame) -> pd.DataFrame:
    """Give every session one row of kind `session` that parents its root spans.

    A session opened by `profiler.session()` already has its span (`session_root`); a session read
    from another tool's trace gets a synthetic row spanning its first start to its last end. The
    session row's own share (time no step covers) is the session's overhead.
    """
    spans = spans.reset_index(drop=True).copy()
    keys = spans["trace_id"] + ":" + spans["span_id"]
    parent_keys = spans["trace_id"] + ":" + spans["parent_span_id"].fillna("")
    has_parent = spans["parent_span_id"].notna() & parent_keys.isin(pd.Index(keys))
    roots = ~has_parent & ~spans["session_root"]
    spans.loc[spans["session_root"], "kind"] = SESSION_KIND

    declared = spans[spans["session_root"]].drop_duplicates("session_id")
    root_of_session = dict(zip(declared["session_id"], zip(declared["trace_id"], declared["span_id"])))
    missing = sorted(set(spans.loc[roots, "session_id"]) - set(root_of_session))
    synthetic = []
    if missing:
        windows = spans[spans["session_id"].isin(missing)].groupby("session_id").agg(
            start_ns=("start_ns", "min"), end_ns=("end_ns", "max"), trace_id=("trace_id", "first")
        )
        for session_id, window in windows.iterrows():
            span_id = f"session:{session_id}"
            root_of_session[session_id] = (window["trace_id"], span_id)
            synthetic.append({
                "trace_id": window["trace_id"], "span_id": span_id, "parent_span_id": None,
                "session_id": session_id, "name": f"session {session_id}", "kind": SESSION_KIND,
                "status": "unset", "start_ns": int(window["start_ns"]), "end_ns": int(window["end_ns"]),
                "model": None, "provider": None, "bills_usage": False, "remote": False, "session_root": True,
                "attributes": {semconv.SESSION_ROOT: True, "sessionprof.session.synthetic": True},
            })
    # Point orphans and roots at their session row; a parent in another trace keys by the session's trace.
    root_ids = spans.loc[roots, "session_id"].map(lambda s: root_of_session[s])
    spans.loc[roots, "trace_id_parent"] = root_ids.map(lambda r: r[0])
    spans.loc[roots, "parent_span_id"] = root_ids.map(lambda r: r[1])
    if synthetic:
        spans = pd.concat([spans, pd.DataFrame(synthetic)], ignore_index=True)
    return spans


def parent_positions(spans: pd.DataFrame) -> np.ndarray:
    """Return, for each row, the row position of its parent, or -1."""
    keys = pd.Index(spans["trace_id"] + ":" + spans["span_id"])
    if "trace_id_parent" in spans:
        parent_trace = spans["trace_id_parent"].fillna(spans["trace_id"])
    else:
        parent_trace = spans["trace_id"]
    parent_keys = parent_trace + ":" + spans["parent_span_id"].fillna("\0")
    positions = keys.get_indexer(parent_keys)
    positions[positions == np.arange(len(positions))] = -1  # a span that names itself as parent
    return positions.astype(np.int64)


def depths(parent: np.ndarray) -> np.ndarray:
    """Depth of each row (roots are 0); cycles are cut at the row count."""
    depth = np.zeros(len(parent), dtype=np.int64)
    current = parent.copy()
    for _ in range(len(parent)):
        live = current >= 0
        if not live.any():
            break
        depth[live] += 1
        current[live] = parent[current[live]]
    return depth


def subtree_sums(values: np.ndarray, parent: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Inclusive totals: each row's value plus all its descendants' (NaN counts as 0)."""
    total = np.where(np.isnan(values), 0.0, values).astype(np.float64)
    for level in range(int(depth.max(initial=0)), 0, -1):
        rows = np.flatnonzero((depth == level) & (parent >= 0))
        np.add.at(total, parent[rows], total[rows])
    return total


def leaf_ranges(
    start_idx: np.ndarray, end_idx: np.ndarray, parent: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (owner row, first slice, end slice) of every interval in which a row is a leaf.

    A row is a leaf in a slice when it is open there and none of its children is. Children are
    clipped to their parent's interval; overlapping children (concurrent calls) are merged.
    """
    n = len(start_idx)
    child = np.flatnonzero(parent >= 0)
    p = parent[child]
    cs = np.maximum(start_idx[child], start_idx[p])
    ce = np.minimum(end_idx[child], end_idx[p])
    keep = cs < ce
    child, p, cs, ce = child[keep], p[keep], cs[keep], ce[keep]
    order = np.lexsort((cs, p))
    p, cs, ce = p[order], cs[order], ce[order]

    owners, firsts, ends = [], [], []
    # Rows with no (non-empty) child: the whole interval.
    childless = np.ones(n, dtype=bool)
    childless[p] = False
    whole = np.flatnonzero(childless & (start_idx < end_idx))
    owners.append(whole)
    firsts.append(start_idx[whole])
    ends.append(end_idx[whole])
    if len(p):
        # Running max of child ends within each parent (parents sorted, so an offset per parent keeps
        # one parent's maximum from leaking into the next).
        span = int(end_idx.max(initial=0)) + 1
        covered = np.maximum.accumulate(p * span + ce) - p * span
        first_of_group = np.concatenate([[True], p[1:] != p[:-1]])
        previous_end = np.where(first_of_group, start_idx[p], np.concatenate([[0], covered[:-1]]))
        gap = cs > previous_end
        owners.append(p[gap])
        firsts.append(previous_end[gap])
        ends.append(cs[gap])
        last_of_group = np.concatenate([p[1:] != p[:-1], [True]])
        tail_owner, tail_first = p[last_of_group], covered[last_of_group]
        tail = end_idx[tail_owner] > tail_first
        owners.append(tail_owner[tail])
        firsts.append(tail_first[tail])
        ends.append(end_idx[tail_owner[tail]])
    return np.concatenate(owners), np.concatenate(firsts), np.concatenate(ends)
