"""Bad input: one line that names the file, the place and what was expected; never a traceback.
A last line cut short is skipped with a warning; a trace with no GenAI spans is not an error."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import profiler
from profiler.errors import TraceFormatError

LINE = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [
    {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "GET /", "startTimeUnixNano": "1760000000000000000",
     "endTimeUnixNano": "1760000001000000000"}]}]}]})
OTHER = LINE.replace("cd" * 8, "ef" * 8)


def _file(tmp_path: Path, text: str, name: str = "spans.jsonl") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _one_line(err: pytest.ExceptionInfo[TraceFormatError]) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("text", "where", "what"), [
    (LINE + "\n" + '{"resourceSpans": [,]}\n' + LINE + "\n", ":2:", "invalid JSON"),
    (LINE + "\n" + '{"resourceSpans": [{"res\n' + LINE + "\n" + OTHER + "\n", ":2:", "invalid JSON"),
    ("time,gpu,power\n1,0,300\n", ":1:", "expected a JSON object or array"),
    ("# spans\n" + LINE + "\n", ":1:", "expected a JSON object or array"),
    (LINE + "\n" + json.dumps({"hello": "world"}) + "\n", ":2:", "expected OTLP JSON traces"),
    (LINE + "\n42\n", ":2:", "found a JSON int"),
    (LINE + "\n" + LINE + ", x\n", ":2:", "invalid JSON"),
])
def test_bad_input_is_a_one_line_error_naming_the_line(tmp_path: Path, text: str, where: str, what: str) -> None:
    path = _file(tmp_path, text)
    with pytest.raises(TraceFormatError) as err:
        profiler.load(path)
    message = _one_line(err)
    assert f"{path}{where}" in message and what in message


def test_the_error_names_what_the_readers_accept(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError) as err:
        profiler.load(_file(tmp_path, json.dumps({"spans": []}) + "\n"))
    message = _one_line(err)
    for dialect in ("OTLP JSON", "Jaeger JSON", "ConsoleSpanExporter"):
        assert dialect in message


def test_a_broken_pretty_printed_value_names_its_line(tmp_path: Path) -> None:
    good = json.dumps(json.loads(LINE), indent=2)
    bad = good.replace('"name": "GET /",', '"name": "GET /"')  # a missing comma on line 19 of the value
    broken_line = bad.splitlines().index(next(l for l in bad.splitlines() if '"GET /"' in l)) + 1
    path = _file(tmp_path, good + "\n" + bad + "\n" + good + "\n")
    with pytest.raises(TraceFormatError) as err:
        profiler.load(path)
    offset = len(good.splitlines())
    assert f":{offset + broken_line + 1}:" in _one_line(err)


def test_a_last_line_cut_short_is_skipped_with_a_warning(tmp_path: Path) -> None:
    run = profiler.load(_file(tmp_path, LINE + "\n" + OTHER[:50]))
    assert len(run.spans) == 1
    assert any(":2: last line is incomplete" in w for w in run.warnings)


def test_a_last_pretty_value_cut_short_is_skipped_with_a_warning(tmp_path: Path) -> None:
    pretty = json.dumps(json.loads(OTHER), indent=2)
    run = profiler.load(_file(tmp_path, LINE + "\n" + pretty[: len(pretty) // 2]))
    assert len(run.spans) == 1
    assert any("incomplete" in w for w in run.warnings)


def test_a_gzip_stream_cut_short_keeps_what_was_read_with_a_warning(tmp_path: Path) -> None:
    lines = "".join((LINE if i % 2 else OTHER).replace("cd" * 8, f"{i:016x}") + "\n" for i in range(3000))
    data = gzip.compress(lines.encode())
    path = tmp_path / "spans.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    run = profiler.load(path)
    assert 0 < len(run.spans) < 3000
    assert any("compressed stream ends early" in w for w in run.warnings)


@pytest.mark.parametrize("text", ["", "\n\n", "{}\n{}\n", '{"resourceSpans": []}\n'])
def test_an_empty_trace_is_zero_spans_and_zero_cost(tmp_path: Path, text: str) -> None:
    run = profiler.load(_file(tmp_path, text))
    assert len(run.spans) == 0
    ledger = profiler.attribute(run)
    assert ledger.totals["model_calls"] == 0 and ledger.totals["api_cost_usd"] is None


def test_a_trace_without_genai_spans_has_zero_model_calls(tmp_path: Path) -> None:
    ledger = profiler.attribute(profiler.load(_file(tmp_path, LINE + "\n" + OTHER + "\n")))
    assert ledger.totals["model_calls"] == 0 and ledger.totals["steps"] == 2
    assert ledger.checks["unpriced_calls"] == 0


def test_spans_without_ids_or_start_are_skipped_not_fatal(tmp_path: Path) -> None:
    document = json.loads(LINE)
    spans = document["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans += [{"name": "no ids"}, {"traceId": "ab" * 16, "spanId": "01" * 8, "name": "no start"}, "not a span"]
    assert len(profiler.load(_file(tmp_path, json.dumps(document))).spans) == 1


def test_a_missing_file_is_a_trace_format_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="no such file"):
        profiler.load(tmp_path / "nope.jsonl")


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path: Path) -> None:
    # A writer that cut a name mid-character: that span keeps the rest of its name, its neighbours
    # are untouched, and the other lines still take the fast reader (it declines the bad line).
    bad = LINE.replace("GET /", "GET /caf\\u00e9").replace("cd" * 8, "01" * 8).encode().replace(
        b"\\u00e9", "é".encode()[:1])
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"\n".join([LINE.encode(), bad, OTHER.encode()]) + b"\n")
    run = profiler.load(path)
    assert run.warnings == []
    names = dict(zip(run.spans["span_id"], run.spans["name"]))
    assert names == {"cd" * 8: "GET /", "01" * 8: "GET /caf\ufffd", "ef" * 8: "GET /"}


def test_lines_of_only_whitespace_are_skipped(tmp_path: Path) -> None:
    # Unicode whitespace too (a no-break space), and CRLF pretty-printed values around them.
    pretty = json.dumps(json.loads(LINE), indent=2).replace("\n", "\r\n")
    text = pretty + "\r\n\u00a0\r\n \t\r\n" + OTHER + "\n\u2003\n"
    path = tmp_path / "spans.json"
    path.write_bytes(text.encode())
    run = profiler.load(path)
    assert run.warnings == [] and sorted(run.spans["span_id"]) == ["cd" * 8, "ef" * 8]
