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
    enclosing = _encloses_own_session_root(spans, keys, parent_keys, has_parent)
    roots = ~has_parent & ~spans["session_root"] & ~enclosing
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


def _encloses_own_session_root(
    spans: pd.DataFrame, keys: pd.Series, parent_keys: pd.Series, has_parent: pd.Series
) -> np.ndarray:
    """Mark the ancestors of each declared session root that belong to its session (a request span
    the session was opened in): they stay roots, since hanging them under that session row would
    close a cycle."""
    marked = np.zeros(len(spans), dtype=bool)
    declared = np.flatnonzero(spans["session_root"].to_numpy(dtype=bool))
    if not len(declared):
        return marked
    index_of = {key: pos for pos, key in enumerate(keys)}
    session = spans["session_id"].to_numpy(dtype=object)
    linked = has_parent.to_numpy(dtype=bool)
    for pos in declared:
        up, seen = pos, {pos}
        while linked[up]:
            up = index_of[parent_keys.iat[up]]
            if up in seen:
                break
            seen.add(up)
            marked[up] |= session[up] == session[pos]
    return marked


def parent_positions(spans: pd.DataFrame) -> np.ndarray:
    """Return, for each row, the row position of its parent, or -1."""
    if "trace_id_parent" in spans:
        parent_trace = spans["trace_id_parent"].fillna(spans["trace_id"])
    else:
        parent_trace = spans["trace_id"]
    span_index = pd.Index(spans["span_id"].to_numpy(dtype=object))
    if span_index.is_unique:
        # Span ids are unique in practice: look parents up by span id alone, then keep a match only
        # where the trace agrees (much faster than building trace:span keys for a million rows).
        positions = span_index.get_indexer(spans["parent_span_id"].to_numpy(dtype=object))
        found = positions >= 0
        trace = spans["trace_id"].to_numpy(dtype=object)
        same = np.zeros(len(positions), dtype=bool)
        same[found] = trace[positions[found]] == parent_trace.to_numpy(dtype=object)[found]
        positions = np.where(same, positions, -1)
    else:
        keys = pd.Index(spans["trace_id"] + ":" + spans["span_id"])
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

    A row is a leaf in a slice when it is open there and none of its descendants is (a child that
    outlives its parent still keeps the grandparent from being a leaf). Descendants are clipped to
    each ancestor's interval; overlapping ones (concurrent calls) are merged.
    """
    n = len(start_idx)
    child, p = _ancestor_pairs(parent, start_idx, end_idx)
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


def _ancestor_pairs(
    parent: np.ndarray, start_idx: np.ndarray, end_idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (descendant row, ancestor row) pairs that together cover every ancestor's descendants.

    A row is paired with its parent, and with higher ancestors only while it sticks out of the one
    below: inside an ancestor, that ancestor's own pair already covers it. Usual nesting thus gives
    one pair per row, however deep the tree. Cycles are cut.
    """
    rows, ancestors = [], []
    row, current = np.arange(len(parent)), parent.copy()
    for _ in range(len(parent)):
        live = (current >= 0) & (current != row)  # a cycle leads a row back to itself
        row, current = row[live], current[live]
        if not len(row):
            break
        rows.append(row)
        ancestors.append(current)
        outside = (start_idx[row] < start_idx[current]) | (end_idx[row] > end_idx[current])
        row, current = row[outside], parent[current[outside]]
    if not rows:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(rows), np.concatenate(ancestors)
