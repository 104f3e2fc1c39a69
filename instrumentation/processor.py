"""`SessionSpanProcessor`: stamps spans with their session and exports them in the background.

Adding it to a `TracerProvider` you own is all it takes to record that provider's spans in a run
directory: the one you name, or (with no arguments) the run directory of the session active when
each span starts. Spans wait in a bounded queue that a named daemon thread drains at least every
`flush_interval_s`; when the queue is full, spans are dropped and counted, never blocking the agent.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import weakref
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from instrumentation import _state, semconv
from instrumentation.exporter import RunDirExporter
from instrumentation.run_dir import ENV_RUN_DIR

logger = logging.getLogger(__name__)
THREAD_NAME = "sessionprof-exporter"


class SessionSpanProcessor(SpanProcessor):
    """Batching span processor that never blocks or raises into the code it watches."""

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        run_dir: str | Path | None = None,
        max_queue_size: int = 65_536,
        max_batch_size: int = 2_048,
        flush_interval_s: float = 0.5,
    ) -> None:
        """Export to `exporter`, or to a `RunDirExporter` for `run_dir`; with neither, to the run
        directory of the session active when each span starts, else `$SESSIONPROF_RUN_DIR` (read
        now), else nowhere (such spans are counted in `spans_outside_sessions`).

        Raises:
            ValueError: both `exporter` and `run_dir` given, or a non-positive size.
        """
        if exporter is not None and run_dir is not None:
            raise ValueError("give at most one of exporter= or run_dir=")
        if max_queue_size <= 0 or max_batch_size <= 0 or flush_interval_s <= 0:
            raise ValueError("max_queue_size, max_batch_size and flush_interval_s must be positive")
        if exporter is None and run_dir is not None:
            exporter = RunDirExporter(run_dir)
        self.exporter = exporter
        """Where every span goes; None: each to the run directory of its session (see `fallback_run_dir`)."""
        self.fallback_run_dir: Path | None = (Path(os.environ[ENV_RUN_DIR]) if exporter is None
                                              and os.environ.get(ENV_RUN_DIR) else None)
        """With no exporter: where spans started outside every session go (None: not recorded)."""
        self.max_queue_size = max_queue_size
        self.max_batch_size = max_batch_size
        self.flush_interval_s = flush_interval_s
        self.shutdown_timeout_s = 5.0
        self.synchronous = False
        """Export each span as it ends. Set in worker processes (forked, or spawned by a session),
        which are often ended by SIGTERM (multiprocessing's Pool.terminate) before a batch is due."""
        self.dropped_spans = 0
        self.failed_exports = 0
        self.internal_errors = 0
        self.spans_outside_sessions = 0
        self._queue: collections.deque[tuple[ReadableSpan, SpanExporter]] = collections.deque()
        self._routes: dict[int, Path] = {}  # span id -> run directory, from start to end (no exporter)
        self._exporters: dict[Path, RunDirExporter] = {}
        self._wake = threading.Event()
        self._export_lock = threading.Lock()
        self._shutdown = False
        self._thread: threading.Thread | None = None
        _register_fork_handler(self)

    # --- SpanProcessor -------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        """Stamp the span with the active session's conversation id, unless it names a session
        already; with no exporter, note the run directory it belongs to."""
        try:
            session = _state.current_session()
            session_id = session.session_id if session is not None else _state.ambient_session_id
            if session_id is not None and _SESSION_KEYS.isdisjoint(span.attributes or ()) \
                    and not _names_a_session(span.resource):
                span.set_attribute(semconv.CONVERSATION_ID, session_id)
            if self.exporter is None:
                destination = session.path if session is not None else self.fallback_run_dir
                if destination is not None and len(self._routes) < self.max_queue_size:
                    self._routes[span.context.span_id] = destination
        except Exception:  # noqa: BLE001 - never raise into the agent
            self.internal_errors += 1

    def on_end(self, span: ReadableSpan) -> None:
        """Queue the finished span; drop and count it if the queue is full."""
        if self.exporter is not None:
            exporter = self.exporter
        else:
            exporter = self._exporter_for(span)
            if exporter is None:
                return
        if self._shutdown:
            self.dropped_spans += 1
            return
        if len(self._queue) >= self.max_queue_size:
            self.dropped_spans += 1
            return
        self._queue.append((span, exporter))
        if self.synchronous:
            self._drain(self.shutdown_timeout_s)
            return
        if self._thread is None:  # first span, or first in a forked child (the fork handler resets it)
            self._start_worker()
        if len(self._queue) >= self.max_batch_size:
            self._wake.set()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export everything queued now, in the caller's thread; give up (False) after the timeout,
        so a hung exporter can delay the agent by at most that much."""
        return self._drain(timeout_millis / 1000.0)

    def shutdown(self) -> None:
        """Flush, stop the worker and shut the exporter down. Idempotent."""
        if self._shutdown:
            return
        self._shutdown = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self.shutdown_timeout_s)
        self._drain(self.shutdown_timeout_s)
        for exporter in [self.exporter, *self._exporters.values()]:
            try:
                if exporter is not None:
                    exporter.shutdown()
            except Exception:  # noqa: BLE001
                self.internal_errors += 1

    def _exporter_for(self, span: ReadableSpan) -> SpanExporter | None:
        context = span.context
        destination = self._routes.pop(context.span_id, None) if context is not None else None
        if destination is None:
            self.spans_outside_sessions += 1
            return None
        exporter = self._exporters.get(destination)
        if exporter is None:
            exporter = self._exporters.setdefault(destination, RunDirExporter(destination))
        return exporter

    # --- internals ------------------------------------------------------------------------------
    def _start_worker(self) -> None:
        with self._export_lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._shutdown:
            self._wake.wait(self.flush_interval_s)
            self._wake.clear()
            self._drain()

    def _drain(self, timeout_s: float = -1) -> bool:
        if not self._export_lock.acquire(timeout=timeout_s):
            return False  # the worker is stuck in a slow export; do not wait on it forever
        try:
            while self._queue:
                batches: dict[SpanExporter, list[ReadableSpan]] = {}
                for _ in range(min(len(self._queue), self.max_batch_size)):
                    span, exporter = self._queue.popleft()
                    batches.setdefault(exporter, []).append(span)
                for exporter, batch in batches.items():
                    self._export(exporter, batch)
        finally:
            self._export_lock.release()
        return True

    def _export(self, exporter: SpanExporter, batch: list[ReadableSpan]) -> None:
        try:
            result = exporter.export(batch)
        except Exception:  # noqa: BLE001 - a third-party exporter may raise
            result = SpanExportResult.FAILURE
        if result is not SpanExportResult.SUCCESS:
            self.failed_exports += len(batch)

    def _after_fork(self) -> None:
        # The worker thread does not survive fork: the child starts its own on its first span. Spans
        # queued before the fork are the parent's to write.
        self._thread = None
        self._export_lock = threading.Lock()
        self._wake = threading.Event()
        self._queue.clear()
        self.synchronous = True


_SESSION_KEYS = frozenset(semconv.SESSION_KEYS)
# Resources hash by their JSON text, which is slow per span: keep the answer by identity (a
# provider has one resource; a few are kept alive here, which is why the cache is small).
_resources_naming_a_session: dict[int, tuple[Any, bool]] = {}


def _names_a_session(resource: Any) -> bool:
    """Whether a span's resource names its session."""
    if resource is None:
        return False
    known = _resources_naming_a_session.get(id(resource))
    if known is not None and known[0] is resource:
        return known[1]
    names = not _SESSION_KEYS.isdisjoint(getattr(resource, "attributes", None) or ())
    if len(_resources_naming_a_session) < 64:
        _resources_naming_a_session[id(resource)] = (resource, names)
    return names


_processors: weakref.WeakSet[SessionSpanProcessor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for processor in list(_processors):
        processor._after_fork()
    # multiprocessing's forked children leave through os._exit, which skips atexit; its own
    # finalizers still run, so flush there.
    try:
        from multiprocessing import util

        util.Finalize(None, _flush_all_processors, exitpriority=100)
    except Exception:  # noqa: BLE001
        pass


def _flush_all_processors() -> None:
    for processor in list(_processors):
        processor.force_flush(timeout_millis=5_000)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _register_fork_handler(processor: SessionSpanProcessor) -> None:
    _processors.add(processor)
