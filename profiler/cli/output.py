"""Where reports go: stdout or a file, report.html beside a run, and the report that ends a recording."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from profiler.errors import ProfilerError

if TYPE_CHECKING:
    from profiler.capture.recording import RunResult


def emit(report: str | bytes | Iterable[str] | Iterable[bytes], output: Path | None, *,
         binary: bool = False) -> None:
    """Write a report to stdout or to `output`: whole, or in pieces of text or of UTF-8
    (`reports.render_encoded`) written as they come, so that a big report is never held whole.
    A `binary` report (or a whole one in bytes) is never written to a terminal."""
    pieces = (report,) if isinstance(report, (str, bytes)) else report
    if output is None:
        if (binary or isinstance(report, bytes)) and sys.stdout.isatty():
            raise ValueError("this format is binary: write it to a file with -o FILE")
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
        return
    try:
        with output.open("wb") as stream:
            for piece in pieces:
                stream.write(piece if isinstance(piece, bytes) else piece.encode("utf-8"))
    except BaseException:
        if output.is_file():
            output.unlink()  # half a report reads as a whole one
        raise
    typer.echo(f"report written to {output}", err=True)


def write_html(ledger: Any, run_path: Path) -> None:
    """Write the run's HTML report beside its records; a failure to write is a notice, not an error."""
    from reports import render

    page = run_path / "report.html"
    try:
        page.write_text(str(render(ledger, "html")), encoding="utf-8")
    except OSError as err:
        typer.echo(f"sessionprof: could not write {page}: {err.strerror or err}", err=True)
        return
    typer.echo(f"HTML report: {page}", err=True)


def finish_recording(result: RunResult, options: dict[str, Any], *, served: bool = False) -> None:
    """Report on a finished `run` or `serve` (or say why there is nothing to report) and exit with its code.

    Args:
        result: the finished recording.
        options: the command's options by name (`format`, `by`, `top`, `output`, `weight`, `policy`,
            `prices`, `no_report`, `no_html`).
        served: the run came from `sessionprof serve`.

    Raises:
        typer.Exit: always, with the command's exit code (or `EMPTY_RUN_EXIT_CODE`).
    """
    from profiler.capture.empty_run import explain_empty_run

    if not result.spans_recorded:
        typer.echo(explain_empty_run(result, served=served), err=True)
    if not options["no_report"] and (result.spans_recorded or result.gpu_sampled):
        from profiler.attribution.engine import attribute
        from profiler.traces.load import load
        from reports import render_encoded
        from reports.render import BINARY_FORMATS

        output = options["output"]
        try:
            ledger = attribute(load(result.path), policy=options["policy"], prices=options["prices"])  # type: ignore[arg-type]
            if not options["no_html"]:
                write_html(ledger, result.path)
            emit(render_encoded(ledger, options["format"], by=options["by"], top=options["top"],
                                weight=options["weight"], color=output is None and sys.stdout.isatty()), output,
                 binary=options["format"] in BINARY_FORMATS)
        except (ProfilerError, ValueError) as err:
            typer.echo(f"sessionprof: could not report on the run: {err}", err=True)
    typer.echo(f"run directory: {result.path}", err=True)
    raise typer.Exit(result.final_exit_code)
