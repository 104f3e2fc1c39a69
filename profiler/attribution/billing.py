"""Which spans' token usage is billed, so that no model call is counted twice.

A model call's usage is billed on its own span. Frameworks also repeat their children's sum on the
agent or workflow span above them, and some parent the calls beside that span rather than beneath it;
such a summary counts only where no inference span already does. And when two instrumentations
describe one call (an SDK's own span and an instrumentor's around it), one span counts and the other
is kept as its duplicate (`duplicate_of`), unbilled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from profiler.attribution.tree import depths, parent_positions, subtree_sums
from profiler.model import INFERENCE_KINDS, TOKEN_COLUMNS
from profiler.traces.genai import model_keys

#: Parent links followed upwards at most (a trace whose parents form a cycle must not hang us).
_MAX_CLIMB = 10_000


@dataclass(frozen=True)
class Billing:
    """What `decide_billing` found, one entry per span row."""

    bills: pd.Series
    """Whether the span's usage is counted."""
    duplicate_of: pd.Series
    """For a model-call span that describes the same call as another: the span id of the one that
    counts; None elsewhere."""


def mark_billable(spans: pd.DataFrame, parent_pos: np.ndarray | None = None) -> pd.Series:
    """Decide which spans' usage is counted: `decide_billing(spans, parent_pos).bills`."""
    return decide_billing(spans, parent_pos).bills


def decide_billing(spans: pd.DataFrame, parent_pos: np.ndarray | None = None) -> Billing:
    """Decide which spans' usage is counted, so that neither aggregates nor a second description of
    the same call double the bill.

    Inference spans count, but for duplicates (see `find_duplicates`). Another span's usage (an
    agent repeating its children's sum) counts only when no ancestor already counted and no
    inference span is beneath it, nor beside it within its time window (Microsoft Agent Framework
    parents the `chat` spans to the agent's parent, not to `invoke_agent`, so the calls it sums
    are its siblings).

    Args:
        spans: the span table (`Run.spans`).
        parent_pos: `parent_positions(spans)`, where the caller has it already.
    """
    has_usage = spans[list(TOKEN_COLUMNS)].notna().any(axis=1).to_numpy()
    inference = spans["kind"].isin(INFERENCE_KINDS).to_numpy()
    calls = inference & has_usage
    duplicate_of = np.full(len(spans), None, dtype=object)
    if np.count_nonzero(calls) > 1 or np.any(has_usage & ~inference):
        parent_pos = parent_positions(spans) if parent_pos is None else parent_pos
    bills = calls.copy()
    if np.any(has_usage & ~inference):
        _bill_lone_aggregates(spans, bills, has_usage, inference, parent_pos)
    if np.count_nonzero(calls) > 1:
        duplicate_of = find_duplicates(spans, calls, parent_pos)
        bills[pd.notna(duplicate_of)] = False
    return Billing(pd.Series(bills, index=spans.index),
                   pd.Series(duplicate_of, index=spans.index, dtype=object))


def _bill_lone_aggregates(spans: pd.DataFrame, bills: np.ndarray, has_usage: np.ndarray, inference: np.ndarray,
                          parent_pos: np.ndarray) -> None:
    """Set `bills` for the spans with usage that are not inference spans (aggregates), in place."""
    depth = depths(parent_pos)
    flag = inference.astype(np.float64)
    below_inference = (subtree_sums(flag, parent_pos, depth) - flag) > 0
    beside = _InferenceInWindow(spans, inference, parent_pos)
    candidates = np.flatnonzero(has_usage & ~inference)
    for pos in candidates[np.argsort(depth[candidates], kind="stable")]:
        if below_inference[pos] or beside.found(pos):
            continue
        up, counted_above, steps = parent_pos[pos], False, 0
        while up >= 0 and steps < _MAX_CLIMB:
            if bills[up]:
                counted_above = True
                break
            up, steps = parent_pos[up], steps + 1
        bills[pos] = not counted_above


def find_duplicates(spans: pd.DataFrame, calls: np.ndarray, parent_pos: np.ndarray) -> np.ndarray:
    """Find the model-call spans that describe a call another span already describes.

    Two spans of `calls` describe one call when they name the same model (`genai.model_keys`) and
    either one is an ancestor of the other (other spans may lie between) and every token count
    that both report is no larger on the inner one than on the outer; or they are siblings (the
    same parent, or roots of the same session), one's time window lies inside the other's, their
    names differ (two instrumentations: one never names its concurrent calls differently), they
    report the same input and output counts and no other count that both report differs, and
    neither pairs so with any other sibling (concurrent calls with one answer are not guessed at).
    The second shape is OpenLLMetry's: its span around the SDK method is never made current, so the
    span that the SDK itself starts inside it is a sibling, not a child. A third shape pairs alike: a
    call at the top of a session whose window lies inside a model call deeper in the same session. That is
    OpenInference's LangChain instrumentation: its spans are never made current either, so the
    OpenAI instrumentor's span of the same call starts a trace of its own.

    Of such a pair the span that reports more of the five token counts is kept, and on a tie the
    inner one. The fuller description prices the call more exactly: pydantic-ai's own `chat` span
    reports cache reads where the OpenAI instrumentor's span inside it did not, which billed that
    call 34% high. Otherwise the inner span is closest to the wire (the SDK's span around the HTTP
    request), and where an outer span wraps retries, each attempt inside it stays a call of its own.
    The choice depends only on the spans, never on their order in the file.

    Returns:
        Per row, the span id of the span that counts where the row is a duplicate, else None.
    """
    duplicate_of = np.full(len(spans), None, dtype=object)
    tokens = spans[list(TOKEN_COLUMNS)].to_numpy(dtype=np.float64)
    nested = _contained_usage(tokens, _call_pairs(calls, parent_pos))
    siblings = _same_usage(tokens, np.concatenate([_sibling_pairs(spans, calls, parent_pos, tokens),
                                                   _stray_root_pairs(spans, calls, parent_pos, tokens)]))
    names = spans["name"].to_numpy(dtype=object)
    siblings = _one_to_one(_same_model(spans, siblings[names[siblings[:, 0]] != names[siblings[:, 1]]]))
    pairs = np.concatenate([_same_model(spans, nested), siblings])
    if not len(pairs):
        return duplicate_of
    rank = _preference(spans, np.unique(pairs), parent_pos, np.count_nonzero(~np.isnan(tokens), axis=1))
    first_kept = rank[pairs[:, 0]] < rank[pairs[:, 1]]
    lost = np.where(first_kept, pairs[:, 1], pairs[:, 0])
    won = np.where(first_kept, pairs[:, 0], pairs[:, 1])
    order = np.lexsort((rank[won], lost))  # each losing span's most preferred partner first
    lost, won = lost[order], won[order]
    firsts = np.concatenate([[True], lost[1:] != lost[:-1]])
    kept_by = np.arange(len(spans))
    kept_by[lost[firsts]] = won[firsts]
    # A partner that is a duplicate too: follow to the span that counts (ranks fall, so it ends).
    while not np.array_equal(kept_by, kept_by[kept_by]):
        kept_by = kept_by[kept_by]
    losers = lost[firsts]
    duplicate_of[losers] = spans["span_id"].to_numpy(dtype=object)[kept_by[losers]]
    return duplicate_of


def _call_pairs(calls: np.ndarray, parent_pos: np.ndarray) -> np.ndarray:
    """Every (model call, model call above it) pair of rows, climbing all the calls a level at a time."""
    rows = np.flatnonzero(calls)
    current = parent_pos[rows]
    found = [np.zeros((0, 2), dtype=np.int64)]
    for _ in range(_MAX_CLIMB):
        live = (current >= 0) & (current != rows)  # a cycle leads a row back to itself
        rows, current = rows[live], current[live]
        if not len(rows):
            break
        hit = calls[current]
        found.append(np.column_stack([rows[hit], current[hit]]))
        current = parent_pos[current]
    return np.concatenate(found)


def _sibling_pairs(spans: pd.DataFrame, calls: np.ndarray, parent_pos: np.ndarray,
                   tokens: np.ndarray) -> np.ndarray:
    """Every (model call, sibling call whose window holds it) pair among siblings with the same input
    and output counts (two with one window: once). Sorted by start, the longer first, only a call
    that some earlier sibling outlasts is looked at, and against its earlier siblings only."""
    rows = np.flatnonzero(calls & ~np.isnan(tokens[:, 0]) & ~np.isnan(tokens[:, 1]))
    if len(rows) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    start = spans["start_ns"].to_numpy(dtype=np.int64)[rows]
    end = spans["end_ns"].to_numpy(dtype=np.int64)[rows]
    # Siblings: one parent, or (roots) one session, numbered below every parent position.
    parent = parent_pos[rows].astype(np.int64)
    roots = parent < 0
    if roots.any():
        parent[roots] = -1 - pd.factorize(spans["session_id"].to_numpy(dtype=object)[rows[roots]])[0]
    ids = pd.factorize(spans["span_id"].to_numpy(dtype=object)[rows].astype(str), sort=True)[0]
    order = np.lexsort((ids, -end, start, tokens[rows, 1], tokens[rows, 0], parent))
    rows, start, end = rows[order], start[order], end[order]
    key = np.column_stack([parent[order], tokens[rows, 0], tokens[rows, 1]])
    first = np.concatenate([[True], np.any(key[1:] != key[:-1], axis=1)])
    group_start = np.maximum.accumulate(np.where(first, np.arange(len(rows)), 0))
    latest = pd.Series(end).groupby(np.cumsum(first)).cummax().to_numpy()  # the latest end so far, in the group
    found = []
    for k in (np.flatnonzero(~first[1:] & (latest[:-1] >= end[1:])) + 1).tolist():
        found.extend((rows[k], rows[j]) for j in range(group_start[k], k) if end[j] >= end[k])
    return np.array(found, dtype=np.int64).reshape(-1, 2)


def _stray_root_pairs(spans: pd.DataFrame, calls: np.ndarray, parent_pos: np.ndarray,
                      tokens: np.ndarray) -> np.ndarray:
    """Every (model call at the top of its session, model call deeper in the same session whose window
    holds it) pair with the same input and output counts. At the top: no parent, or the session's own
    span as parent (`profiler.session()`). Joined on (session, input, output), so only calls that
    could be one call are ever compared."""
    usable = calls & ~np.isnan(tokens[:, 0]) & ~np.isnan(tokens[:, 1])
    top = parent_pos < 0
    below = np.flatnonzero(~top)
    top[below] = spans["session_root"].to_numpy(dtype=bool)[parent_pos[below]]
    roots, others = np.flatnonzero(usable & top), np.flatnonzero(usable & ~top)
    if not len(roots) or not len(others):
        return np.zeros((0, 2), dtype=np.int64)
    session = spans["session_id"].to_numpy(dtype=object)

    def side(rows: np.ndarray, name: str) -> pd.DataFrame:
        return pd.DataFrame({name: rows, "session": session[rows], "input": tokens[rows, 0],
                             "output": tokens[rows, 1]})

    joined = side(roots, "inner").merge(side(others, "outer"), on=["session", "input", "output"])
    inner, outer = joined["inner"].to_numpy(dtype=np.int64), joined["outer"].to_numpy(dtype=np.int64)
    start = spans["start_ns"].to_numpy(dtype=np.int64)
    end = spans["end_ns"].to_numpy(dtype=np.int64)
    held = (start[outer] <= start[inner]) & (end[inner] <= end[outer])
    return np.column_stack([inner[held], outer[held]])


def _one_to_one(pairs: np.ndarray) -> np.ndarray:
    """The pairs whose two spans have no other partner: a span of one instrumentation describes one
    call of the other, so a sibling that two could match (concurrent calls with one answer) is
    left alone rather than guessed."""
    partners = np.bincount(pairs.ravel(), minlength=int(pairs.max(initial=-1)) + 1)
    return pairs[(partners[pairs[:, 0]] == 1) & (partners[pairs[:, 1]] == 1)]


def _contained_usage(tokens: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The (inner, outer) pairs that share a token count, each shared count no larger on the inner."""
    a, b = tokens[pairs[:, 0]], tokens[pairs[:, 1]]
    both = ~np.isnan(a) & ~np.isnan(b)
    return pairs[both.any(axis=1) & np.all(~both | (a <= b), axis=1)]


def _same_usage(tokens: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """The pairs whose every token count that both report is equal."""
    a, b = tokens[pairs[:, 0]], tokens[pairs[:, 1]]
    both = ~np.isnan(a) & ~np.isnan(b)
    return pairs[np.all(~both | (a == b), axis=1)]


def _same_model(spans: pd.DataFrame, pairs: np.ndarray) -> np.ndarray:
    """The pairs whose spans name the same model: the same `model` (most pairs), else a name in
    common among every model name either span gives (`genai.model_keys`)."""
    if not len(pairs):
        return pairs
    models = spans["model"].to_numpy(dtype=object)
    outer = models[pairs[:, 1]]
    same = (models[pairs[:, 0]] == outer) & pd.notna(outer)
    rest = np.flatnonzero(~same)
    if len(rest):
        attributes = spans["attributes"].to_numpy(dtype=object)
        keys: dict[int, frozenset[str]] = {}

        def keys_of(pos: int) -> frozenset[str]:
            if pos not in keys:
                attrs = attributes[pos]
                keys[pos] = model_keys(attrs if isinstance(attrs, dict) else {}, models[pos])
            return keys[pos]

        same[rest] = [bool(keys_of(a) & keys_of(b)) for a, b in pairs[rest].tolist()]
    return pairs[same]


def _preference(spans: pd.DataFrame, rows: np.ndarray, parent_pos: np.ndarray, reported: np.ndarray) -> np.ndarray:
    """Rank the rows (0: kept first; every other row ranks last): more token counts reported, then
    deeper, then the inner of two siblings (later start, then earlier end), then by span id."""
    ids = pd.factorize(spans["span_id"].to_numpy(dtype=object)[rows].astype(str), sort=True)[0]
    order = np.lexsort((ids, spans["end_ns"].to_numpy(dtype=np.int64)[rows],
                        -spans["start_ns"].to_numpy(dtype=np.int64)[rows], -depths(parent_pos)[rows],
                        -reported[rows]))
    rank = np.full(len(spans), len(rows), dtype=np.int64)
    rank[rows[order]] = np.arange(len(rows))
    return rank


class _InferenceInWindow:
    """Finds an inference span of the same trace, inside a span's time window, that descends from
    that span's parent (anywhere in the trace when the span is a root)."""

    def __init__(self, spans: pd.DataFrame, inference: np.ndarray, parent_pos: np.ndarray) -> None:
        self.parent_pos = parent_pos
        self.trace = spans["trace_id"].to_numpy()
        self.start = spans["start_ns"].to_numpy(dtype=np.int64)
        self.end = spans["end_ns"].to_numpy(dtype=np.int64)
        self.inference = np.flatnonzero(inference)
        self._by_trace: dict[Any, tuple[np.ndarray, np.ndarray]] | None = None

    def _groups(self) -> dict[Any, tuple[np.ndarray, np.ndarray]]:
        if self._by_trace is None:
            rows = self.inference
            order = rows[np.lexsort((self.start[rows], self.trace[rows].astype(str)))]
            traces = self.trace[order]
            self._by_trace = {}
            if len(order):
                cuts = np.flatnonzero(traces[1:] != traces[:-1]) + 1
                for chunk in np.split(order, cuts):
                    self._by_trace[self.trace[chunk[0]]] = (self.start[chunk], chunk)
        return self._by_trace

    def found(self, pos: int) -> bool:
        group = self._groups().get(self.trace[pos])
        if group is None:
            return False
        starts, members = group
        lo = np.searchsorted(starts, self.start[pos], side="left")
        hi = np.searchsorted(starts, self.end[pos], side="right")
        parent = self.parent_pos[pos]
        for member in members[lo:hi]:
            if self.end[member] > self.end[pos] or member == pos:
                continue
            if parent < 0:
                return True
            up, steps = self.parent_pos[member], 0
            while up >= 0 and steps < _MAX_CLIMB:
                if up == parent:
                    return True
                up, steps = self.parent_pos[up], steps + 1
        return False
