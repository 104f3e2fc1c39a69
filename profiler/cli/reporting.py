"""`sessionprof report` and `sessionprof sessions`: read one run or trace file and report on it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from profiler.cli.loading import attribute_path, select_steps
from profiler.cli.options import (
    By,
    Config,
    Format,
    Output,
    Policy,
    PriceFlags,
    Sessions,
    SessionsFormat,
    Since,
    Top,
    Until,
    Weight,
    price_options,
)
from profiler.cli.output import emit, user_errors


@price_options
def report(
    path: Annotated[Path, typer.Argument(help="A run directory or a trace file (OTLP JSON, ...).")],
    gpu_samples: Annotated[Path | None, typer.Option("--gpu-samples", help="GPU telemetry to join: our "
                                                        "samples.csv or an nvidia-smi CSV.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="Time zone of nvidia-smi timestamps (default: this "
                                              "machine's).")] = None,
    fmt: Format = "table",
    by: By = "step",
    top: Top = None,
    output: Output = None,
    policy: Policy = "equal",
    weight: Weight = "usd",
    session: Sessions = None,
    since: Since = None,
    until: Until = None,
    *,
    prices: PriceFlags,
) -> None:
    """Attribute a recorded run (or another tool's trace) and print its per-step costs."""
    from reports.registry import renderer_for

    renderer = renderer_for(fmt.value)
    with user_errors():
        ledger = attribute_path(path, prices.load(), policy.value, gpu_samples=gpu_samples, tz=tz)
        ledger = select_steps(ledger, session, since, until)
        emit(renderer.encoded(ledger, by=by.value, top=top, weight=weight.value,
                              color=output is None and sys.stdout.isatty()), output, binary=renderer.binary)


def sessions(
    path: Annotated[Path, typer.Argument(help="A run directory or a trace file.")],
    fmt: Annotated[SessionsFormat, typer.Option("--format", "-f", help="The list's format.")] = "table",  # type: ignore[valid-type]
    output: Output = None,
    config: Config = None,
) -> None:
    """List the sessions in a run or trace file, with their steps, model calls, tokens, dollars and wall time."""
    from profiler.analysis.sessions import session_summaries
    from reports.sessions_report import render_sessions

    with user_errors():
        ledger = attribute_path(path, PriceFlags(config=config).load())
        emit(render_sessions(session_summaries(ledger), fmt.value, source=str(path)), output)
