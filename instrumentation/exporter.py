"""`RunDirExporter`: appends finished spans to a run directory's `spans.jsonl`, one `TracesData` a line."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from instrumentation.otlp_json import encode_traces_data
from instrumentation.run_dir import SPANS_FILE, create_run_dir

logger = logging.getLogger(__name__)


class RunDirExporter(SpanExporter):
    """Writes OTLP JSON Lines that Jaeger, otel-tui and the Collector read back.

    Each batch is one line written with a single `write(2)` on an `O_APPEND` descriptor, so several
    processes (an agent and the children it starts) can share one file without mixing lines, and a
    kill leaves at most one partial last line, which readers skip.
    """

    def __init__(self, run_dir: str | Path) -> None:
        """Prepare to write `<run_dir>/spans.jsonl`; the file is opened on the first export."""
        self.path = Path(run_dir) / SPANS_FILE
        self._fd = -1
        self._lock = threading.Lock()
        self.exported_spans = 0
        self.failed_spans = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one line for the batch. Never raises: a failure is logged, counted and returned."""
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            self.append_document(encode_traces_data(spans, process_pid=os.getpid()))
        except Exception as err:  # noqa: BLE001 - an exporter must never raise into the pipeline
            self.failed_spans += len(spans)
            logger.warning("sessionprof: could not write %d span(s) to %s: %s", len(spans), self.path, err)
            return SpanExportResult.FAILURE
        self.exported_spans += len(spans)
        return SpanExportResult.SUCCESS

    def append_document(self, document: Mapping[str, Any]) -> None:
        """Append one OTLP JSON `TracesData` document as one line, in one `write(2)`.

        The OTLP receiver writes what it receives through here too, so a run has one writer format
        and one append discipline. Safe to call from several threads.

        Raises:
            OSError: the file could not be opened or written.
            TypeError, ValueError: the document is not JSON-encodable.
        """
        line = json.dumps(document, separators=(",", ":"), default=str) + "\n"
        data = line.encode("utf-8", errors="replace")
        with self._lock:
            if self._fd < 0:
                create_run_dir(self.path.parent)
                self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Lines go straight to the file: nothing to flush."""
        return True

    def shutdown(self) -> None:
        """Close the file. Idempotent."""
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1
