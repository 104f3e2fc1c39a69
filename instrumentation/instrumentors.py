"""The installed OpenTelemetry instrumentors (entry-point group `opentelemetry_instrumentor`, which
the official, OpenInference and OpenLLMetry packages register) and turning them on.

An instrumentor whose library is not installed is passed over without importing it, as
`opentelemetry-instrument` does: its distribution's `instruments` extra names that library.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)
GROUP = "opentelemetry_instrumentor"
#: OpenTelemetry's own setting: instrumentors that `auto` leaves off (entry-point names, comma-separated).
ENV_DISABLED = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_EXTRA = re.compile(r"""extra\s*==\s*["'](instruments(?:-any)?)["']""")


@dataclass(frozen=True)
class Selection:
    """Which instrumentors to turn on: every installed one, none, or those named."""

    mode: str
    """`auto`, `none` or `list`."""
    names: tuple[str, ...] = ()
    """With `list`: entry-point names (`openai`) or distribution names (`openinference-instrumentation-openai`)."""

    def __str__(self) -> str:
        """The selection as `--instrument` takes it."""
        return ",".join(self.names) if self.mode == "list" else self.mode


def parse_selection(text: str | Iterable[str] | None) -> Selection:
    """Read `auto`, `none`, a comma list of names, or an iterable of names.

    Raises:
        ValueError: an empty name, or a name that no package could have.
    """
    if text is None:
        return Selection("auto")
    if isinstance(text, str):
        if text.strip().lower() in ("auto", "none"):
            return Selection(text.strip().lower())
        text = text.split(",")
    names = tuple(name.strip() for name in text)
    if not names or any(not _NAME.fullmatch(name) for name in names):
        raise ValueError("--instrument takes auto, none or a comma list of instrumentor names, "
                         f"not {','.join(names)!r}")
    return Selection("list", names)


@dataclass
class Activation:
    """What `activate` did."""

    active: list[str] = field(default_factory=list)
    """The instrumentors turned on, as `name (distribution)`."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Instrumentors left off, and why."""
    unknown: list[str] = field(default_factory=list)
    """Names in the selection that no installed instrumentor has."""


def activate(selection: Selection) -> Activation:
    """Turn on the selected instrumentors. Never raises: a failing one is skipped with its reason."""
    result = Activation()
    if selection.mode == "none":
        return result
    wanted = set(selection.names) if selection.mode == "list" else None
    disabled = {n.strip() for n in os.environ.get(ENV_DISABLED, "").split(",") if n.strip()}
    matched: set[str] = set()
    for entry_point in _entry_points():
        dist = getattr(getattr(entry_point, "dist", None), "name", None) or "?"
        label = f"{entry_point.name} ({dist})"
        if wanted is not None:
            hits = wanted & {entry_point.name, dist}
            if not hits:
                continue
            matched |= hits
        elif entry_point.name in disabled:
            result.skipped[label] = f"listed in {ENV_DISABLED}"
            continue
        missing = _missing_library(getattr(entry_point, "dist", None))
        if missing:
            result.skipped[label] = f"{missing} is not installed"
            continue
        reason = _turn_on(entry_point)
        if reason is None:
            result.active.append(label)
        else:
            result.skipped[label] = reason
    result.unknown = sorted((wanted or set()) - matched)
    return result


def installed() -> list[str]:
    """The installed instrumentors, as `name (distribution)`."""
    return sorted(f"{ep.name} ({getattr(getattr(ep, 'dist', None), 'name', None) or '?'})"
                  for ep in _entry_points())


def _entry_points() -> list[Any]:
    try:
        from importlib.metadata import entry_points

        return list(entry_points(group=GROUP))
    except Exception:  # noqa: BLE001 - a broken distribution's metadata must not stop the program
        logger.debug("could not list instrumentors", exc_info=True)
        return []


def _turn_on(entry_point: Any) -> str | None:
    """Load and instrument one; the reason it is off, or None."""
    try:
        loaded = entry_point.load()
        instrumentor = loaded() if isinstance(loaded, type) else loaded
        instrumentor.instrument()
    except Exception as err:  # noqa: BLE001 - a third-party instrumentor may raise anything
        return f"failed: {type(err).__name__}: {str(err)[:160]}"
    if getattr(instrumentor, "is_instrumented_by_opentelemetry", True) is False:
        # BaseInstrumentor declines, logging why, when the library's version is outside its range.
        return "declined (the instrumented library's version is not one it supports)"
    return None


def _missing_library(dist: Any) -> str | None:
    """The library an instrumentor's distribution instruments, when it is not installed."""
    requires = getattr(dist, "requires", None) or []
    all_of: list[str] = []
    any_of: list[str] = []
    for requirement in requires:
        extra = _EXTRA.search(requirement)
        name = _NAME.match(requirement)
        if extra and name:
            (any_of if extra.group(1) == "instruments-any" else all_of).append(name.group(0))
    absent = [name for name in all_of if not _is_installed(name)]
    if absent:
        return absent[0]
    if any_of and not any(_is_installed(name) for name in any_of):
        return " or ".join(any_of)
    return None


def _is_installed(name: str) -> bool:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - unreadable metadata: let the instrumentor decide
        return True
    return True
