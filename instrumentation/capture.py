"""Every span of the process, whoever makes it: the global tracer provider we install, and our
processor on the provider a program installs itself.

OpenTelemetry's global provider can be set once. We set it first (`CaptureProvider`, whose
processor writes run directories) so that instrumentors and SDKs that emit spans themselves have
somewhere to send them. A program that later calls `trace.set_tracer_provider(its_own)` must still
get what it asked for: the patched setter makes the program's provider the global one, adds our
processor to it, and the tracers handed out before then follow it. So the program's exporters,
sampler and resource see every span they would have seen without us, and we see them too.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.environment_variables import OTEL_PYTHON_TRACER_PROVIDER as ENV_PROVIDER
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider

from instrumentation import forksafe, termination
from instrumentation.processor import SessionSpanProcessor

logger = logging.getLogger(__name__)


class FollowingTracer(trace.Tracer):
    """A tracer of `CaptureProvider` that starts its spans with the program's provider once there is one."""

    def __init__(self, provider: CaptureProvider, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """Remember what the tracer was asked for; the real tracer is made on first use."""
        self._provider = provider
        self._args = args
        self._kwargs = kwargs
        self._target: trace.Tracer | None = None
        self._target_of: object = None

    def _tracer(self) -> trace.Tracer:
        owner = self._provider.program_provider or self._provider
        if self._target is None or self._target_of is not owner:
            if owner is self._provider:
                self._target = self._provider.own_tracer(self._args, self._kwargs)
            else:
                self._target = owner.get_tracer(*self._args, **self._kwargs)  # type: ignore[attr-defined]
            self._target_of = owner
        return self._target

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        """Start a span with the provider in charge now (see `trace.Tracer.start_span`)."""
        return self._tracer().start_span(*args, **kwargs)

    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """The provider in charge now's `start_as_current_span` (a context manager and decorator)."""
        return self._tracer().start_as_current_span(*args, **kwargs)


class CaptureProvider(TracerProvider):
    """The SDK provider we make global when the program has none: its spans go to our processor,
    and to any processor the program adds to it (`trace.get_tracer_provider().add_span_processor`)."""

    def __init__(self, processor: SpanProcessor) -> None:
        """Build the provider (resource and sampler from the OTEL_* environment, as the SDK does)."""
        # Our own atexit handler flushes the processor; the SDK's would be a second one per provider.
        super().__init__(shutdown_on_exit=False)
        self.add_span_processor(processor)
        self.program_provider: trace.TracerProvider | None = None
        """The provider the program installed after us, which our tracers now start spans with."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> trace.Tracer:
        """A tracer that follows the program's provider, should it install one later."""
        return FollowingTracer(self, args, kwargs)

    def own_tracer(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> trace.Tracer:
        """A tracer of this provider itself."""
        return super().get_tracer(*args, **kwargs)


class _Attached(SpanProcessor):
    """Our processor as a guest on the program's provider: the program's `shutdown()` flushes it,
    and only our exit handler stops it (a program may shut its provider down and make another)."""

    def __init__(self, processor: SessionSpanProcessor) -> None:
        self.processor = processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.processor.on_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self.processor.on_end(span)

    def shutdown(self) -> None:
        self.processor.force_flush(timeout_millis=5_000)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.processor.force_flush(timeout_millis)


_lock = threading.RLock()


def _new_lock() -> None:
    global _lock
    _lock = threading.RLock()  # a parent's thread may have held the old one at the fork


forksafe.at_fork_in_child(_new_lock)
_processor: SessionSpanProcessor | None = None
_attached: weakref.WeakSet[Any] = weakref.WeakSet()
_original_setter = trace.set_tracer_provider


def processor() -> SessionSpanProcessor:
    """The process's capture processor (no exporter: each span goes to its session's run directory)."""
    global _processor
    with _lock:
        if _processor is None:
            _processor = SessionSpanProcessor()
            atexit.register(_processor.shutdown)
            termination.on_terminate(_flush_on_terminate)  # SIGTERM skips atexit
        return _processor


def _flush_on_terminate() -> None:
    if _processor is not None:
        _processor.force_flush(timeout_millis=2_000)


def existing_processor() -> SessionSpanProcessor | None:
    """The capture processor if one was made, without making one."""
    return _processor


def install() -> str:
    """Make every span of the process reach the capture processor. Idempotent.

    Returns:
        How: `installed` (no provider was set: ours is now the global one), `attached` (the
        program's provider has our processor, or a `SessionSpanProcessor` the program added
        itself), or `unattached` (the program's provider takes no span processor).
    """
    with _lock:
        ours = processor()
        if trace.set_tracer_provider is not _set_tracer_provider:
            trace.set_tracer_provider = _set_tracer_provider
        current = getattr(trace, "_TRACER_PROVIDER", None)
        if current is None and ENV_PROVIDER in os.environ:
            current = trace.get_tracer_provider()  # the provider the environment names, as OTel loads it
        if current is None:
            _original_setter(CaptureProvider(ours))
            current = getattr(trace, "_TRACER_PROVIDER", None)
        if isinstance(current, CaptureProvider):
            program = current.program_provider
            return "installed" if program is None else _attach(program, ours)
        return _attach(current, ours) if current is not None else "unattached"


def records_outside_sessions() -> bool:
    """Whether spans started outside every session are written somewhere (`instrument()` set where)."""
    return _processor is not None and _processor.fallback_run_dir is not None


def flush(timeout_s: float = 5.0) -> None:
    """Export what the capture processor holds now (a session does this as it closes)."""
    if _processor is not None:
        _processor.force_flush(timeout_millis=int(timeout_s * 1000))


def _attach(provider: Any, ours: SessionSpanProcessor) -> str:
    with contextlib.suppress(TypeError):  # TypeError: a provider that takes no weak reference
        if provider in _attached:
            return "attached"
    try:
        add = getattr(provider, "add_span_processor", None)
        if add is None:
            return "unattached"
        held = getattr(getattr(provider, "_active_span_processor", None), "_span_processors", ())
        if any(isinstance(p, SessionSpanProcessor) for p in held):
            return "attached"  # the program records this provider's spans where it chose already
        add(_Attached(ours))
    except Exception:  # noqa: BLE001 - a foreign provider must not break the program
        logger.debug("could not attach to %r", provider, exc_info=True)
        return "unattached"
    with contextlib.suppress(TypeError):
        _attached.add(provider)
    return "attached"


def _set_tracer_provider(tracer_provider: trace.TracerProvider) -> None:
    """`trace.set_tracer_provider`, as the program sees it: its provider becomes the global one
    even though ours was set first, and ours follows it (a second call is refused, as OTel does)."""
    try:
        with _lock:
            current = getattr(trace, "_TRACER_PROVIDER", None)
            if (isinstance(current, CaptureProvider) and current.program_provider is None
                    and tracer_provider is not current):
                if _processor is not None and _attach(tracer_provider, _processor) != "attached":
                    _notice(f"the program installed a {type(tracer_provider).__name__}, which takes no "
                            "span processor of ours: its spans are not recorded")
                current.program_provider = tracer_provider
                trace._TRACER_PROVIDER = tracer_provider  # type: ignore[attr-defined]
                return
    except Exception:  # noqa: BLE001 - fall back to OTel's own behaviour
        logger.debug("could not hand over to the program's provider", exc_info=True)
    _original_setter(tracer_provider)


def _notice(message: str) -> None:
    print(f"sessionprof: {message}", file=sys.stderr)
