"""The fast path for the common shape of OTLP JSON: one line decoded by msgspec straight into typed
records, without a dict per span: through `json.loads` and the general reader, loading 300k spans
took 2.3x the CPU time (`benchmarks/techniques.py`).

Only a line in the canonical form takes this path: `resourceSpans` > `scopeSpans` > `spans`,
camelCase names, ids in lowercase hex of the right length. Values are converted exactly as the
general reader converts them. Any other line gets `None` here and goes to `otlp.records_of`,
which accepts every variant; the answers are the same either way (tests/readers/test_fast_paths.py).
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec
from msgspec import UNSET, Struct, UnsetType

from profiler.traces.readers.otlp import _HEX_DIGITS, MAX_NS, _nanos, decode_any_value, int_value, status_of_code
from profiler.traces.span_table import SpanBatch

_intern = sys.intern
_HEX_BYTES = _HEX_DIGITS.encode("ascii")


class _AnyValue(Struct, gc=False):
    stringValue: str | UnsetType = UNSET
    intValue: str | int | UnsetType = UNSET  # int64: a string in JSON
    boolValue: Any = UNSET
    doubleValue: Any = UNSET
    arrayValue: Any = UNSET
    kvlistValue: Any = UNSET
    bytesValue: Any = UNSET


_OTHER_VALUES = ("boolValue", "doubleValue", "arrayValue", "kvlistValue", "bytesValue")


class _KeyValue(Struct, gc=False):
    key: str
    value: _AnyValue | None = None


class _Status(Struct, gc=False):
    code: Any = 0


class _Span(Struct, gc=False):
    traceId: str
    spanId: str
    startTimeUnixNano: str | int
    name: str = ""
    endTimeUnixNano: str | int | None = None
    parentSpanId: str | None = None
    attributes: list[_KeyValue] | None = None
    status: _Status | None = None


class _ScopeSpans(Struct, gc=False):
    spans: list[_Span] | None = None


class _Resource(Struct, gc=False):
    attributes: list[_KeyValue] | None = None


class _ResourceSpans(Struct, gc=False):
    scopeSpans: list[_ScopeSpans]
    resource: _Resource | None = None


class _TracesData(Struct, gc=False):
    resourceSpans: list[_ResourceSpans]


_decode = msgspec.json.Decoder(_TracesData).decode


def batch_of_line(line: bytes) -> SpanBatch | None:
    """Decode one line of OTLP JSON (the file's bytes) in the canonical form; None for any other
    line, which the general reader then reads. Bad UTF-8 in a value read here declines the line
    too; in a field not read here it is skipped unseen, as the general reader drops that field."""
    try:
        document = _decode(line)
    except msgspec.DecodeError:
        return None
    batch = SpanBatch.of()
    for resource_spans in document.resourceSpans:
        resource = _attributes(resource_spans.resource.attributes or []) if resource_spans.resource else {}
        for scope_spans in resource_spans.scopeSpans:
            if scope_spans.spans and not _add_spans(batch, scope_spans.spans, resource):
                return None
    return batch


def _add_spans(batch: SpanBatch, spans: list[_Span], resource: dict[str, Any]) -> bool:
    """Add the spans of one scope to `batch`, a field at a time; False (nothing added) where a
    span is not in the canonical form."""
    trace_ids = [span.traceId for span in spans]
    span_ids = [span.spanId for span in spans]
    parents = [span.parentSpanId or None for span in spans]
    present = [parent for parent in parents if parent is not None]
    # Lowercase hex of the right length, checked for the whole scope at once.
    if ({len(t) for t in trace_ids} != {32} or {len(s) for s in span_ids} != {16}
            or (present and {len(p) for p in present} != {16})
            or not _all_hex("".join(trace_ids) + "".join(span_ids) + "".join(present))):
        return False
    starts = _times([span.startTimeUnixNano for span in spans])
    ends = _times([span.endTimeUnixNano for span in spans])
    keep = None
    if None in starts:  # no usable start time: the general reader skips such a span too
        keep = [i for i, start in enumerate(starts) if start is not None]
        spans, starts, ends = [spans[i] for i in keep], [starts[i] for i in keep], [ends[i] for i in keep]
        trace_ids, span_ids, parents = (
            [column[i] for i in keep] for column in (trace_ids, span_ids, parents))
    batch.trace_id.extend(map(_intern, trace_ids))
    batch.span_id.extend(span_ids)
    batch.parent_span_id.extend(parents)
    batch.name.extend([_intern(span.name) for span in spans])
    batch.start_ns.extend(starts)
    batch.end_ns.extend(ends)
    # No status reads as code 0, unset.
    codes = [span.status.code if span.status is not None else 0 for span in spans]
    batch.status.extend(map(status_of_code, codes))
    batch.attrs.extend([_attributes(span.attributes) if span.attributes else {} for span in spans])
    batch.resource.extend([resource] * len(spans))
    return True


def _all_hex(text: str) -> bool:
    """Whether every character is a lowercase hex digit (deleting them all leaves nothing)."""
    return text.isascii() and not text.encode("ascii").translate(None, _HEX_BYTES)


def _times(values: list[str | int | None]) -> list[int | None]:
    """Nanosecond times as `otlp._nanos` reads them (None: absent or unusable), a scope at a time."""
    try:
        times = list(map(int, values))  # the common case: every one present, in range
        if min(times) > 0 and max(times) <= MAX_NS:
            return times
    except (TypeError, ValueError, OverflowError):
        pass
    return [_nanos(value) if value is not None else None for value in values]


def _attributes(items: list[_KeyValue]) -> dict[str, Any]:
    return {_intern(item.key): value.stringValue
            if (value := item.value) is not None and value.stringValue is not UNSET else _value(value)
            for item in items}


def _value(value: _AnyValue | None) -> Any:
    if value is None:
        return None
    if value.intValue is not UNSET:
        return int_value(value.intValue)
    return decode_any_value({name: getattr(value, name) for name in _OTHER_VALUES
                             if getattr(value, name) is not UNSET})
