"""What the command line writes: a report to stdout or a file, and a user's mistake as one line."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from profiler.errors import ProfilerError

#: Set by the `--debug` flag: let tracebacks through instead of one-line errors.
debug = {"on": False}


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn our errors into one line on stderr and exit code 1 (tracebacks with --debug)."""
    try:
        yield
    except (ProfilerError, ValueError, OSError) as err:
        if debug["on"]:
            raise
        typer.echo(f"sessionprof: error: {err}", err=True)
        raise typer.Exit(1) from None


def emit(report: str | bytes | Iterable[str] | Iterable[bytes], output: Path | None, *,
         binary: bool = False) -> None:
    """Write a report to stdout or to `output`: whole, or in pieces of text or of UTF-8
    (`reports.render_encoded`) written as they come, so that a big report is never held whole.
    A `binary` report (or a whole one in bytes) is never written to a terminal."""
    pieces = (report,) if isinstance(report, (str, bytes)) else report
    if output is None:
        if (binary or isinstance(report, bytes)) and sys.stdout.isatty():
            raise ValueError("this format is binary: write it to a file with -o FILE")
        _to_stdout(pieces)
        return
    from instrumentation.safe_files import write_private

    # Mode 0600 through a temporary renamed into place: never half a report, never through a link.
    write_private(output, (piece if isinstance(piece, bytes) else piece.encode("utf-8") for piece in pieces))
    typer.echo(f"report written to {output}", err=True)


def _to_stdout(pieces: Iterable[str | bytes]) -> None:
    binary_stdout = getattr(sys.stdout, "buffer", None)  # None: a text-only stand-in for stdout
    for piece in pieces:
        if isinstance(piece, str):
            sys.stdout.write(piece)
        elif binary_stdout is None:
            sys.stdout.write(piece.decode("utf-8"))
        else:
            sys.stdout.flush()  # what went before, in order
            binary_stdout.write(piece)
    sys.stdout.flush()
