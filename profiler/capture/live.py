"""The live line on stderr while a run records: elapsed time, spans, model calls, tokens, API dollars
so far, and GPU power and memory, redrawn in place about once a second (only on a terminal)."""

from __future__ import annotations

import json
import logging
import math
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from profiler.model import INFERENCE_KINDS
from profiler.traces.genai import model_of, operation_of, provider_of, reported_cost_of, usage_of
from profiler.traces.readers.otlp import decode_attributes

logger = logging.getLogger(__name__)
THREAD_NAME = "sessionprof-live-line"
#: New bytes of spans.jsonl read per update: a flood of spans makes the line lag, never the run.
MAX_READ_BYTES = 8 * 1024**2


class SpanTally:
    """Running counts over a growing spans.jsonl, reading only what was appended since last time.

    Counts every span however it arrived (decorators, instrumentors, OTLP); model calls are the
    inference spans with usage, and dollars are their API price (genai-prices, else the cost the
    span carries). The report attributes the run properly (one bill per call, sessions); this is a
    running estimate.
    """

    def __init__(self, path: Path, *, pricer: Any = None) -> None:
        """Tally `path` (which may not exist yet); `pricer` is an `ApiPricer` or None for the default."""
        self.path = path
        self.spans = 0
        self.model_calls = 0
        self.input_tokens = 0
        self.output_tokens = 0
        self.api_usd = 0.0
        self.unpriced_calls = 0
        self._offset = 0
        self._partial = b""
        self._pricer = pricer

    def update(self) -> None:
        """Read and count the complete lines appended since the last update."""
        try:
            with self.path.open("rb") as stream:
                stream.seek(self._offset)
                data = stream.read(MAX_READ_BYTES)
        except OSError:
            return  # not written yet
        self._offset += len(data)
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()  # an unfinished last line waits for its end
        for line in lines:
            try:
                document = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill: the readers skip it too
            if isinstance(document, dict):
                self._count(document)

    def _count(self, document: dict[str, Any]) -> None:
        for resource in document.get("resourceSpans") or ():
            for scope in resource.get("scopeSpans") or ():
                for span in scope.get("spans") or ():
                    self.spans += 1
                    attrs = decode_attributes(span.get("attributes"))
                    if operation_of(attrs, str(span.get("name", ""))) in INFERENCE_KINDS:
                        self._count_call(attrs, span)

    def _count_call(self, attrs: dict[str, Any], span: dict[str, Any]) -> None:
        usage = usage_of(attrs)
        if all(math.isnan(v) for v in usage.values()):
            return
        self.model_calls += 1
        self.input_tokens += int(_zero_if_nan(usage["input_tokens"]))
        self.output_tokens += int(_zero_if_nan(usage["output_tokens"]))
        try:
            cost = self._price(attrs, usage, int(span.get("startTimeUnixNano") or 0))
        except Exception:  # noqa: BLE001 - a price table surprise must not stop the live line
            logger.debug("live line: pricing failed", exc_info=True)
            cost = math.nan
        if math.isnan(cost):
            self.unpriced_calls += 1
        else:
            self.api_usd += cost

    def _price(self, attrs: dict[str, Any], usage: dict[str, float], start_ns: int) -> float:
        if self._pricer is None:
            from profiler.pricing.api import ApiPricer

            self._pricer = ApiPricer()
        return self._pricer.price(model=model_of(attrs), provider=provider_of(attrs),
                                  input_tokens=usage["input_tokens"], output_tokens=usage["output_tokens"],
                                  cache_read_tokens=usage["cache_read_tokens"],
                                  cache_write_tokens=usage["cache_write_tokens"], start_ns=start_ns,
                                  reported_cost_usd=reported_cost_of(attrs)).cost_usd


def _zero_if_nan(value: float) -> float:
    return 0.0 if math.isnan(value) else value


def _tokens(count: int) -> str:
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.2f}M"


def format_line(elapsed_s: float, tally: SpanTally, gpus: list[tuple[float | None, float | None]]) -> str:
    """The status line, such as
    `sessionprof 0:42  38 spans  4 model calls  12.5k in / 800 out tok  $0.0213 API  GPU 212 W 31.2 GiB`.

    Dollars are API token prices only (GPU and energy dollars come with the report); `+` marks a
    total that leaves out unpriced calls. GPU figures appear once a reading exists.
    """
    minutes, seconds = divmod(int(elapsed_s), 60)
    parts = [f"sessionprof {minutes}:{seconds:02d}", f"{tally.spans} spans", f"{tally.model_calls} model calls"]
    if tally.model_calls:
        parts.append(f"{_tokens(tally.input_tokens)} in / {_tokens(tally.output_tokens)} out tok")
        priced = tally.model_calls - tally.unpriced_calls
        if priced:
            parts.append(f"${tally.api_usd:.4f}{'+' if tally.unpriced_calls else ''} API")
        if tally.unpriced_calls:
            parts.append(f"{tally.unpriced_calls} unpriced")
    powers = [p for p, _ in gpus if p is not None and not math.isnan(p)]
    memory = [m for _, m in gpus if m is not None and not math.isnan(m)]
    if powers or memory:
        label = "GPU" if len(gpus) == 1 else f"{len(gpus)} GPUs"
        figures = [f"{sum(powers):.0f} W"] if powers else []
        figures += [f"{sum(memory) / 1024**3:.1f} GiB"] if memory else []
        parts.append(f"{label} {' '.join(figures)}")
    return "  ".join(parts)


class LiveLine:
    """Redraws the status line on `stream` about once a second from a thread, while recording.

    Quiet (no thread, no output) when `stream` is not a terminal, so logs and pipes stay clean.
    """

    def __init__(self, tally: SpanTally, stream: TextIO, *,
                 gpus: Callable[[], list[tuple[float | None, float | None]]] = list,
                 interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        """Prepare the line; nothing is drawn until `start()`."""
        self.tally = tally
        self.stream = stream
        self.gpus = gpus
        self.interval_s = interval_s
        self.clock = clock
        self.enabled = _is_terminal(stream)
        self._started = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._drawn = False

    def start(self) -> None:
        """Start redrawing (on a terminal only)."""
        self._started = self.clock()
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def tick(self) -> None:
        """Count what is new and redraw the line in place. The thread calls this; tests may too."""
        self.tally.update()
        width = max(20, shutil.get_terminal_size((100, 24)).columns - 1)  # a wrapped line cannot be redrawn
        line = format_line(self.clock() - self._started, self.tally, self.gpus())[:width]
        self.stream.write(f"\r{line}\x1b[K")
        self.stream.flush()
        self._drawn = True

    def stop(self) -> None:
        """Stop redrawing and clear the line, so the report starts on a clean line. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(2.0)
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._drawn = False

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the line is a nicety; the run goes on without it
                logger.debug("live line failed", exc_info=True)
                return


def _is_terminal(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
