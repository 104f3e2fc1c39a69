"""Whatever a Jaeger or console file holds, reading it gives spans or a TraceFormatError, never a crash."""

from __future__ import annotations

import json
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
