"""Whatever a Jaeger or console file holds, reading it gives spans or a TraceFormatError, never a crash."""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import profiler
from profiler.errors import TraceFormatError

_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                     st.text(max_size=8), st.sampled_from(["0x1f", "AB" * 16, "2026-03-01T20:47:18Z", "CHILD_OF",
                                                           "int64", "ERROR", "9999-12-31T23:59:59.999Z"]))
_ANY = st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=8)


def _maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, _ANY)


_TAG = st.fixed_dictionaries({"key": _maybe(st.sampled_from(["gen_ai.usage.input_tokens", "error", "x"])),
                              "type": _maybe(st.sampled_from(["int64", "bool", "float64", "string"])),
                              "value": _ANY})
_JAEGER_SPAN = st.fixed_dictionaries({
    "traceID": _maybe(st.just("ab" * 16)), "spanID": _maybe(st.just("cd" * 8)),
    "operationName": _ANY, "startTime": _maybe(st.integers(0, 2**64)), "duration": _ANY,
    "references": _maybe(st.lists(st.fixed_dictionaries({"refType": _ANY, "spanID": _ANY, "traceID": _ANY}),
                                  max_size=2)),
    "tags": _maybe(st.lists(_TAG, max_size=3)), "processID": _ANY, "process": _ANY})
_JAEGER = st.one_of(
    st.fixed_dictionaries({"data": _maybe(st.lists(st.fixed_dictionaries({
        "traceID": _ANY, "spans": _maybe(st.lists(_JAEGER_SPAN, max_size=3)), "processes": _ANY}), max_size=2)),
        "errors": _ANY}),
    _JAEGER_SPAN)
_CONSOLE = st.fixed_dictionaries({
    "name": _ANY, "context": _maybe(st.fixed_dictionaries({"trace_id": _maybe(st.just("0x" + "ab" * 16)),
                                                           "span_id": _maybe(st.just("0x" + "cd" * 8))})),
    "parent_id": _ANY, "start_time": _ANY, "end_time": _ANY, "status": _ANY, "attributes": _ANY,
    "resource": _ANY})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(_JAEGER, _CONSOLE), min_size=1, max_size=4))
def test_random_dialect_values_read_or_fail_cleanly(values: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        path.write_text("\n".join(json.dumps(v) for v in values) + "\n")
        try:
            run = profiler.load(path)
        except TraceFormatError as err:
            assert "\n" not in str(err)
            return
        profiler.attribute(run)


_ABSURD = st.one_of(st.floats(), st.integers(-(2**80), 2**80), st.sampled_from(["inf", "NaN", "1e30", "-1"]))
_TOKEN_TAG = st.fixed_dictionaries({"key": st.sampled_from(["gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens"]),
                                    "type": st.sampled_from(["int64", "float64", "string"]), "value": _ABSURD})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(_JAEGER, _CONSOLE), min_size=1, max_size=4), tags=st.lists(_TOKEN_TAG, max_size=3),
       indent=st.sampled_from([None, 0, 2]), cut=st.integers(0, 10_000),
       parents=st.lists(st.integers(0, 3), max_size=4))
def test_dialects_with_absurd_counts_cycles_and_a_line_cut_short(values: list[Any], tags: list[Any], indent: int | None,
                                                                 cut: int, parents: list[int]) -> None:
    # Jaeger spans that reference each other in a ring, token tags that cannot be real, any indent,
    # and one line of the file cut short (as a full disk leaves it): spans or a one-line error.
    ring = [{"traceID": "ab" * 16, "spanID": f"{i + 1:016x}", "operationName": "chat gpt-4o", "startTime": 1_700_000,
             "duration": 10, "tags": tags, "references": [{"refType": "CHILD_OF", "traceID": "ab" * 16,
                                                           "spanID": f"{p + 1:016x}"}]}
            for i, p in enumerate(parents)]
    lines = [json.dumps(v, indent=indent) for v in [*values, {"data": [{"traceID": "ab" * 16, "spans": ring}]}]]
    text = "\n".join(lines) + "\n"
    middle = cut % max(1, len(text) - 1)
    if "\n" in text[middle:]:
        end = text.index("\n", middle)
        text = text[:middle] + text[end:]  # the rest of that line lost; the next write on a new line
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.json"
        path.write_text(text)
        try:
            run = profiler.load(path)
        except TraceFormatError as err:
            assert "\n" not in str(err)
            return
        ledger = profiler.attribute(run)
        for name in ("input_tokens", "output_tokens", "total_cost_usd"):
            assert ledger.totals[name] is None or math.isfinite(ledger.totals[name])
        assert (ledger.steps["self_input_tokens"].fillna(0) <= 1e9).all()
