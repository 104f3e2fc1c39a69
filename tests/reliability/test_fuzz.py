"""Property-based fuzzing of every reader and of the config file: any input either loads or fails with
our one error type and a one-line message. Thousands of cases per CI run."""

from __future__ import annotations

import gzip
import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import profiler
from profiler.errors import ConfigError, TraceFormatError
from profiler.pricing.prices import load_prices

pytestmark = pytest.mark.slow  # long property, fuzz or real-time runs: -m 'not slow' skips them

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
_dir = Path(tempfile.mkdtemp(prefix="sessionprof-fuzz-"))

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                    st.text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                           max_leaves=20)
hex_ids = st.one_of(st.text("0123456789abcdefABCDEF", min_size=0, max_size=34), st.integers(), st.none())
any_values = st.fixed_dictionaries({}, optional={
    "stringValue": st.text(max_size=10), "intValue": st.one_of(st.text(max_size=5), st.integers()),
    "doubleValue": st.one_of(st.floats(), st.text(max_size=3)), "boolValue": st.booleans(),
    "arrayValue": st.fixed_dictionaries({"values": st.lists(st.just({"stringValue": "x"}), max_size=2)}),
})
attribute_keys = st.sampled_from(["gen_ai.operation.name", "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens",
                                  "gen_ai.request.model", "gen_ai.conversation.id", "gen_ai.provider.name",
                                  "gen_ai.usage.cache_read.input_tokens", "openinference.span.kind", "x"])
otlp_spans = st.fixed_dictionaries({
    "traceId": hex_ids, "spanId": hex_ids,
}, optional={
    "parentSpanId": hex_ids, "name": st.one_of(st.text(max_size=12), st.integers()),
    "startTimeUnixNano": st.one_of(st.integers(-5, 2**64), st.text(max_size=20)),
    "endTimeUnixNano": st.one_of(st.integers(-5, 2**64), st.text(max_size=20), st.none()),
    "kind": st.one_of(st.integers(), st.text(max_size=20)),
    "status": st.one_of(st.fixed_dictionaries({"code": st.one_of(st.integers(), st.text(max_size=18))}), scalars),
    "attributes": st.one_of(st.lists(st.fixed_dictionaries({"key": attribute_keys, "value": any_values}),
                                     max_size=6), scalars),
})
otlp_documents = st.fixed_dictionaries({"resourceSpans": st.lists(st.fixed_dictionaries({
    "scopeSpans": st.lists(st.fixed_dictionaries({"spans": st.lists(otlp_spans, max_size=5)}), max_size=2),
}, optional={"resource": st.one_of(json_values, st.just({"attributes": []}))}), max_size=3)})


def _load_or_format_error(data: bytes, name: str = "trace.json") -> None:
    path = _dir / name
    path.write_bytes(data)
    try:
        run = profiler.load(path)
    except TraceFormatError as err:
        message = str(err)
        assert "\n" not in message and str(path) in message
        return
    profiler.attribute(run)


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _load_or_format_error(data)


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=4))
def test_random_json_values_as_lines(values: list[Any]) -> None:
    _load_or_format_error("\n".join(json.dumps(v) for v in values).encode())


@FUZZ
@given(st.lists(otlp_documents, min_size=1, max_size=3), st.booleans(), st.booleans())
def test_otlp_shaped_documents(documents: list[Any], pretty: bool, compressed: bool) -> None:
    text = "\n".join(json.dumps(d, indent=2 if pretty else None) for d in documents)
    data = gzip.compress(text.encode()) if compressed else text.encode()
    _load_or_format_error(data, "trace.json.gz" if compressed else "trace.json")


@FUZZ
@given(st.lists(otlp_documents, min_size=1, max_size=2), st.integers(0, 400))
def test_truncated_otlp_files(documents: list[Any], cut: int) -> None:
    text = "\n".join(json.dumps(d) for d in documents).encode()
    _load_or_format_error(text[: max(0, len(text) - cut)])


samples_rows = st.lists(st.tuples(st.one_of(st.integers(0, 2**62), st.text(max_size=4)), st.text("abc-", max_size=4),
                                  *(st.one_of(st.floats(), st.none(), st.text(max_size=3)) for _ in range(5))),
                        max_size=8)


@FUZZ
@given(samples_rows, st.integers(0, 30))
def test_samples_files(rows: list[tuple[Any, ...]], cut: int) -> None:
    header = "t_ns,gpu,energy_j,power_w,mem_used_bytes,proc_mem_bytes,util_pct\n"
    body = "".join(",".join("" if v is None else str(v) for v in row) + "\n" for row in rows)
    text = (header + body)[: max(0, len(header + body) - cut)]
    (_dir / "samples.csv").write_text(text)
    trace = _dir / "empty.jsonl"
    trace.write_text("")
    try:
        run = profiler.load(trace, gpu_samples=_dir / "samples.csv")
    except TraceFormatError as err:
        assert "\n" not in str(err)
        return
    profiler.attribute(run)


smi_cells = st.one_of(st.sampled_from(["[N/A]", "", "12.5 W", "2048 MiB", "35 %", "GPU-abc", "garbage"]),
                      st.text(max_size=6), st.floats(allow_nan=False).map(str))
smi_rows = st.lists(st.tuples(st.one_of(st.just("2026/11/21 10:00:00.000"), st.text(max_size=22)),
                              smi_cells, smi_cells, smi_cells, smi_cells), max_size=6)


@FUZZ
@given(st.booleans(), smi_rows)
def test_nvidia_smi_csv(header: bool, rows: list[tuple[str, ...]]) -> None:
    head = "timestamp, uuid, power.draw [W], memory.used [MiB], utilization.gpu [%]\n" if header else ""
    (_dir / "smi.csv").write_text(head + "".join(", ".join(r) + "\n" for r in rows))
    trace = _dir / "empty.jsonl"
    trace.write_text("")
    try:
        run = profiler.load(trace, gpu_samples=_dir / "smi.csv", tz="UTC")
    except TraceFormatError as err:
        assert "\n" not in str(err)
        return
    profiler.attribute(run)


toml_values = st.one_of(st.integers(-5, 10**6).map(str), st.floats(allow_nan=False, allow_infinity=False).map(repr),
                        st.text(max_size=8).map(json.dumps), st.sampled_from(["true", "[1, 2]", "{a = 1}", "nan"]))


@FUZZ
@given(st.lists(st.tuples(st.sampled_from(["gpu_usd_per_hour", "energy_usd_per_kwh", "pue", "carbon_g_per_kwh",
                                           "region", "unknown_key"]), toml_values), max_size=4),
       st.sampled_from(["[prices]\n", "", "prices = 3\n", "[prices\n"]))
def test_config_files(entries: list[tuple[str, str]], header: str) -> None:
    seen: set[str] = set()
    lines = [f"{k} = {v}" for k, v in entries if not (k in seen or seen.add(k))]
    path = _dir / "sessionprof.toml"
    path.write_text(header + "\n".join(lines) + "\n")
    try:
        load_prices(config=path, environ={})
    except ConfigError as err:
        assert "\n" not in str(err)
