"""`@profiler.agent`, `@profiler.tool`, `@profiler.llm`, `@profiler.step`: one span per call.

Each works bare (`@tool`), with arguments (`@tool(name="search")`, `@llm(model="gpt-4o")`), on sync,
async, generator and async-generator functions and methods, and as a context manager
(`with profiler.tool("search") as call:`). Everything a span needs that does not depend on the call
is computed once, at decoration. With no session and no tracer provider, a decorated call costs one
context-variable read and a global check. Exceptions from the wrapped code propagate unchanged; no
exception from the profiler itself ever reaches the caller.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.trace import SpanKind, Status, StatusCode

from instrumentation import _state, _tracer, semconv
from instrumentation._state import counters
from instrumentation.content import capture_enabled, content_attributes
from instrumentation.usage import Usage, extract_usage

logger = logging.getLogger(__name__)
F = TypeVar("F", bound=Callable[..., Any])




@dataclass(frozen=True, slots=True)
class _Spec:
    operation: str
    span_name: str
    span_kind: SpanKind
    attributes: Mapping[str, Any]
    model: str | None = None
    provider: str | None = None
    reads_usage: bool = False


def _spec(operation: str, name: str | None, fallback: str, model: str | None, provider: str | None,
          attributes: Mapping[str, Any] | None) -> _Spec:
    attrs: dict[str, Any] = {semconv.OPERATION: operation}
    label = name or fallback
    if operation == semconv.OP_EXECUTE_TOOL:
        attrs[semconv.TOOL_NAME] = label
        span_name = f"execute_tool {label}"
    elif operation == semconv.OP_INVOKE_AGENT:
        attrs[semconv.AGENT_NAME] = label
        span_name = f"invoke_agent {label}"
    elif operation == semconv.OP_CHAT:
        span_name = f"chat {model}" if model else (name or "chat")
        if model:
            attrs[semconv.REQUEST_MODEL] = model
    else:
        span_name = label
    if provider:
        attrs[semconv.PROVIDER] = provider
    attrs.update(attributes or {})
    kind = SpanKind.CLIENT if operation == semconv.OP_CHAT else SpanKind.INTERNAL
    return _Spec(operation, span_name, kind, attrs, model, provider, operation == semconv.OP_CHAT)


# --- span lifecycle, each step guarded so a profiler failure never reaches the agent ---------------

def _begin(tracer: trace.Tracer, spec: _Spec) -> tuple[trace.Span | None, object]:
    try:
        parent = None
        if _state.ambient_parent is not None and not trace.get_current_span().get_span_context().is_valid:
            parent = _state.ambient_parent  # a root step of a child process: under its session's span
        span = tracer.start_span(spec.span_name, context=parent, kind=spec.span_kind, attributes=spec.attributes)
        return span, otel_context.attach(_context_of(span, spec))
    except Exception:  # noqa: BLE001
        counters.note()
        logger.debug("sessionprof: could not start a span", exc_info=True)
        return None, None


def _finish(span: trace.Span | None, token: object, spec: _Spec, result: Any, error: BaseException | None,
            call: tuple[Callable[..., Any] | None, tuple[Any, ...], dict[str, Any]] | None = None) -> None:
    if span is None:
        return
    try:
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]
    except Exception:  # noqa: BLE001 - detached in another context (generator closed elsewhere)
        counters.note()
    try:
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            span.set_attribute(semconv.ERROR_TYPE, type(error).__qualname__)
        elif spec.reads_usage and result is not None:
            usage = extract_usage(result)
            if usage is not None:
                _apply_usage(span, spec, usage)
        if error is None and call is not None:
            capture, redact = capture_enabled()
            if capture:
                span.set_attributes(content_attributes(spec.operation, call[0], call[1], call[2], result, redact))
    except Exception:  # noqa: BLE001 - a response we cannot read still ends its span, with what was read
        counters.note()
    finally:
        try:
            span.end()
        except Exception:  # noqa: BLE001
            counters.note()


def _apply_usage(span: trace.Span, spec: _Spec, usage: Usage) -> None:
    span.set_attributes(usage.attributes())
    if not spec.provider and usage.provider:
        span.set_attribute(semconv.PROVIDER, usage.provider)
    if usage.model and not spec.model:
        span.update_name(f"chat {usage.model}")


def _context_of(span: trace.Span, spec: _Spec) -> otel_context.Context:
    context = trace.set_span_in_context(span)
    if spec.reads_usage:
        # We own this model call's span: instrumentors that honour OTel's suppression key (the
        # official, OpenInference and OpenLLMetry ones) then emit no second span, and no second bill.
        context = otel_context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True, context)
    return context


def _attach(span: trace.Span | None, spec: _Spec) -> object:
    if span is None:
        return None
    try:
        return otel_context.attach(_context_of(span, spec))
    except Exception:  # noqa: BLE001
        counters.note()
        return None


def _detach(token: object) -> None:
    if token is not None:
        try:
            otel_context.detach(token)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001
            counters.note()


# --- wrappers -----------------------------------------------------------------------------------

def _wrap(func: F, spec: _Spec) -> F:
    if inspect.isasyncgenfunction(func):
        return _wrap_async_gen(func, spec)  # type: ignore[return-value]
    if inspect.iscoroutinefunction(func):
        return _wrap_coroutine(func, spec)  # type: ignore[return-value]
    if inspect.isgeneratorfunction(func):
        return _wrap_gen(func, spec)  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = _tracer.tracer()
        if tracer is None:
            return func(*args, **kwargs)
        span, token = _begin(tracer, spec)
        try:
            result = func(*args, **kwargs)
        except BaseException as error:
            _finish(span, token, spec, None, error)
            raise
        _finish(span, token, spec, result, None, (func, args, kwargs))
        return result

    return wrapper  # type: ignore[return-value]


def _wrap_coroutine(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = _tracer.tracer()
        if tracer is None:
            return await func(*args, **kwargs)
        span, token = _begin(tracer, spec)
        try:
            result = await func(*args, **kwargs)
        except BaseException as error:
            _finish(span, token, spec, None, error)
            raise
        _finish(span, token, spec, result, None, (func, args, kwargs))
        return result

    return wrapper


def _wrap_gen(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # The span covers the generator from its first step to its end, and is the current span only
    # while the generator's own code runs, never in the caller between items.
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = _tracer.tracer()
        if tracer is None:
            return (yield from func(*args, **kwargs))
        span, token = _begin(tracer, spec)
        _detach(token)
        generator = func(*args, **kwargs)
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = _attach(span, spec)
                try:
                    if to_throw is not None:
                        error, to_throw = to_throw, None
                        item = generator.throw(error)
                    else:
                        item = generator.send(to_send)
                finally:
                    _detach(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    generator.close()
                    raise
                except BaseException as error:  # noqa: BLE001 - thrown in by the caller: passed on
                    to_throw = error
        except StopIteration as stop:
            _finish(span, None, spec, None, None)
            return stop.value
        except GeneratorExit:
            _finish(span, None, spec, None, None)
            raise
        except BaseException as error:
            _finish(span, None, spec, None, error)
            raise

    return wrapper


def _wrap_async_gen(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    @functools.wraps(func)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        tracer = _tracer.tracer()
        generator = func(*args, **kwargs)
        span, token = _begin(tracer, spec) if tracer is not None else (None, None)
        _detach(token)
        to_send: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                token = _attach(span, spec)
                try:
                    if to_throw is not None:
                        error, to_throw = to_throw, None
                        item = await generator.athrow(error)
                    else:
                        item = await generator.asend(to_send)
                finally:
                    _detach(token)
                try:
                    to_send = yield item
                except GeneratorExit:
                    await generator.aclose()
                    raise
                except BaseException as error:  # noqa: BLE001 - thrown in by the caller: passed on
                    to_throw = error
        except StopAsyncIteration:
            _finish(span, None, spec, None, None)
        except GeneratorExit:
            _finish(span, None, spec, None, None)
            raise
        except BaseException as error:
            _finish(span, None, spec, None, error)
            raise

    return wrapper


# --- the public decorator objects -------------------------------------------------------------------

class StepScope:
    """What `with profiler.tool("x") as call:` gives: the open span, to annotate."""

    __slots__ = ("_span",)

    def __init__(self, span: trace.Span | None) -> None:
        self._span = span

    def set(self, key: str, value: Any) -> None:
        """Set an attribute on the step's span (ignored when not recording)."""
        if self._span is not None:
            try:
                self._span.set_attribute(key, value)
            except Exception:  # noqa: BLE001
                counters.note()

    def record_usage(self, response: Any = None, **counts: Any) -> None:
        """Record token usage from a response object or dict, or from counts (see `record_usage`)."""
        if self._span is not None:
            _record(self._span, response, counts)


#: The entries of step objects open in this context, innermost last: (step, span, token). A context
#: variable, not a list on the step, so one step object entered by two asyncio tasks or threads at
#: once keeps each entry's span and context token apart (each task and thread has its own context).
_open_entries: contextvars.ContextVar[tuple[tuple[_Step, trace.Span | None, object], ...]] = \
    contextvars.ContextVar("sessionprof_open_steps", default=())


class _Step:
    """A configured decorator that is also a (sync and async) context manager."""

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec

    def __call__(self, func: F) -> F:
        if not callable(func):
            raise TypeError(f"@{self._spec.operation} decorates a function, not {type(func).__name__}")
        return _wrap(func, self._spec)

    def __enter__(self) -> StepScope:
        tracer = _tracer.tracer()
        span, token = _begin(tracer, self._spec) if tracer is not None else (None, None)
        _open_entries.set((*_open_entries.get(), (self, span, token)))
        return StepScope(span)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span, token = self._take_entry()
        _finish(span, token, self._spec, None, exc)

    def _take_entry(self) -> tuple[trace.Span | None, object]:
        """Remove and return this step's innermost entry open in this context."""
        entries = _open_entries.get()
        for position in range(len(entries) - 1, -1, -1):
            step, span, token = entries[position]
            if step is self:
                _open_entries.set(entries[:position] + entries[position + 1:])
                return span, token
        return None, None  # exited in another context than it was entered in: nothing to end here

    async def __aenter__(self) -> StepScope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)


def _make(operation: str) -> Callable[..., Any]:
    @overload
    def decorator(func: F, /) -> F: ...
    @overload
    def decorator(name: str | None = None, /, *, model: str | None = None, provider: str | None = None,
                  attributes: Mapping[str, Any] | None = None) -> _Step: ...

    def decorator(func_or_name: Any = None, /, *, name: str | None = None, model: str | None = None,
                  provider: str | None = None, attributes: Mapping[str, Any] | None = None) -> Any:
        if callable(func_or_name) and not isinstance(func_or_name, str):
            fallback = getattr(func_or_name, "__name__", None) or type(func_or_name).__name__
            return _wrap(func_or_name, _spec(operation, name, fallback, model, provider, attributes))
        label = func_or_name if isinstance(func_or_name, str) else name
        step = _Step(_spec(operation, label, operation if operation != semconv.OP_STEP else "step",
                           model, provider, attributes))
        if label is None:
            # `@tool()` with no name: the function's own name, once we see it.
            return _Deferred(operation, model, provider, attributes, step)
        return step

    return decorator


class _Deferred(_Step):
    """`@tool()` / `@llm(model=...)` without a name: named after the function it decorates."""

    def __init__(self, operation: str, model: str | None, provider: str | None,
                 attributes: Mapping[str, Any] | None, step: _Step) -> None:
        super().__init__(step._spec)
        self._args = (operation, model, provider, attributes)

    def __call__(self, func: F) -> F:
        operation, model, provider, attributes = self._args
        fallback = getattr(func, "__name__", None) or type(func).__name__
        return _wrap(func, _spec(operation, None, fallback, model, provider, attributes))


agent = _make(semconv.OP_INVOKE_AGENT)
agent.__doc__ = "Mark an agent invocation (`invoke_agent`): the loop that calls models and tools."
tool = _make(semconv.OP_EXECUTE_TOOL)
tool.__doc__ = "Mark a tool call (`execute_tool`)."
llm = _make(semconv.OP_CHAT)
llm.__doc__ = "Mark a model call (`chat`); usage is read from the OpenAI/Anthropic response it returns."
step = _make(semconv.OP_STEP)
step.__doc__ = "Mark any other step worth its own row."


def record_usage(response: Any = None, *, input_tokens: int | None = None, output_tokens: int | None = None,
                 cache_read_tokens: int | None = None, cache_write_tokens: int | None = None,
                 reasoning_tokens: int | None = None, model: str | None = None, provider: str | None = None) -> None:
    """Record token usage on the current span: from a response object or dict, or from counts.

    `input_tokens` includes cache reads and writes (the OTel convention); `output_tokens` includes
    reasoning. Does nothing when no span is recording.
    """
    span = trace.get_current_span()
    if not span.is_recording():
        return
    _record(span, response, {"input_tokens": input_tokens, "output_tokens": output_tokens,
                             "cache_read_tokens": cache_read_tokens, "cache_write_tokens": cache_write_tokens,
                             "reasoning_tokens": reasoning_tokens, "model": model, "provider": provider})


def _record(span: trace.Span, response: Any, counts: Mapping[str, Any]) -> None:
    try:
        usage = extract_usage(response) if response is not None else None
        given = {k: v for k, v in counts.items() if v is not None}
        if usage is None:
            usage = Usage(**given)
        elif given:
            usage = Usage(**{**{f: getattr(usage, f) for f in Usage.__slots__}, **given})
        span.set_attributes(usage.attributes())
        if usage.provider:
            span.set_attribute(semconv.PROVIDER, usage.provider)
    except Exception:  # noqa: BLE001
        counters.note()
        logger.debug("sessionprof: could not record usage", exc_info=True)
