"""Render a ledger in a format of the registry (`reports.registry`): whole, in text pieces or in UTF-8."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from reports.registry import RENDERERS, renderer_for

if TYPE_CHECKING:
    from profiler.attribution.ledger import Ledger

#: The formats a ledger renders in, in the order the CLI lists them.
FORMATS = tuple(RENDERERS)


def render_parts(ledger: Ledger, format: str = "table", **options: Any) -> Iterable[str] | bytes:
    """`render`'s output in consecutive pieces for a writer: JSON a chunk of steps at a time, so a
    million-step report is never held whole; any other format in one piece (bytes for `parquet`).
    Takes the same arguments as `render`."""
    renderer = renderer_for(format)
    if renderer.byte_parts is not None:
        return (piece.decode("utf-8") for piece in render_encoded(ledger, format, **options))
    output = render(ledger, format, **options)
    return output if isinstance(output, bytes) else (output,)


def render_encoded(ledger: Ledger, format: str = "table", *, by: str = "step", top: int | None = None,
                   **options: Any) -> Iterable[bytes]:
    """`render_parts` in UTF-8 for a file or a pipe (parquet: its bytes, in one piece). The JSON
    steps come as the encoder wrote them, never decoded into text on the way."""
    return renderer_for(format).encoded(ledger, by=by, top=top, **options)


def render(ledger: Ledger, format: str = "table", *, by: str = "step", top: int | None = None, weight: str = "usd",
           **options: Any) -> str | bytes:
    """Render `ledger` in one of `FORMATS`; `parquet` gives bytes, every other format text.

    Args:
        ledger: the attributed run.
        format: the output format.
        by: `step` (the tree of steps) or a grouping: `tool`, `model`, `session`, `kind`.
        top: show only the N steps (or groups) that cost the most.
        weight: for `speedscope` and `folded`: each step's own `usd`, `joules` or `gib_s`.
        options: renderer-specific settings (`width`, `color` for the table); a renderer is given
            only those it takes.
    """
    return renderer_for(format).render(ledger, by=by, top=top, weight=weight, **options)
