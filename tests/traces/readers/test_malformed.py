"""Bad input: one line that names the file, the place and what was expected; never a traceback.
A last line cut short is skipped with a warning; a trace with no GenAI spans is not an error."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

import profiler
from profiler.errors import TraceFormatError
from profiler.traces.readers import otlp_typed
from profiler.traces.readers.framing import open_text

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
    (LINE + "\n" + LINE + ", x\n", ":2:", "invalid JSON"),
])
def test_bad_input_is_a_one_line_error_naming_the_line(
        tmp_path: Path, text: str, where: str, what: str) -> None:
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
    broken_line = bad.splitlines().index(next(x for x in bad.splitlines() if '"GET /"' in x)) + 1
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
    spans += [{"name": "no ids"}, {"traceId": "ab" * 16, "spanId": "01" * 8, "name": "no start"},
              "not a span"]
    assert len(profiler.load(_file(tmp_path, json.dumps(document))).spans) == 1


def test_a_missing_file_is_a_trace_format_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="no such file"):
        profiler.load(tmp_path / "nope.jsonl")


@pytest.fixture
def fast_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What the fast OTLP reader made of each line it was handed: "taken" or "declined"."""
    seen: list[str] = []
    real = otlp_typed.batch_of_line

    def spy(line: bytes) -> object:
        batch = real(line)
        seen.append("declined" if batch is None else "taken")
        return batch

    monkeypatch.setattr(otlp_typed, "batch_of_line", spy)
    return seen


def test_bytes_that_are_not_utf8_are_replaced_not_fatal(tmp_path: Path, fast_reads: list[str]) -> None:
    # A writer that cut a name mid-character: that span keeps the rest of its name, its neighbours
    # are untouched, and the other lines still take the fast reader (it declines the bad line).
    bad = LINE.replace("GET /", "GET /caf\\u00e9").replace("cd" * 8, "01" * 8).encode().replace(
        b"\\u00e9", "é".encode()[:1])
    path = tmp_path / "spans.jsonl"
    path.write_bytes(b"\n".join([LINE.encode(), bad, OTHER.encode()]) + b"\n")
    run = profiler.load(path)
    assert run.warnings == []
    names = dict(zip(run.spans["span_id"], run.spans["name"], strict=True))
    assert names == {"cd" * 8: "GET /", "01" * 8: "GET /caf\ufffd", "ef" * 8: "GET /"}
    assert fast_reads == ["taken", "declined", "taken"]


def test_lines_of_only_whitespace_are_skipped(tmp_path: Path) -> None:
    # Unicode whitespace too (a no-break space), and CRLF pretty-printed values around them.
    pretty = json.dumps(json.loads(LINE), indent=2).replace("\n", "\r\n")
    text = pretty + "\r\n\u00a0\r\n \t\r\n" + OTHER + "\n\u2003\n"
    path = tmp_path / "spans.json"
    path.write_bytes(text.encode())
    run = profiler.load(path)
    assert run.warnings == [] and sorted(run.spans["span_id"]) == ["cd" * 8, "ef" * 8]


def test_lines_of_unicode_whitespace_do_not_switch_the_fast_reader_off(
        tmp_path: Path, fast_reads: list[str]) -> None:
    # More such lines than the fast reader may decline before it is given up on.
    path = tmp_path / "spans.jsonl"
    path.write_bytes(("\u00a0\n\u2003\n" * 8 + LINE + "\n" + OTHER + "\n").encode())
    assert len(profiler.load(path).spans) == 2
    assert fast_reads.count("taken") == 2


BOM = "\ufeff"


@pytest.mark.parametrize("shape", ["lines", "document", "pretty", "gzip"])
def test_a_byte_order_mark_at_the_start_is_skipped(tmp_path: Path, shape: str) -> None:
    # Windows PowerShell's `Out-File -Encoding utf8` and Notepad write one.
    document = {"resourceSpans": json.loads(LINE)["resourceSpans"] + json.loads(OTHER)["resourceSpans"]}
    text = {"lines": LINE + "\r\n" + OTHER + "\r\n", "document": json.dumps(document),
            "pretty": json.dumps(document, indent=2), "gzip": LINE + "\n" + OTHER + "\n"}[shape]
    data = (BOM + text).encode()
    path = tmp_path / "spans.jsonl"
    path.write_bytes(gzip.compress(data) if shape == "gzip" else data)
    run = profiler.load(path)
    assert run.warnings == [] and sorted(run.spans["span_id"]) == ["cd" * 8, "ef" * 8]


def test_a_byte_order_mark_elsewhere_is_still_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match=":2: expected a JSON object"):
        profiler.load(_file(tmp_path, LINE + "\n" + BOM + OTHER + "\n"))


def test_open_text_skips_a_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "gpu.csv"
    path.write_bytes((BOM + "timestamp, power.draw [W]\n").encode())
    with open_text(path) as stream:
        assert stream.readline() == "timestamp, power.draw [W]\n"


def test_lines_that_end_in_a_lone_cr_are_lines(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_bytes((LINE + "\r" + OTHER + "\r").encode())
    run = profiler.load(path)
    assert run.warnings == [] and sorted(run.spans["span_id"]) == ["cd" * 8, "ef" * 8]


def test_a_broken_line_among_lone_cr_lines_names_its_line(tmp_path: Path) -> None:
    # The same line and column as the same file with LF line ends.
    messages = []
    for end in ("\r", "\n"):
        path = tmp_path / "spans.jsonl"
        path.write_bytes(end.join([LINE, '{"resourceSpans": [,]}', OTHER, ""]).encode())
        with pytest.raises(TraceFormatError) as err:
            profiler.load(path)
        messages.append(_one_line(err))
    assert messages[0] == messages[1]
    assert messages[0].endswith(":2: invalid JSON (Expecting value at column 20)")


def test_a_broken_pretty_value_with_lone_cr_lines_names_its_line(tmp_path: Path) -> None:
    good = json.dumps(json.loads(LINE), indent=2)
    bad = good.replace('"name": "GET /",', '"name": "GET /"')
    broken_line = next(i for i, line in enumerate(bad.splitlines(), 1) if '"GET /"' in line) + 1
    path = tmp_path / "spans.json"
    path.write_bytes((good + "\n" + bad + "\n" + good + "\n").replace("\n", "\r").encode())
    with pytest.raises(TraceFormatError) as err:
        profiler.load(path)
    assert f":{len(good.splitlines()) + broken_line}:" in _one_line(err)


def test_a_last_lone_cr_line_cut_short_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_bytes((LINE + "\r" + OTHER[:50]).encode())
    run = profiler.load(path)
    assert len(run.spans) == 1
    assert any(":2: last line is incomplete" in w for w in run.warnings)
