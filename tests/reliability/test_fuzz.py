"""Property-based fuzzing of every reader and of the config file: any input either loads or fails with
our one error type and a one-line message, in bounded time and memory. Thousands of cases per CI run,
the shapes that broke the readers before among them: lines cut short mid-file, `indent=0`, deep
nesting, absurd numbers, parent cycles, samples stamped far from the run."""

from __future__ import annotations

import gzip
import json
import math
import resource
import tempfile
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import profiler
from instrumentation.usage import MAX_TOKENS_PER_CALL
from profiler.errors import ConfigError, TraceFormatError
from profiler.pricing.prices import load_prices
from reports import render
from tests.builders import assert_inclusive_is_self_plus_descendants

pytestmark = pytest.mark.slow  # long property, fuzz or real-time runs: -m 'not slow' skips them

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Any one example that takes longer than this hangs (a sample in 2100 took 30 s and 11 GB).
BOUNDED = settings(max_examples=150, deadline=5_000, suppress_health_check=[HealthCheck.too_slow])
#: More address space than the fuzzing itself needs: an input that makes the reader balloon fails
#: with MemoryError here instead of taking the machine's memory.
_MEMORY_HEADROOM_BYTES = 6 << 30


@pytest.fixture(scope="module", autouse=True)
def _bounded_memory() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/statm") as stream:
        in_use = int(stream.read().split()[0]) * resource.getpagesize()
    cap = in_use + _MEMORY_HEADROOM_BYTES
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    """One folder for the module's files, removed at its end."""
    with tempfile.TemporaryDirectory(prefix="sessionprof-fuzz-") as name:
        yield Path(name)

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


def _load_or_format_error(folder: Path, data: bytes, name: str = "trace.json") -> Any:
    path = folder / name
    path.write_bytes(data)
    try:
        run = profiler.load(path)
    except TraceFormatError as err:
        message = str(err)
        assert "\n" not in message and str(path) in message
        return None
    ledger = profiler.attribute(run)
    _assert_sound(ledger)
    return ledger


def _assert_sound(ledger: Any) -> None:
    """What any ledger must be, however bad its input: every figure finite or missing, no count
    beyond what one call can hold, inclusive figures the sum of their parts, and a conservation
    check that either held or says why not."""
    for name in ("input_tokens", "output_tokens", "api_cost_usd", "total_cost_usd", "energy_j"):
        total = ledger.totals.get(name)
        assert total is None or math.isfinite(total), name
    billed = ledger.steps.loc[ledger.steps["bills_usage"], "self_input_tokens"]
    assert (billed.fillna(0) <= MAX_TOKENS_PER_CALL).all()
    # (A span naming itself as its parent is read as having none.)
    steps = ledger.steps.copy()
    steps.loc[steps["parent_span_id"] == steps["span_id"], "parent_span_id"] = None
    assert_inclusive_is_self_plus_descendants(replace(ledger, steps=steps), ["input_tokens", "output_tokens",
                                                                             "energy_j"])
    assert ledger.checks["conservation_held"] or ledger.checks["conservation_problems"]


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(folder: Path, data: bytes) -> None:
    _load_or_format_error(folder, data)


@FUZZ
@given(st.lists(json_values, min_size=1, max_size=4))
def test_random_json_values_as_lines(folder: Path, values: list[Any]) -> None:
    _load_or_format_error(folder, "\n".join(json.dumps(v) for v in values).encode())


@FUZZ
@given(st.lists(otlp_documents, min_size=1, max_size=3), st.sampled_from([None, 0, 1, 2, "\t"]), st.booleans())
def test_otlp_shaped_documents(folder: Path, documents: list[Any], indent: int | str | None, compressed: bool) -> None:
    text = "\n".join(json.dumps(d, indent=indent) for d in documents)
    data = gzip.compress(text.encode()) if compressed else text.encode()
    _load_or_format_error(folder, data, "trace.json.gz" if compressed else "trace.json")


@FUZZ
@given(st.lists(otlp_documents, min_size=1, max_size=2), st.integers(0, 400))
def test_truncated_otlp_files(folder: Path, documents: list[Any], cut: int) -> None:
    text = "\n".join(json.dumps(d) for d in documents).encode()
    _load_or_format_error(folder, text[: max(0, len(text) - cut)])


samples_rows = st.lists(st.tuples(st.one_of(st.integers(0, 2**62), st.text(max_size=4)), st.text("abc-", max_size=4),
                                  *(st.one_of(st.floats(), st.none(), st.text(max_size=3)) for _ in range(5))),
                        max_size=8)


@FUZZ
@given(samples_rows, st.integers(0, 30))
def test_samples_files(folder: Path, rows: list[tuple[Any, ...]], cut: int) -> None:
    header = "t_ns,gpu,energy_j,power_w,mem_used_bytes,proc_mem_bytes,util_pct\n"
    body = "".join(",".join("" if v is None else str(v) for v in row) + "\n" for row in rows)
    text = (header + body)[: max(0, len(header + body) - cut)]
    (folder / "samples.csv").write_text(text)
    trace = folder / "empty.jsonl"
    trace.write_text("")
    try:
        run = profiler.load(trace, gpu_samples=folder / "samples.csv")
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
def test_nvidia_smi_csv(folder: Path, header: bool, rows: list[tuple[str, ...]]) -> None:
    head = "timestamp, uuid, power.draw [W], memory.used [MiB], utilization.gpu [%]\n" if header else ""
    (folder / "smi.csv").write_text(head + "".join(", ".join(r) + "\n" for r in rows))
    trace = folder / "empty.jsonl"
    trace.write_text("")
    try:
        run = profiler.load(trace, gpu_samples=folder / "smi.csv", tz="UTC")
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
def test_config_files(folder: Path, entries: list[tuple[str, str]], header: str) -> None:
    seen: set[str] = set()
    lines = [f"{k} = {v}" for k, v in entries if not (k in seen or seen.add(k))]
    path = folder / "sessionprof.toml"
    path.write_text(header + "\n".join(lines) + "\n")
    try:
        load_prices(config=path, environ={})
    except ConfigError as err:
        assert "\n" not in str(err)


# --- the shapes that broke the readers --------------------------------------------------------------

TRACE = "ab" * 16
T0_NS = 1_760_000_000_000_000_000
tricky_text = st.text(st.sampled_from('ab{}[]",:\\\n\r\t é\u2028😀'), max_size=12)
absurd_numbers = st.one_of(st.integers(-(2**80), 2**80), st.floats(), st.sampled_from(
    ["inf", "-inf", "NaN", "1e30", "-1", "9223372036854775807", "1000000001", "12"]))


def _any_value(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["intValue", "doubleValue", "stringValue"]))
    value = draw(absurd_numbers)
    return {kind: str(value) if kind == "stringValue" else value}


@st.composite
def otlp_lines(draw: st.DrawFn, count: int, parents: list[int] | None = None) -> list[str]:
    """`count` JSON Lines, one canonical chat span each (span i+1, its parent by `parents` index),
    with tricky text and absurd token counts in the attributes."""
    lines = []
    for i in range(count):
        attributes = [{"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
                      {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                      {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                      {"key": "note", "value": {"stringValue": draw(tricky_text)}},
                      {"key": "gen_ai.usage.input_tokens", "value": _any_value(draw)},
                      {"key": "gen_ai.usage.output_tokens", "value": {"intValue": str(draw(st.integers(0, 10**6)))}}]
        span = {"traceId": TRACE, "spanId": f"{i + 1:016x}", "name": draw(tricky_text),
                "startTimeUnixNano": str(T0_NS + i * 10**9), "endTimeUnixNano": str(T0_NS + (i + 2) * 10**9),
                "attributes": attributes}
        parent = parents[i] if parents else -1
        if parent >= 0:
            span["parentSpanId"] = f"{parent + 1:016x}"
        lines.append(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}))
    return lines


@BOUNDED
@given(st.data())
def test_a_line_cut_short_anywhere_loses_that_line_alone(folder: Path, data: st.DataObject) -> None:
    lines = data.draw(otlp_lines(data.draw(st.integers(2, 6))))
    torn = data.draw(st.integers(0, len(lines) - 1))
    cut = data.draw(st.integers(1, len(lines[torn]) - 2))
    glued = data.draw(st.booleans()) and torn < len(lines) - 1
    text = "".join(line[:cut] + ("" if glued else "\n") if i == torn else line + "\n" for i, line in enumerate(lines))
    path = folder / "spans.jsonl"
    path.write_text(text, encoding="utf-8")
    run = profiler.load(path)
    assert sorted(run.spans["span_id"]) == [f"{i + 1:016x}" for i in range(len(lines)) if i != torn]
    assert any("cut short" in w or "incomplete" in w for w in run.warnings)
    _assert_sound(profiler.attribute(run))


@BOUNDED
@given(st.data(), st.sampled_from([0, 1, 2, None]))
def test_absurd_token_counts_and_tricky_text_in_any_layout(folder: Path, data: st.DataObject,
                                                           indent: int | None) -> None:
    lines = data.draw(otlp_lines(data.draw(st.integers(1, 4))))
    text = "\n".join(json.dumps(json.loads(line), indent=indent) for line in lines) + "\n"
    ledger = _load_or_format_error(folder, text.encode("utf-8"), "spans.jsonl")
    assert ledger is not None and ledger.totals["model_calls"] == len(lines)


@BOUNDED
@given(st.data())
def test_parent_links_of_any_shape_count_every_figure_once(folder: Path, data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 7))
    parents = data.draw(st.lists(st.integers(-1, count - 1), min_size=count, max_size=count))
    lines = data.draw(otlp_lines(count, parents))
    ledger = _load_or_format_error(folder, ("\n".join(lines) + "\n").encode("utf-8"), "spans.jsonl")
    assert ledger is not None
    steps = ledger.steps
    assert ledger.totals["output_tokens"] == steps.loc[steps["bills_usage"], "self_output_tokens"].sum()
    assert (steps["output_tokens"].fillna(0) <= ledger.totals["output_tokens"]).all()  # no row counts one twice


@BOUNDED
@given(st.integers(1, 200_000), st.sampled_from(["[", '{"a":']), st.booleans())
def test_nesting_of_any_depth(folder: Path, depth: int, opener: str, pretty: bool) -> None:
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" + closer * depth
    text = ('{"resourceSpans": [\n' + deep + "\n]}\n") if pretty else ('{"resourceSpans": ' + deep + "}\n")
    _load_or_format_error(folder, text.encode("utf-8"))


@BOUNDED
@given(st.integers(1, 400), st.sampled_from(["arrayValue", "kvlistValue"]),
       st.sampled_from(["json", "html", "markdown", "csv"]))
def test_attribute_values_nested_deep_read_and_render(folder: Path, depth: int, kind: str, format: str) -> None:
    value: dict[str, Any] = {"stringValue": "leaf"}
    for _ in range(depth):
        value = {kind: {"values": [{"key": "k", "value": value} if kind == "kvlistValue" else value]}}
    span = {"traceId": TRACE, "spanId": "00000000000000aa", "name": "chat gpt-4o", "startTimeUnixNano": str(T0_NS),
            "endTimeUnixNano": str(T0_NS + 10**9), "attributes": [{"key": "deep", "value": value}]}
    path = folder / "spans.jsonl"
    try:
        path.write_text(json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]}) + "\n")
    except RecursionError:
        return  # deeper than Python's own encoder writes
    ledger = _load_or_format_error(folder, path.read_bytes(), "spans.jsonl")
    if ledger is not None:
        render(ledger, format)


@BOUNDED
@given(st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([4_102_444_800 * 10**9, 0, 1])),
                min_size=1, max_size=3), st.data())
def test_samples_stamped_anywhere_in_time(folder: Path, outliers: list[int], data: st.DataObject) -> None:
    rows = [(T0_NS + k * 100_000_000, 1000.0 + k * 10.0) for k in range(60)]
    for t_ns in outliers:
        rows.insert(data.draw(st.integers(0, len(rows))), (t_ns, data.draw(st.floats(0, 1e7))))
    samples = folder / "samples.csv"
    samples.write_text("t_ns,gpu,energy_j,power_w\n" + "".join(f"{t},GPU-0,{e!r},100.0\n" for t, e in rows))
    trace = folder / "spans.jsonl"
    trace.write_text("\n".join(data.draw(otlp_lines(3))) + "\n")
    _assert_sound(profiler.attribute(profiler.load(trace, gpu_samples=samples)))
