"""Span ids as the 64-bit numbers they spell, where every id is in OTLP's own form.

OTLP JSON and W3C trace context write a span id as 16 lowercase hex digits. Such ids are read
here, a column at a time, into `uint64`s, which numpy sorts and searches without hashing a Python
string per row: the duplicate check at load takes 1/2.5 of the time of pandas' hash table of the
strings (`benchmarks/techniques.py`). An id in any other form (Jaeger's, an upper-case one, a
test's `"a"`) gives None, and callers compare the ids as text as before.
"""

from __future__ import annotations

import numpy as np

_WIDTH = 16
_ALLOWED = b"0123456789abcdef "  # the digits, and the separator: a space, which bytes.fromhex skips


def hex_span_ids(ids: np.ndarray) -> np.ndarray | None:
    """The ids (an object array of str) as `uint64`s, or None unless every id is 16 lowercase hex
    digits. Distinct ids give distinct numbers, so equal numbers mean equal ids."""
    n = len(ids)
    if not n:
        return np.zeros(0, dtype=np.uint64)
    try:
        text = " ".join(ids)  # TypeError: a value that is not a str (None)
        encoded = text.encode("ascii")
    except (TypeError, UnicodeEncodeError):
        return None
    if len(encoded) != (_WIDTH + 1) * n - 1 or encoded.translate(None, _ALLOWED):
        return None  # not n ids of 16 characters, or a character that is no lowercase hex digit
    # One row per id: its 16 digits, then the separator, which must fall in the last column and
    # nowhere else (bytes.fromhex would skip a space inside an id, too).
    grid = np.frombuffer(encoded + b" ", dtype=np.uint8).reshape(n, _WIDTH + 1)
    if (grid[:, _WIDTH] != ord(" ")).any() or encoded.count(b" ") != n - 1:
        return None
    return np.frombuffer(bytes.fromhex(text), dtype=">u8").astype(np.uint64)


def all_distinct(numbers: np.ndarray) -> bool:
    """Whether no number repeats (sorting, not hashing)."""
    return not _repeats(np.sort(numbers))


def positions_of(wanted: np.ndarray, numbers: np.ndarray) -> np.ndarray | None:
    """The position in `numbers` of each of `wanted` (-1: not there), found by sorting and
    searching; None where a number repeats, and a position would be ambiguous."""
    if not len(numbers):
        return np.full(len(wanted), -1, dtype=np.int64)
    order = np.argsort(numbers)  # distinct numbers, where the order is used: no ties to keep stable
    ordered = numbers[order]
    if _repeats(ordered):
        return None
    slot = np.minimum(np.searchsorted(ordered, wanted), len(ordered) - 1)
    return np.where(ordered[slot] == wanted, order[slot], -1)


def _repeats(ordered: np.ndarray) -> bool:
    return bool((ordered[1:] == ordered[:-1]).any())
