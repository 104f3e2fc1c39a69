"""`sessionprof`: the typer app; it gathers the commands, each in the module of its group."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from profiler.cli import comparing, reporting, running
from profiler.cli.output import debug

app = typer.Typer(
    name="sessionprof",
    help="What did this agent session cost, and which step spent it? Tokens, dollars, GPU joules and GiB*s per step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Prefixed(logging.Formatter):
    """One `sessionprof:` before each logged line, also where the message already starts with it."""

    def format(self, record: logging.LogRecord) -> str:
        message = super().format(record)
        return message if message.startswith("sessionprof:") else f"sessionprof: {message}"


@app.callback()
def _main(debug_flag: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    debug["on"] = debug_flag
    handler = logging.StreamHandler()
    handler.setFormatter(_Prefixed())
    logging.basicConfig(level=logging.DEBUG if debug_flag else logging.WARNING, handlers=[handler])


def gpus() -> None:
    """List the GPUs NVML sees and the fields each supports (or say there are none)."""
    from profiler.gpu.nvml import probe_gpus

    devices, reason = probe_gpus()
    if not devices:
        typer.echo(f"no GPU: {reason}")
        return
    for info in devices:
        supported = ", ".join(k for k, v in info.supports.items() if v) or "none"
        missing = ", ".join(k for k, v in info.supports.items() if not v)
        typer.echo(f"GPU {info.index}: {info.name}  {info.uuid}")
        typer.echo(f"  supports: {supported}")
        if missing:
            typer.echo(f"  not supported: {missing}")
        for key in ("driver_version", "architecture", "power_limit_w", "memory_total_bytes", "mig_mode"):
            if key in info.details:
                typer.echo(f"  {key}: {info.details[key]}")


app.command()(reporting.report)
app.command(context_settings=running.CONTEXT_SETTINGS, options_metavar=running.USAGE)(running.run)
app.command()(running.serve)
app.command()(gpus)
app.command()(reporting.sessions)
app.command()(comparing.diff)
app.command()(comparing.whatif)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
