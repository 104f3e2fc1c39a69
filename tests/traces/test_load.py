"""`profiler.load()`: run directories (complete, killed, span-less), trace files, and OTLP JSON as
`instrumentation.otlp_json` writes it, read back through the reader."""

from __future__ import annotations

import gc
import json
import re
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from instrumentation.otlp_json import encode_traces_data
from instrumentation.run_dir import META_FILE, SPANS_FILE
from profiler import attribute, load
from profiler.errors import TraceFormatError
from profiler.gpu.samples_file import SamplesWriter
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS
from tests.builders import BASE_NS, ns, otlp_document, otlp_span, steady_gpu

GPU = "GPU-0"


def write_samples(directory: Path, start: float = 0.0, end: float = 4.0) -> None:
    frame = steady_gpu(start, end, gpu=GPU)
    writer = SamplesWriter(directory / "samples.csv")
    writer.write([tuple(None if v != v else v for v in row) for row in frame.itertuples(index=False)])
    writer.close()


def write_meta(directory: Path, **meta) -> None:
    (directory / META_FILE).write_text(json.dumps(meta))


def write_spans(directory: Path, *documents: dict) -> Path:
    path = directory / SPANS_FILE
    path.write_text("".join(json.dumps(d) + "\n" for d in documents))
    return path


# ----------------------------------------------------------------------------------------------
# Run directories


def test_a_run_directory_without_spans_loads_its_samples(tmp_path: Path) -> None:
    write_meta(tmp_path, status="complete", gpus=[{"uuid": GPU, "name": "NVIDIA H100 80GB HBM3"}])
    write_samples(tmp_path)
    run = load(tmp_path)
    assert run.spans.empty and list(run.spans.columns) == list(SPAN_COLUMNS)
    assert list(run.samples.columns) == list(SAMPLE_COLUMNS) and len(run.samples) == 41
    assert run.gpus == [GPU] and run.source == tmp_path and run.warnings == []
    ledger = attribute(run)
    assert list(ledger.steps["span_id"]) == ["unattributed"]
    assert ledger.steps["self_energy_j"].sum() == pytest.approx(400.0)
    assert ledger.checks["incomplete_run"] is False


def test_a_run_directory_with_only_spans_has_no_samples(tmp_path: Path) -> None:
    write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=1)]))
    run = load(tmp_path)
    assert len(run.spans) == 1 and run.samples.empty
    assert attribute(run).steps["energy_j"].isna().all()


def test_a_directory_that_is_not_a_run_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match=f"not a run directory \\(no {SPANS_FILE} or {META_FILE}\\)"):
        load(tmp_path)


def test_a_run_that_was_killed_loads_with_a_warning_and_is_marked_incomplete(tmp_path: Path) -> None:
    write_meta(tmp_path, status="running")
    write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=3)]))
    write_samples(tmp_path)
    with (tmp_path / "samples.csv").open("a") as stream:
        stream.write(f"{ns(4.1)},{GPU},12")  # killed mid-write
    run = load(tmp_path)
    assert any("did not finish cleanly" in w and str(tmp_path) in w for w in run.warnings)
    assert any("incomplete" in w for w in run.warnings)
    ledger = attribute(run)
    assert ledger.checks["incomplete_run"] is True
    assert ledger.checks["warnings"] == run.warnings
    assert ledger.checks["conservation_held"] is True


def test_unreadable_run_metadata_is_a_warning_not_a_failure(tmp_path: Path) -> None:
    (tmp_path / META_FILE).write_text("{not json")
    write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=1)]))
    run = load(tmp_path)
    assert len(run.spans) == 1
    assert any(META_FILE in w and "ignored" in w for w in run.warnings)


@pytest.mark.parametrize(("meta", "named"), [
    ("[]", "not a JSON object"), ("1", "not a JSON object"), ('{"gpus": 3}', "gpus not as a run writes them"),
    ('{"gpus": [1]}', "gpus not as a run writes them"), ('{"dropped": 5, "status": []}', "dropped, status not as"),
    ("[" * 100_000 + "]" * 100_000, "unreadable (nested too deeply)"),
])
def test_run_metadata_of_the_wrong_shape_is_a_warning_not_a_failure(tmp_path: Path, meta: str, named: str) -> None:
    (tmp_path / META_FILE).write_text(meta)
    write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=1)]))
    run = load(tmp_path)
    assert any(META_FILE in w and named in w for w in run.warnings), run.warnings
    ledger = attribute(run)
    assert ledger.totals["steps"] == 1 and ledger.checks["incomplete_run"] is False


def test_the_memory_baseline_recorded_in_run_json_is_used(tmp_path: Path) -> None:
    write_meta(tmp_path, status="complete", gpus=[{"uuid": GPU, "name": "x", "mem_baseline_bytes": 2**30}])
    write_samples(tmp_path)  # 2 GiB used from the second sample on (0.1 s to 4 s), 0 at the first
    write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=4)]))
    ledger = attribute(load(tmp_path))
    assert ledger.totals["gpus"][0]["mem_baseline_bytes"] == 2**30
    assert ledger.totals["gpu_mem_gib_s"] == pytest.approx(1.0 * 3.9)  # 1 GiB above the baseline


# ----------------------------------------------------------------------------------------------
# Paths and files


def test_a_missing_path_is_a_trace_format_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="no such file or run directory"):
        load(tmp_path / "nowhere")


def test_missing_gpu_samples_are_a_trace_format_error(tmp_path: Path) -> None:
    trace = write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=1)]))
    with pytest.raises(TraceFormatError, match="no such samples file"):
        load(trace, gpu_samples=tmp_path / "absent.csv")


def test_gpu_samples_given_to_load_replace_the_run_directorys_own(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_spans(run_dir, otlp_document([otlp_span("00000000000000aa", start=0, end=1)]))
    write_samples(run_dir, 0.0, 1.0)
    other = tmp_path / "other"
    other.mkdir()
    write_samples(other, 10.0, 20.0)
    run = load(run_dir, gpu_samples=other / "samples.csv")
    assert run.samples["t_ns"].min() == ns(10.0)
    assert run.meta["gpu_samples_source"] == str(other / "samples.csv")
    assert run.meta["gpu_samples_kind"] == "samples file"
    smi = tmp_path / "gpu.csv"
    smi.write_text("timestamp, uuid, power.draw [W]\n2023/11/14 22:13:20.000, GPU-1, 100 W\n")
    assert load(run_dir, gpu_samples=smi, tz="UTC").meta["gpu_samples_kind"] == "nvidia-smi CSV"


def test_a_file_that_is_not_a_trace_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "notes.jsonl"
    path.write_text("\n" + json.dumps({"hello": "world"}) + "\n" + json.dumps({"bye": "world"}) + "\n")
    with pytest.raises(TraceFormatError, match=r"notes.jsonl:2: expected OTLP JSON"):
        load(path)


def test_an_unfinished_span_is_left_out_with_a_warning(tmp_path: Path) -> None:
    open_span = otlp_span("00000000000000bb", start=1, end=1)
    open_span["endTimeUnixNano"] = "0"
    path = write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=2), open_span]))
    run = load(path)
    assert run.spans["span_id"].tolist() == ["00000000000000aa"]
    assert run.meta["unfinished_spans"] == 1
    assert any("never ended" in w for w in run.warnings)


def test_a_span_recorded_twice_is_kept_once(tmp_path: Path) -> None:
    first = otlp_span("00000000000000aa", start=0, end=2)
    path = write_spans(tmp_path, otlp_document([first]), otlp_document([first]))
    assert len(load(path).spans) == 1


def test_the_cyclic_collector_is_paused_while_a_file_is_read(tmp_path: Path) -> None:
    path = write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=2)]))
    collecting_during = []
    load(path, progress=lambda done, total: collecting_during.append(gc.isenabled()))
    assert collecting_during and not any(collecting_during)
    assert gc.isenabled()


def test_the_collector_is_left_as_it_was_after_a_failed_read_or_a_caller_s_own_pause(tmp_path: Path) -> None:
    broken = tmp_path / "broken.jsonl"
    broken.write_text("not json\n")
    with pytest.raises(TraceFormatError):
        load(broken)
    assert gc.isenabled()
    good = write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=2)]))
    gc.disable()
    try:
        load(good)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_cut_short_last_line_of_spans_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = write_spans(tmp_path, otlp_document([otlp_span("00000000000000aa", start=0, end=2)]))
    with path.open("a") as stream:
        stream.write(json.dumps(otlp_document([otlp_span("00000000000000bb", start=2, end=3)]))[:40])
    run = load(tmp_path)
    assert run.spans["span_id"].tolist() == ["00000000000000aa"]
    assert any("incomplete" in w for w in run.warnings)


# ----------------------------------------------------------------------------------------------
# OTLP JSON from instrumentation.otlp_json, read back


def _record_spans() -> list:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    common = {"gen_ai.conversation.id": "conv-7"}
    with tracer.start_as_current_span(
        "invoke_agent planner",
        start_time=ns(0),
        end_on_exit=False,
        attributes={"gen_ai.operation.name": "invoke_agent", **common},
    ) as agent:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            start_time=ns(1),
            end_on_exit=False,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.usage.input_tokens": 987_654_321,
                "sessionprof.sampler.bytes": 2**40,
                "gen_ai.usage.output_tokens": 17,
                "server.address": "api.openai.com",
                "sessionprof.latency.ratio": 0.25,
                "sessionprof.flag": True,
                "sessionprof.tags": ["a", "b"],
                **common,
            },
        ) as call:
            call.set_status(Status(StatusCode.OK))
            call.end(end_time=ns(2.5))
        with tracer.start_as_current_span(
            "execute_tool search",
            start_time=ns(3),
            end_on_exit=False,
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", **common},
        ) as tool:
            tool.set_status(Status(StatusCode.ERROR, "timeout"))
            tool.end(end_time=ns(4))
        agent.end(end_time=ns(5))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_otlp_json_from_the_encoder_follows_the_json_mapping() -> None:
    spans = _record_spans()
    document = json.loads(json.dumps(encode_traces_data(spans)))
    encoded = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    assert len(encoded) == 3
    for span in encoded:
        assert re.fullmatch(r"[0-9a-f]{32}", span["traceId"])
        assert re.fullmatch(r"[0-9a-f]{16}", span["spanId"])
        assert isinstance(span["startTimeUnixNano"], str) and isinstance(span["endTimeUnixNano"], str)
        assert isinstance(span["kind"], int) and isinstance(span["status"]["code"], int)
    chat = next(s for s in encoded if s["name"] == "chat gpt-4o")
    assert chat["kind"] == 3  # OTLP SPAN_KIND_CLIENT
    assert chat["status"] == {"code": 1}
    values = {a["key"]: a["value"] for a in chat["attributes"]}
    assert values["sessionprof.sampler.bytes"] == {"intValue": str(2**40)}
    assert values["sessionprof.flag"] == {"boolValue": True}
    assert values["sessionprof.latency.ratio"] == {"doubleValue": 0.25}
    assert values["sessionprof.tags"] == {
        "arrayValue": {"values": [{"stringValue": "a"}, {"stringValue": "b"}]}
    }
    assert re.fullmatch(r"[0-9a-f]{16}", chat["parentSpanId"])


def test_otlp_json_from_the_encoder_round_trips_through_the_reader(tmp_path: Path) -> None:
    spans = _record_spans()
    # One TracesData per line, as the run directory's exporter writes them (one batch per span here).
    write_spans(tmp_path, *(encode_traces_data([s]) for s in spans))
    run = load(tmp_path)
    assert load(tmp_path / SPANS_FILE).meta["format"] == "otlp"
    rows = run.spans.set_index("name")
    assert len(rows) == 3
    by_name = {s.name: s for s in spans}
    for name, span in by_name.items():
        row = rows.loc[name]
        assert row["trace_id"] == format(span.context.trace_id, "032x")
        assert row["span_id"] == format(span.context.span_id, "016x")
        assert row["start_ns"] == span.start_time and row["end_ns"] == span.end_time
        parent = format(span.parent.span_id, "016x") if span.parent else None
        assert row["parent_span_id"] == parent
        assert row["session_id"] == "conv-7"
    chat = rows.loc["chat gpt-4o"]
    assert (chat["kind"], chat["status"], chat["model"], chat["provider"]) == (
        "chat",
        "ok",
        "gpt-4o",
        "openai",
    )
    assert chat["input_tokens"] == 987_654_321.0 and chat["output_tokens"] == 17.0
    assert chat["remote"]
    assert chat["attributes"]["sessionprof.sampler.bytes"] == 2**40  # int64 strings come back as ints
    assert chat["attributes"]["sessionprof.flag"] is True
    assert chat["attributes"]["sessionprof.tags"] == ["a", "b"]
    assert rows.loc["execute_tool search", "status"] == "error"
    assert rows.loc["invoke_agent planner", "status"] == "unset"
    ledger = attribute(run)
    assert (
        ledger.totals["tool_calls"] == 1
        and ledger.totals["errors"] == 1
        and ledger.totals["model_calls"] == 1
    )


def test_the_reader_also_accepts_what_other_producers_write(tmp_path: Path) -> None:
    span = otlp_span("00000000000000AA", start=0, end=1, trace="4BF92F3577B34DA6A3CE929D0E0E4736")
    span["status"] = {"code": "STATUS_CODE_ERROR"}
    span["attributes"] = [{"key": "gen_ai.usage.input_tokens", "value": {"intValue": 12}}]
    child = otlp_span("AAAAAAAAALs=", start=0.2, end=0.4, trace="S/kvNXezTaajzpKdDg5HNg==")  # base64 ids
    child["parentSpanId"] = "0x00000000000000aa"
    path = tmp_path / "other.json"
    path.write_text(json.dumps(otlp_document([span, child]), indent=2))
    rows = load(path).spans.set_index("span_id")
    assert rows.loc["00000000000000aa", "trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert rows.loc["00000000000000aa", "status"] == "error"
    assert rows.loc["00000000000000aa", "input_tokens"] == 12.0
    child_row = rows.loc["00000000000000bb"]
    assert child_row["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child_row["parent_span_id"] == "00000000000000aa"
    assert int(child_row["start_ns"]) == BASE_NS + 200_000_000
