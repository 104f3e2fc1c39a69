"""The step tree of a run: parent positions, session rows, depths and leaf intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from instrumentation import semconv
from profiler.model import SESSION_KIND
from profiler.traces.span_ids import hex_span_ids, positions_of


def add_session_rows(spans: pd.DataFrame) -> pd.DataFrame:
    """Give every session one row of kind `session` that parents its root spans.

    A session opened by `profiler.session()` already has its span (`session_root`); a session read
    from another tool's trace gets a synthetic row spanning its first start to its last end. The
    session row's own share (time no step covers) is the session's overhead.
    """
    return session_tree(spans)[0]


def session_tree(spans: pd.DataFrame, parent: np.ndarray | None = None) -> tuple[pd.DataFrame, np.ndarray]:
    """Return `add_session_rows(spans)` and the parent position of each of its rows (what
    `parent_positions` gives for it), without looking the parents up a second time.

    Args:
        spans: the span table.
        parent: `parent_positions(spans)`, where the caller has it already.
    """
    span_ids = spans["span_id"].to_numpy(dtype=object)
    parent_ids = spans["parent_span_id"].to_numpy(dtype=object)
    if parent is None or "trace_id_parent" in spans:  # a parent's trace is the span's own here
        trace = spans["trace_id"].to_numpy(dtype=object)
        parent = _without_self_parents(_find_parents(trace, span_ids, trace, parent_ids))
        cut_cycles(parent, spans["start_ns"].to_numpy(), span_ids)
    # A span that names itself as parent is no root here, though `parent_positions` gives it none.
    names_itself = np.zeros(len(spans), dtype=bool)
    orphan = np.flatnonzero(parent < 0)
    orphan = orphan[~pd.isna(parent_ids[orphan])]
    names_itself[orphan] = parent_ids[orphan] == span_ids[orphan]
    has_parent = (parent >= 0) | names_itself
    spans = spans.reset_index(drop=True)  # a copy (pandas 3 makes it when the frame is written to)
    session_root = spans["session_root"].to_numpy(dtype=bool)
    own_row = np.where(names_itself, np.arange(len(spans)), parent)
    enclosing = _encloses_own_session_root(spans, own_row, has_parent)
    roots = ~has_parent & ~session_root & ~enclosing
    if session_root.any():
        spans.loc[session_root, "kind"] = SESSION_KIND

    declared = spans[session_root].drop_duplicates("session_id")
    root_ids = zip(declared["trace_id"], declared["span_id"], strict=True)
    root_of_session = dict(zip(declared["session_id"], root_ids, strict=True))
    row_of_session = dict(zip(declared["session_id"], declared.index, strict=True))
    missing = sorted(set(spans.loc[roots, "session_id"]) - set(root_of_session))
    synthetic = []
    if missing:
        window_columns = ["session_id", "start_ns", "end_ns", "trace_id"]
        windows = spans[window_columns].groupby("session_id", sort=False).agg(
            start_ns=("start_ns", "min"), end_ns=("end_ns", "max"), trace_id=("trace_id", "first")
        ).loc[missing]
        for session_id, start_ns, end_ns, trace_id in zip(
            windows.index, windows["start_ns"], windows["end_ns"], windows["trace_id"], strict=True
        ):
            span_id = f"session:{session_id}"
            root_of_session[session_id] = (trace_id, span_id)
            row_of_session[session_id] = len(spans) + len(synthetic)
            synthetic.append({
                "trace_id": trace_id, "span_id": span_id, "parent_span_id": None,
                "session_id": session_id, "name": f"session {session_id}", "kind": SESSION_KIND,
                "status": "unset", "start_ns": int(start_ns), "end_ns": int(end_ns),
                "model": None, "provider": None, "bills_usage": False, "remote": False, "session_root": True,
                "attributes": {semconv.SESSION_ROOT: True, "sessionprof.session.synthetic": True},
            })
    # Point orphans and roots at their session row; a parent in another trace keys by the session's trace.
    root_sessions = spans.loc[roots, "session_id"]
    root_ids = root_sessions.map(lambda s: root_of_session[s])
    spans.loc[roots, "trace_id_parent"] = root_ids.map(lambda r: r[0])
    spans.loc[roots, "parent_span_id"] = root_ids.map(lambda r: r[1])
    step_parent = np.concatenate([parent, np.full(len(synthetic), -1, dtype=np.int64)])
    step_parent[np.flatnonzero(roots)] = [row_of_session[s] for s in root_sessions]
    if synthetic:
        spans = pd.concat([spans, pd.DataFrame(synthetic)], ignore_index=True)
    return spans, step_parent


def _encloses_own_session_root(spans: pd.DataFrame, parent: np.ndarray, has_parent: np.ndarray) -> np.ndarray:
    """Mark the ancestors of each declared session root that belong to its session (a request span
    the session was opened in): they stay roots, since hanging them under that session row would
    close a cycle. `parent` is each row's parent position, a span naming itself included."""
    marked = np.zeros(len(spans), dtype=bool)
    declared = np.flatnonzero(spans["session_root"].to_numpy(dtype=bool))
    if not len(declared):
        return marked
    session = spans["session_id"].to_numpy(dtype=object)
    for pos in declared:
        up, seen = pos, {pos}
        while has_parent[up]:
            up = parent[up]
            if up in seen:
                break
            seen.add(up)
            marked[up] |= session[up] == session[pos]
    return marked


def parent_positions(spans: pd.DataFrame, cut: list[int] | None = None) -> np.ndarray:
    """Return, for each row, the row position of its parent, or -1.

    Parent links that close a cycle (malformed input: a span is its own ancestor) are cut, one per
    cycle, at the span that starts first (`cut_cycles`); the rows cut are appended to `cut`.
    """
    trace = spans["trace_id"].to_numpy(dtype=object)
    parent_trace = trace
    if "trace_id_parent" in spans:
        given = spans["trace_id_parent"].to_numpy(dtype=object)
        parent_trace = np.where(pd.isna(given), trace, given)
    span_ids = spans["span_id"].to_numpy(dtype=object)
    parent = _without_self_parents(_find_parents(trace, span_ids, parent_trace,
                                                 spans["parent_span_id"].to_numpy(dtype=object)))
    rows = cut_cycles(parent, spans["start_ns"].to_numpy(), span_ids)
    if cut is not None:
        cut.extend(rows)
    return parent


def cut_cycles(parent: np.ndarray, start_ns: np.ndarray, span_ids: np.ndarray) -> list[int]:
    """Cut every cycle of `parent` links in place: the row of each cycle that starts first (the
    smallest span id among those that start together) loses its parent and becomes a root, so the
    answer is the same in whatever order the rows come. Returns the rows cut, in row order.
    """
    n = len(parent)
    if not n:
        return []
    # Pointer doubling: after k rounds, `up` is each row's 2^k-th ancestor (-1 past a root), and a
    # row reaches a root if any ancestor on the way is known to. Rows that never do sit on a cycle
    # or lead into one; 2^k >= n jumps from any of them lands on a cycle.
    up = parent.copy()
    rooted = parent < 0
    for _ in range(max(1, int(n).bit_length())):
        live = up >= 0
        rooted[live] |= rooted[up[live]]
        up[live] = up[up[live]]
    stuck = np.flatnonzero(~rooted)
    if not len(stuck):
        return []
    on_cycle = np.unique(up[stuck])
    seen = np.zeros(n, dtype=bool)
    cut = []
    for row in on_cycle.tolist():
        if seen[row]:
            continue
        cycle = [row]
        seen[row] = True
        nxt = int(parent[row])
        while nxt != row:
            cycle.append(nxt)
            seen[nxt] = True
            nxt = int(parent[nxt])
        first = min(cycle, key=lambda r: (start_ns[r], str(span_ids[r])))
        parent[first] = -1
        cut.append(first)
    return sorted(cut)


def _find_parents(trace: np.ndarray, span_ids: np.ndarray, parent_trace: np.ndarray,
                  parent_ids: np.ndarray) -> np.ndarray:
    """Position of the row whose (trace, span id) is each row's (parent trace, parent span id), or -1."""
    n = len(span_ids)
    # Span ids are unique in practice: look parents up by span id alone, then keep a match only
    # where the trace agrees: trace:span keys in a dict took 2.5x the time at 300k spans
    # (`benchmarks/techniques.py`).
    positions = _rows_of_unique_ids(span_ids, parent_ids)
    if positions is not None:
        found = positions >= 0
        same = np.zeros(n, dtype=bool)
        same[found] = trace[positions[found]] == parent_trace[found]
        return np.where(same, positions, -1)
    keys = pd.Series(trace, dtype=object) + ":" + pd.Series(span_ids, dtype=object)
    parent_ids = pd.Series(parent_ids, dtype=object).fillna("\0")
    parent_keys = pd.Series(parent_trace, dtype=object) + ":" + parent_ids
    row_of_key = dict(zip(keys, range(n), strict=True))  # a repeated (trace, span): its last row
    return np.array([row_of_key.get(key, -1) for key in parent_keys], dtype=np.int64)


def _rows_of_unique_ids(span_ids: np.ndarray, parent_ids: np.ndarray) -> np.ndarray | None:
    """The row whose span id is each row's parent id (-1: none, or no parent id); None where a
    span id repeats or is missing."""
    own = hex_span_ids(span_ids)
    if own is not None:  # OTLP's ids, as numbers: sorted and searched, not hashed
        present = np.flatnonzero(pd.notna(parent_ids))
        wanted = hex_span_ids(parent_ids[present])
        if wanted is not None:
            found = positions_of(wanted, own)
            if found is None:
                return None
            positions = np.full(len(span_ids), -1, dtype=np.int64)
            positions[present] = found
            return positions
    # Any other ids: one hash pass over the ids and the parent ids together.
    n = len(span_ids)
    codes, uniques = pd.factorize(np.concatenate([span_ids, parent_ids]))
    own_codes, wanted_codes = codes[:n], codes[n:]
    if not (own_codes >= 0).all() or np.bincount(own_codes, minlength=1).max() > 1:
        return None
    row_of = np.full(len(uniques) + 1, -1, dtype=np.int64)  # the extra last entry answers code -1
    row_of[own_codes] = np.arange(n)
    return row_of[wanted_codes]


def _without_self_parents(positions: np.ndarray) -> np.ndarray:
    positions[positions == np.arange(len(positions))] = -1  # a span that names itself as parent
    return positions



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
    return subtree_sums_of([values], parent, depth)[0]


def subtree_sums_of(columns: list[np.ndarray], parent: np.ndarray, depth: np.ndarray) -> list[np.ndarray]:
    """`subtree_sums` of each of several columns over one tree, whose levels are found once."""
    deepest = int(depth.max(initial=0))
    levels = [np.flatnonzero((depth == level) & (parent >= 0)) for level in range(deepest, 0, -1)]
    totals = []
    for values in columns:
        total = np.where(np.isnan(values), 0.0, values).astype(np.float64)
        for rows in levels:
            np.add.at(total, parent[rows], total[rows])
        totals.append(total)
    return totals


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
