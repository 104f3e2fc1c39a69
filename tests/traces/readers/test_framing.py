"""Framing: a line cut short anywhere is skipped and counted, every layout reads in linear time,
and no line, value or nesting depth can make the reader hold unbounded memory or crash."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

import profiler
from profiler.errors import TraceFormatError
from profiler.traces.readers import json_text, lines
from tests.cli.helpers import invoke


def _line(span_id: str) -> str:
    """One TracesData line, with an escaped quote and nested values, as our exporter writes it."""
    return json.dumps({"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": 'a "quoted" name'}}]}, "scopeSpans": [{"spans": [
            {"traceId": "ab" * 16, "spanId": span_id, "name": "GET /", "startTimeUnixNano": "1760000000000000000",
             "endTimeUnixNano": "1760000001000000000", "attributes": [
                 {"key": "x", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}}]}]}]}]},
        separators=(",", ":"))


A, B, C, D = (_line(c * 16) for c in "abcd")


def _load(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "spans.jsonl"
    path.write_text(text, encoding="utf-8")
    return profiler.load(path)


@pytest.mark.parametrize("glued", [False, True], ids=["next write on a new line", "next write on the same line"])
def test_a_line_cut_short_mid_file_is_skipped_and_counted_at_every_cut(tmp_path: Path, glued: bool) -> None:
    # A failed append (a full disk) leaves part of a line; the next batch starts on a new line,
    # or (an older writer) goes on in the same line. Either way the rest of the run reads.
    for cut in range(1, len(B), 3):
        run = _load(tmp_path, A + "\n" + B[:cut] + ("" if glued else "\n") + C + "\n" + D + "\n")
        assert sorted(run.spans["span_id"]) == ["a" * 16, "c" * 16, "d" * 16], cut
        assert [w for w in run.warnings if "cut short" in w] == [
            f"{tmp_path / 'spans.jsonl'}: 1 line(s) cut short mid-write skipped (line 2); what they held is lost"]
        assert run.meta["torn_lines"] == {"spans": 1}


def test_a_line_cut_short_just_before_the_last_line_keeps_the_last(tmp_path: Path) -> None:
    for cut in range(1, len(B), 5):
        run = _load(tmp_path, A + "\n" + B[:cut] + "\n" + C + "\n")
        assert sorted(run.spans["span_id"]) == ["a" * 16, "c" * 16], cut


def test_several_lines_cut_short_are_counted_in_one_warning(tmp_path: Path) -> None:
    run = _load(tmp_path, "\n".join([A, B[:40], C, B[:300], B[:90], D]) + "\n")
    assert sorted(run.spans["span_id"]) == ["a" * 16, "c" * 16, "d" * 16]
    assert any("3 line(s) cut short mid-write skipped (line 2, 4, 5)" in w for w in run.warnings)


def test_a_broken_line_is_still_an_error_not_a_line_cut_short(tmp_path: Path) -> None:
    # `[}` cannot begin any value: the line is broken where it stands, not unfinished.
    with pytest.raises(TraceFormatError, match=r"spans.jsonl:2: invalid JSON"):
        _load(tmp_path, A + '\n{"resourceSpans": [}\n' + C + "\n")


def test_the_report_says_how_many_lines_were_lost(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "spans.jsonl").write_text("\n".join([A, B[:77], C]) + "\n")
    (run_dir / "run.json").write_text(json.dumps({"run_id": "r", "status": "complete", "dropped": {"spans": 4}}))
    ledger = profiler.attribute(profiler.load(run_dir))
    assert ledger.checks["torn_lines"] == {"spans": 1}
    result = invoke("report", run_dir)
    assert result.exit_code == 0
    assert "lost: 1 line(s) of spans cut short mid-write and skipped" in result.output
    assert "dropped: spans 4" in result.output


class _CountingDecoder:
    """Counts the characters handed to `raw_decode`: the work of decoding, however it is framed."""

    def __init__(self) -> None:
        self.chars = 0

    def raw_decode(self, text: str, index: int = 0) -> tuple[Any, int]:
        self.chars += len(text) - index
        return json.JSONDecoder().raw_decode(text, index)


@pytest.mark.parametrize("indent", [0, 1, 2])
def test_a_pretty_printed_document_is_decoded_in_linear_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, indent: int) -> None:
    # indent=0 puts every bracket in column 0: re-decoding all that is open at each took 178 s for 1.7 MB.
    spans = [json.loads(_line(f"{i:016x}"))["resourceSpans"][0]["scopeSpans"][0]["spans"][0] for i in range(1, 400)]
    text = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}, indent=indent) * 2
    counter = _CountingDecoder()
    monkeypatch.setattr(json_text, "_decoder", counter)
    run = _load(tmp_path, text)
    assert len(run.spans) == 399 and run.warnings == []
    assert counter.chars <= 4 * len(text)


@pytest.mark.parametrize("read_bytes", [2, 5, 64])
@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_lines_split_across_reads_read_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, read_bytes: int, end: str) -> None:
    pretty = json.dumps(json.loads(C), indent=2).replace("\n", end)
    text = "\ufeff" + end.join([A, B[:50], pretty, D]) + end
    monkeypatch.setattr(lines, "_READ_BUFFER_BYTES", read_bytes)
    run = _load(tmp_path, text)
    assert sorted(run.spans["span_id"]) == ["a" * 16, "c" * 16, "d" * 16]
    assert any("cut short mid-write skipped (line 2)" in w for w in run.warnings)


@pytest.mark.parametrize("compressed", [False, True])
def test_a_line_over_the_bound_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compressed: bool) -> None:
    monkeypatch.setenv(lines.MAX_VALUE_ENV, "1")
    data = (A + "\n" + '{"resourceSpans": [' + " " * (2 << 20) + "]}\n").encode()
    path = tmp_path / "spans.jsonl"
    path.write_bytes(gzip.compress(data) if compressed else data)
    with pytest.raises(TraceFormatError) as err:
        profiler.load(path)
    assert str(err.value) == (f"{path}:2: a line or value of more than 1 MiB; refused "
                              f"(set {lines.MAX_VALUE_ENV} to read larger ones)")


def test_a_value_over_the_bound_across_lines_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lines.MAX_VALUE_ENV, "0.5")
    document = {"resourceSpans": [json.loads(_line(f"{i:016x}"))["resourceSpans"][0] for i in range(1, 2000)]}
    with pytest.raises(TraceFormatError, match=r"spans.jsonl:1: a line or value of more than 0 MiB"):
        _load(tmp_path, json.dumps(document, indent=0))


def test_the_bound_reads_a_value_under_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(lines.MAX_VALUE_ENV, "2")
    document = {"resourceSpans": [json.loads(_line(f"{i:016x}"))["resourceSpans"][0] for i in range(1, 2000)]}
    assert len(_load(tmp_path, json.dumps(document, indent=0)).spans) == 1999


@pytest.mark.parametrize("setting", ["0", "-3", "lots", "nan"])
def test_a_bad_bound_setting_is_a_one_line_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv(lines.MAX_VALUE_ENV, setting)
    with pytest.raises(TraceFormatError, match=f"^{lines.MAX_VALUE_ENV}='{setting}': expected a positive"):
        _load(tmp_path, A + "\n")


@pytest.mark.parametrize("layout", ["one line", "pretty"])
def test_json_nested_100000_deep_is_a_one_line_error(tmp_path: Path, layout: str) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    text = A + "\n" + ('{"resourceSpans": ' + deep + "}" if layout == "one line" else
                       '{"resourceSpans": [\n' + deep + "\n]}") + "\n"
    path = tmp_path / "spans.jsonl"
    path.write_text(text)
    with pytest.raises(TraceFormatError) as err:
        profiler.load(path)
    assert str(err.value) == f"{path}:2: JSON nested too deeply to read"
    result = invoke("report", path)
    assert result.exit_code == 1
    assert result.output.strip() == f"sessionprof: error: {path}:2: JSON nested too deeply to read"


@pytest.mark.slow
def test_a_gzip_bomb_is_refused_in_bounded_memory(tmp_path: Path) -> None:
    # 1.5 GiB of one line in a 1.5 MB file: read whole, it took 4.8 GB for a 2 MB bomb.
    import subprocess
    import sys

    path = tmp_path / "bomb.json.gz"
    with gzip.open(path, "wb", compresslevel=9) as stream:
        stream.write(b'{"resourceSpans": [')
        block = b" " * (64 << 20)
        for _ in range(24):
            stream.write(block)
    code = ("import resource, sys, profiler\n"
            "from profiler.errors import TraceFormatError\n"
            "try:\n    profiler.load(sys.argv[1])\nexcept TraceFormatError as err:\n    print(err)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120,
                          check=True)
    message, peak_kib = done.stdout.strip().splitlines()
    assert message.startswith(f"{path}:1: a line or value of more than 256 MiB; refused")
    assert int(peak_kib) * 1024 < 900 * 2**20


@pytest.mark.slow
def test_pretty_printed_values_take_no_more_memory_than_json_lines(tmp_path: Path) -> None:
    # Each failed try at a pretty value held its text alive through the decoder's traceback while
    # the collector was paused: an indent=0 file took three times the memory of the same JSON Lines.
    import tracemalloc

    documents = [json.loads(_line(f"{i:016x}")) for i in range(1, 3001)]
    peaks = {}
    for indent in (None, 0):
        path = tmp_path / f"spans-{indent}.json"
        path.write_text("".join(json.dumps(d, indent=indent) + "\n" for d in documents))
        tracemalloc.start()
        try:
            assert len(profiler.load(path).spans) == 3000
            peaks[indent] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peaks[0] < 2 * peaks[None], peaks
