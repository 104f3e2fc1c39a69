"""JSON: one object `{"run", "totals", "steps", "checks"}` (schema in docs/run-directory.md).

The document is indented, except that each step is one line: the same JSON as
`Ledger.to_json()`. A chunk of rows at a time, its columns become Python values a column at a
time, each row a struct, and msgspec encodes the rows: a million-step ledger renders in seconds
(the standard library's encoder takes ten times as long). A column that holds one value throughout
the chunk is written as that value's JSON, once. NaN (not measured, not priced) is written as null.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np
import pandas as pd

from profiler.attribution.ledger import Ledger, _json_tree, _json_value

_CHUNK = 20_000  # rows made into Python values at a time: each column's cost is paid once a chunk
_PIECE = 128  # rows encoded into one piece (about 200 kB), not a chunk's 30 MB held as bytes, text and output
_encode = msgspec.json.Encoder(enc_hook=lambda value: _to_json(value)).encode
_PLACEHOLDER = "\0sessionprof-steps\0"


def render_json(ledger: Ledger, *, by: str = "step", top: int | None = None) -> str:
    """Render the ledger as JSON; with `by`, `steps` is replaced by `groups`."""
    return "".join(json_parts(ledger, by=by, top=top))


def json_parts(ledger: Ledger, *, by: str = "step", top: int | None = None) -> Iterator[str]:
    """The JSON document of `render_json` as consecutive pieces, a chunk of steps at a time, so a
    writer need never hold the whole document (1.5 GB at a million steps)."""
    for part in json_byte_parts(ledger, by=by, top=top):
        yield part.decode()


def json_byte_parts(ledger: Ledger, *, by: str = "step", top: int | None = None) -> Iterator[bytes]:
    """`json_parts` in UTF-8, for a writer of bytes: the steps as the encoder wrote them, not
    decoded into text to be encoded again (at a million steps, 1.5 GB twice over)."""
    head = {"run": _json_tree(ledger.run), "totals": _json_tree(ledger.totals)}
    if by != "step":
        grouped = ledger.group_by(by)
        groups = grouped.head(top) if top else grouped
        document = {**head, "checks": _json_tree(ledger.checks),
                    "groups": _json_tree(groups.to_dict("records"))}
        yield (json.dumps(document, indent=2, default=str) + "\n").encode()
        return
    steps = ledger.steps.drop(columns=["bills_usage"], errors="ignore")
    if top is not None:
        rank = -steps["self_total_cost_usd"].fillna(0.0).to_numpy()
        steps = steps.iloc[np.argsort(rank, kind="stable")[:top]]
    document = {**head, "steps": _PLACEHOLDER, "checks": _json_tree(ledger.checks)}
    before, after = json.dumps(document, indent=2, default=str).split(json.dumps(_PLACEHOLDER), 1)
    if not len(steps):
        yield (before + "[]" + after + "\n").encode()
        return
    yield (before + "[\n    ").encode()
    for count, chunk in enumerate(_step_chunks(steps)):
        if count:
            yield b",\n    "
        yield chunk
    yield ("\n  ]" + after + "\n").encode()


def _step_chunks(steps: pd.DataFrame) -> Iterator[bytes]:
    """The steps as JSON objects, one per line, a piece of lines at a time (UTF-8)."""
    names = [str(name) for name in steps.columns]
    structs: dict[tuple[str, ...], type] = {}
    for start in range(0, len(steps), _CHUNK):
        chunk = steps.iloc[start:start + _CHUNK]
        values = [_column_values(chunk[name]) for name in chunk.columns]
        fields, columns = _splice_constant_runs(names, values, len(chunk))
        step = structs.get(fields)
        if step is None:
            step = structs[fields] = msgspec.defstruct("Step", [(name, Any) for name in fields], gc=False)
        rows = list(map(step, *columns))
        for first in range(0, len(rows), _PIECE):
            yield b",\n    ".join(map(_encode, rows[first:first + _PIECE]))


def _splice_constant_runs(names: list[str], columns: list[list[Any] | bytes],
                          rows: int) -> tuple[tuple[str, ...], list[list[Any]]]:
    """The fields and columns that encode a chunk; a column given as bytes holds that JSON value in
    every row. Each run of adjacent such columns (a third of them null where there are no GPU
    samples, others a constant source or a count that stayed 0) becomes its first column alone,
    whose value is the whole run's JSON, `null,"next":0.0,...`, spliced in raw. The text is the
    same; a row encodes one field per run, not one per column (every field in every row took 1.29x
    the CPU time to write the report of 300k spans: `benchmarks/techniques.py`)."""
    fields: list[str] = []
    kept: list[list[Any]] = []
    run: list[bytes] = []  # the JSON of the constant run being gathered, its first column's value first
    for name, column in zip(names, columns, strict=True):
        constant = isinstance(column, bytes)
        if constant and run:
            run.append(b"," + _encode(name) + b":" + column)
            continue
        if run:
            kept[-1], run = [msgspec.Raw(b"".join(run))] * rows, []
        fields.append(name)
        kept.append([] if constant else column)
        if constant:
            run = [column]
    if run:
        kept[-1] = [msgspec.Raw(b"".join(run))] * rows
    return tuple(fields), kept


def _column_values(column: pd.Series) -> list[Any] | bytes:
    """A column as Python values; where every row holds the same value, that value's JSON instead.
    msgspec writes NaN (a missing float or string) as null itself; `_to_json` turns whatever else
    an object column holds into JSON."""
    if column.dtype.kind in "iubf":
        values = column.to_numpy()
        if values.dtype.kind == "f" and np.isnan(values).all():
            return b"null"  # a quantity nothing measured (no GPU samples: a third of the columns)
        # The same bits, not merely equal values: -0.0 and 0.0 are written differently.
        bits = values.view(f"u{values.itemsize}")
        if (bits == bits[0]).all():
            return _encode(values[0].item())
        return values.tolist()
    if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "python":
        values = column.to_numpy(dtype=object, na_value=None).tolist()  # its own str objects, shared
    elif isinstance(column.dtype, pd.StringDtype):
        # Few distinct texts (a source, a price's model): one Python str each, not one per row.
        codes, texts = pd.factorize(column)
        values = np.append(texts.to_numpy(dtype=object), None)[codes].tolist()  # code -1 (missing): None
    else:
        values = column.tolist()
    first = values[0]
    # Equal texts are written alike (equal numbers need not be: 1, 1.0, True); None is null.
    if first is None or type(first) is str:
        try:
            if values.count(first) == len(values):
                return _encode(first)
        except (TypeError, ValueError):  # pd.NA or an array, which will not say if it is equal
            pass
    return values


def _to_json(value: Any) -> Any:
    if value is pd.NA or value is pd.NaT:
        return None
    converted = _json_value(value)
    return str(converted) if converted is value else converted
