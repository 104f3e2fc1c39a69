"""`sessionprof run` and `serve`: record a run (a command we start, or OTLP from agents started
elsewhere), then report on what it recorded."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from profiler.cli.options import (
    By,
    Format,
    Gpu,
    Interval,
    NoHtml,
    NoReport,
    Output,
    Policy,
    PriceFlags,
    RunDir,
    Top,
    Weight,
    price_options,
)
from profiler.cli.output import emit, user_errors
from profiler.errors import ProfilerError

if TYPE_CHECKING:
    from profiler.attribution.ledger import Ledger
    from profiler.capture.recording import RunResult
    from profiler.pricing.prices import Prices

#: Options end at `--` or at the first argument that is not one, which begins the command. An
#: unknown option before it is a usage error, never taken for the command.
CONTEXT_SETTINGS = {"allow_extra_args": True, "allow_interspersed_args": False}
USAGE = "[OPTIONS] [--] CMD [ARGS]..."


def _instrument_selection(value: str) -> str:
    """A malformed `--instrument` is a usage error, like a bad choice."""
    from instrumentation.instrumentors import parse_selection

    try:
        return str(parse_selection(value))
    except ValueError as err:
        raise typer.BadParameter("expected " + str(err).removeprefix("--instrument takes ")) from None


@price_options
def run(
    ctx: typer.Context,
    run_dir: RunDir = None,
    gpu: Gpu = "auto",
    interval_s: Interval = 0.1,
    instrument: Annotated[str, typer.Option("--instrument", callback=_instrument_selection,
                                            help="The installed OpenTelemetry instrumentors a Python CMD turns "
                                                 "on: auto (all), none, or a comma list of names.")] = "auto",
    fmt: Format = "table",
    by: By = "step",
    top: Top = None,
    output: Output = None,
    no_report: NoReport = False,
    no_html: NoHtml = False,
    weight: Weight = "usd",
    policy: Policy = "equal",
    *,
    prices: PriceFlags,
) -> None:
    """Run CMD (after `--`) with the GPUs sampled and every span it makes or exports recorded, then report.

    Exits with CMD's exit code (3 when CMD succeeded but not one span was recorded).
    """
    from profiler.capture.runner import run_command

    command = list(ctx.args)
    if not command:
        typer.echo("sessionprof: error: give the command to run after --, e.g. sessionprof run -- python agent.py",
                   err=True)
        raise typer.Exit(2)
    with user_errors():
        factors = prices.load()
        result = run_command(command, run_dir=run_dir, gpu=gpu, interval_s=interval_s, prices=factors,
                             instrument=instrument)
    _finish(result, factors, fmt=fmt, by=by, top=top, output=output, no_report=no_report, no_html=no_html,
            weight=weight, policy=policy)


@price_options
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on. Anything but loopback takes spans "
                                      "from the network (a warning says so).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port to listen on (OTLP/HTTP's 4318 by "
                                      "default; 0: a free one).")] = 4318,
    run_dir: RunDir = None,
    gpu: Gpu = "auto",
    interval_s: Interval = 0.1,
    fmt: Format = "table",
    by: By = "step",
    top: Top = None,
    output: Output = None,
    no_report: NoReport = False,
    no_html: NoHtml = False,
    weight: Weight = "usd",
    policy: Policy = "equal",
    *,
    prices: PriceFlags,
) -> None:
    """Take OTLP/HTTP (traces, and Claude Code's events) from agents started elsewhere and sample the GPUs,
    until Ctrl-C or SIGTERM; then report on the run."""
    from profiler.capture.serve import serve as serve_run

    with user_errors():
        factors = prices.load()
        result = serve_run(run_dir=run_dir, gpu=gpu, interval_s=interval_s, prices=factors, host=host, port=port)
    _finish(result, factors, fmt=fmt, by=by, top=top, output=output, no_report=no_report, no_html=no_html,
            weight=weight, policy=policy, served=True)


def _finish(result: RunResult, factors: Prices, *, fmt: Any, by: Any, top: int | None, output: Path | None,
            no_report: bool, no_html: bool, weight: Any, policy: Any, served: bool = False) -> None:
    """Report on a finished recording, or say why there is nothing to report; exit with its code (the
    command's, or `EMPTY_RUN_EXIT_CODE` when it succeeded and not one span was recorded)."""
    from profiler.capture.empty_run import explain_empty_run

    # A run killed by a signal has its report say so, empty or not; a lost run has nothing to report.
    empty = result.lost is None and not result.spans_recorded and result.signal is None
    if empty:
        typer.echo(explain_empty_run(result, served=served), err=True)
    if not no_report and result.lost is None and not (empty and not result.gpu_sampled):
        from profiler.attribution.engine import attribute
        from profiler.traces.load import load
        from reports.registry import renderer_for

        renderer = renderer_for(fmt.value)
        try:
            ledger = attribute(load(result.path), policy=policy.value, prices=factors)  # type: ignore[arg-type]
            if not no_html:
                _write_html(ledger, result.path)
            emit(renderer.encoded(ledger, by=by.value, top=top, weight=weight.value,
                                  color=output is None and sys.stdout.isatty()), output, binary=renderer.binary)
        except (ProfilerError, ValueError) as err:
            typer.echo(f"sessionprof: could not report on the run: {err}", err=True)
    typer.echo(f"run directory: {result.path}", err=True)
    raise typer.Exit(result.final_exit_code)


def _write_html(ledger: Ledger, run_path: Path) -> None:
    """Write the run's HTML report beside its records; a failure to write is a notice, not an error."""
    from instrumentation.run_dir import REPORT_FILE
    from instrumentation.safe_files import write_private
    from reports import render

    page = run_path / REPORT_FILE
    try:
        write_private(page, [str(render(ledger, "html")).encode("utf-8")])
    except OSError as err:
        typer.echo(f"sessionprof: could not write {page}: {err.strerror or err}", err=True)
        return
    typer.echo(f"HTML report: {page}", err=True)
