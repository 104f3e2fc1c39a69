"""`RunDirExporter`: appends finished spans to a run directory's `spans.jsonl`, one `TracesData` a line."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from instrumentation import _state, forksafe
from instrumentation.otlp_json import encode_traces_data
from instrumentation.run_dir import SPANS_FILE, create_run_dir
from instrumentation.safe_files import FileRemovedError, LineAppender

logger = logging.getLogger(__name__)


class RunDirExporter(SpanExporter):
    """Writes OTLP JSON Lines that Jaeger, otel-tui and the Collector read back.

    Each batch is one line written with a single `write(2)` on an `O_APPEND` descriptor, so several
    processes (an agent and the children it starts) can share one file without mixing lines. A kill
    leaves at most one partial last line, which readers skip; a failed write (a full disk) is cut
    back, so the file still ends at a line boundary. The file is never opened through a link.
    """

    def __init__(self, run_dir: str | Path) -> None:
        """Prepare to write `<run_dir>/spans.jsonl`; the file is opened on the first export."""
        self.path = Path(run_dir) / SPANS_FILE
        self._file = LineAppender(self.path)
        self._dir_ready = False
        self._warned: set[str] = set()
        self.exported_spans = 0
        self.failed_spans = 0
        forksafe.register(self._file)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append one line for the batch. Never raises: a failure is counted, and warned of once per kind."""
        if not spans:
            return SpanExportResult.SUCCESS
        try:
            self.append_document(encode_traces_data(spans, process_pid=os.getpid()))
        except Exception as err:  # noqa: BLE001 - an exporter must never raise into the pipeline
            self.failed_spans += len(spans)
            self._warn_once(err)
            return SpanExportResult.FAILURE
        self.exported_spans += len(spans)
        return SpanExportResult.SUCCESS

    def append_document(self, document: Mapping[str, Any]) -> None:
        """Append one OTLP JSON `TracesData` document as one line, whole or not at all.

        The OTLP receiver writes what it receives through here too, so a run has one writer format
        and one append discipline. Safe to call from several threads.

        Raises:
            OSError: the file could not be opened or written (`FileRemovedError` when it was deleted).
            TypeError, ValueError: the document is not JSON-encodable.
        """
        line = json.dumps(document, separators=(",", ":"), default=str) + "\n"
        if not self._dir_ready:
            create_run_dir(self.path.parent)
            self._dir_ready = True
        self._file.append(line.encode("utf-8", errors="replace"))

    def _warn_once(self, err: Exception) -> None:
        """One warning per kind of failure: a full disk fails every batch, and says so once."""
        kind = type(err).__name__ + str(getattr(err, "errno", ""))
        if kind in self._warned:
            return
        self._warned.add(kind)
        if isinstance(err, FileRemovedError) or (isinstance(err, FileNotFoundError) and not self.path.parent.exists()):
            _state.warn_run_lost(self.path.parent, f"the run directory {self.path.parent} was deleted while the "
                                 "run was recording; its records are lost")
        elif isinstance(err, OSError):
            logger.warning("sessionprof: could not write spans to %s (%s); lost spans are counted in run.json",
                           self.path, err.strerror or err)
        else:
            logger.warning("sessionprof: could not encode spans for %s (%s); lost spans are counted in run.json",
                           self.path, type(err).__name__)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Lines go straight to the file: nothing to flush."""
        return True

    def shutdown(self) -> None:
        """Close the file. Idempotent."""
        self._file.close()
