"""The live status line: what it says, redrawing in place on a terminal, and silence elsewhere."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

from profiler.capture.live import LiveLine, SpanTally, format_line
from profiler.pricing.api import ApiPricer
from tests.cli.helpers import agent_session, chat


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _line(spans: list[dict]) -> bytes:
    return (json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": spans}]}]}) + "\n").encode()


def test_the_tally_counts_only_whole_lines_and_prices_model_calls(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    tally = SpanTally(path)
    tally.update()  # no file yet: nothing, no error
    whole = _line(agent_session())  # an agent, two chats (1000/100 and 500/50 tokens), a tool
    path.write_bytes(whole + _line([chat("c000000000000009", "a000000000000001", 9, 10, inp=7, out=3)])[:40])
    tally.update()
    assert (tally.spans, tally.model_calls, tally.input_tokens, tally.output_tokens) == (4, 2, 1500, 150)
    with path.open("ab") as stream:
        stream.write(_line([chat("c000000000000009", "a000000000000001", 9, 10, inp=7, out=3)])[40:])
    tally.update()
    assert (tally.spans, tally.model_calls, tally.input_tokens) == (5, 3, 1507)
    pricer = ApiPricer()
    expected = sum(pricer.price(model="gpt-4o", provider="openai", input_tokens=i, output_tokens=o,
                                cache_read_tokens=0, cache_write_tokens=0, start_ns=1_760_000_000_000_000_000).cost_usd
                   for i, o in ((1000, 100), (500, 50), (7, 3)))
    assert tally.api_usd == expected and tally.unpriced_calls == 0


def test_the_line_says_elapsed_spans_calls_tokens_dollars_and_gpu(tmp_path: Path) -> None:
    tally = SpanTally(tmp_path / "none.jsonl")
    assert format_line(5, tally, []) == "sessionprof 0:05  0 spans  0 model calls"
    tally.spans, tally.model_calls, tally.input_tokens, tally.output_tokens = 38, 4, 12_500, 800
    tally.api_usd, tally.unpriced_calls = 0.0213, 1
    line = format_line(65.9, tally, [(212.4, 31.2 * 1024**3)])
    assert line == ("sessionprof 1:05  38 spans  4 model calls  12.5k in / 800 out tok  $0.0213+ API  1 unpriced  "
                    "GPU 212 W 31.2 GiB")
    assert format_line(0, tally, [(100.0, None), (50.0, float("nan"))]).endswith("2 GPUs 150 W")


def test_the_line_is_redrawn_in_place_on_a_terminal_and_cleared_at_the_end(tmp_path: Path) -> None:
    stream = _Terminal()
    times = iter([0.0, 0.0, 3.0])
    live = LiveLine(SpanTally(tmp_path / "spans.jsonl"), stream, clock=lambda: next(times))
    live.start()
    live.tick()
    live.stop()
    assert stream.getvalue() == "\rsessionprof 0:03  0 spans  0 model calls\x1b[K\r\x1b[K"


def test_the_line_is_quiet_when_stderr_is_not_a_terminal(tmp_path: Path) -> None:
    stream = io.StringIO()
    live = LiveLine(SpanTally(tmp_path / "spans.jsonl"), stream, interval_s=0.01)
    live.start()
    assert not any(t.name == "sessionprof-live-line" for t in threading.enumerate())
    live.stop()
    assert stream.getvalue() == ""
