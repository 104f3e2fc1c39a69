"""`sessionprof`: run an agent under the profiler, report on a run or any trace file, list GPUs."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from profiler.errors import ProfilerError

app = typer.Typer(
    name="sessionprof",
    help="What did this agent session cost, and which step spent it? Tokens, dollars, GPU joules and GiB*s per step.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
_state = {"debug": False}

Format = Annotated[str, typer.Option("--format", "-f", help="table | json | csv | markdown | html | perfetto | "
                                     "speedscope | folded | parquet")]
Weight = Annotated[str, typer.Option("--weight", help="What speedscope and folded flame graphs weigh: each step's "
                                     "own usd | joules | gib_s (folded counts: micro-USD, mJ, MiB*s).")]
By = Annotated[str, typer.Option("--by", help="step (tree) | tool | model | session | kind")]
Top = Annotated[int | None, typer.Option("--top", min=1, help="Only the N costliest steps or groups.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")]
Policy = Annotated[str, typer.Option("--policy", help="How concurrent steps share a GPU: equal | tokens | "
                                     "memory (by the GPU memory each step's process holds).")]
GpuRate = Annotated[float | None, typer.Option("--gpu-usd-per-hour", help="GPU rental rate, $/GPU-hour.")]
EnergyPrice = Annotated[float | None, typer.Option("--energy-usd-per-kwh", help="Electricity price, $/kWh.")]
Pue = Annotated[float | None, typer.Option("--pue", help="Data-centre PUE (>= 1).")]
Carbon = Annotated[float | None, typer.Option("--carbon-g-per-kwh", help="Grid intensity, gCO2e/kWh.")]
Region = Annotated[str | None, typer.Option("--region", help="Grid region for carbon: world, us, eu, fr, ...")]
Config = Annotated[Path | None, typer.Option("--config", help="Config file (default ./sessionprof.toml).")]
Sessions = Annotated[list[str] | None, typer.Option("--session", help="Only this session (id or unique prefix; "
                                                       "repeat for several). `sessionprof sessions` lists them.")]
Since = Annotated[str | None, typer.Option("--since", help="Only steps that end at or after this time: ISO-8601 "
                                              "(UTC unless an offset is given) or epoch seconds.")]
Until = Annotated[str | None, typer.Option("--until", help="Only steps that start at or before this time: "
                                              "ISO-8601 (UTC unless an offset is given) or epoch seconds.")]


@app.callback()
def _main(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False) -> None:
    _state["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="sessionprof: %(message)s")


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn our errors into one line on stderr and exit code 1 (tracebacks with --debug)."""
    try:
        yield
    except (ProfilerError, ValueError, OSError) as err:
        if _state["debug"]:
            raise
        typer.echo(f"sessionprof: error: {err}", err=True)
        raise typer.Exit(1) from None


PRICE_FLAGS = ("gpu_usd_per_hour", "energy_usd_per_kwh", "pue", "carbon_g_per_kwh", "region")


def _prices(options: dict[str, Any]) -> Any:
    """Prices from a command's options: its price flags (those it takes) over env, config and defaults."""
    from profiler.pricing.prices import load_prices

    return load_prices(config=options.get("config"), **{k: options[k] for k in PRICE_FLAGS if k in options})


def _emit(report: str | bytes | Iterable[str] | Iterable[bytes], output: Path | None, *,
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


def _progress() -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A progress bar on stderr for long loads (only on a terminal)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

    bar = Progress("loading", BarColumn(), DownloadColumn(), TimeRemainingColumn(), transient=True,
                   console=__import__("rich.console").console.Console(stderr=True))
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            if total < 20_000_000:
                return
            bar.start()
            task = bar.add_task("load", total=total)
        bar.update(task, completed=done)

    return update, bar.stop


@app.command()
def report(
    path: Annotated[Path, typer.Argument(help="A run directory or a trace file (OTLP JSON, ...).")],
    gpu_samples: Annotated[Path | None, typer.Option("--gpu-samples", help="GPU telemetry to join: our "
                                                        "samples.csv or an nvidia-smi CSV.")] = None,
    tz: Annotated[str | None, typer.Option("--tz", help="Time zone of nvidia-smi timestamps (default: this "
                                              "machine's).")] = None,
    format: Format = "table",
    by: By = "step",
    top: Top = None,
    output: Output = None,
    policy: Policy = "equal",
    gpu_usd_per_hour: GpuRate = None,
    energy_usd_per_kwh: EnergyPrice = None,
    pue: Pue = None,
    carbon_g_per_kwh: Carbon = None,
    region: Region = None,
    config: Config = None,
    weight: Weight = "usd",
    session: Sessions = None,
    since: Since = None,
    until: Until = None,
) -> None:
    """Attribute a recorded run (or another tool's trace) and print its per-step costs."""
    from profiler.attribution.engine import attribute
    from profiler.traces.load import load
    from reports import render_encoded
    from reports.render import BINARY_FORMATS, FORMATS, WEIGHTS

    with _user_errors():
        _check_choice("--format", format, FORMATS)
        _check_choice("--weight", weight, WEIGHTS)
        _check_choice("--by", by, ("step", "tool", "model", "session", "kind"))
        prices = _prices(locals())
        update, done = _progress()
        try:
            run = load(path, gpu_samples, tz=tz, progress=update)
        finally:
            done()
        ledger = attribute(run, policy=policy, prices=prices)  # type: ignore[arg-type]
        ledger = _select(ledger, session, since, until)
        _emit(render_encoded(ledger, format, by=by, top=top, weight=weight,
                             color=output is None and sys.stdout.isatty()), output,
              binary=format in BINARY_FORMATS)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    ctx: typer.Context,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="The run's directory (default: a new one "
                                                    "under ./.sessionprof/runs).")] = None,
    gpu: Annotated[str, typer.Option("--gpu", help="auto | nvml | none | replay:<samples.csv>")] = "auto",
    interval_s: Annotated[float, typer.Option("--interval", help="Seconds between GPU readings.")] = 0.1,
    format: Format = "table",
    by: By = "step",
    top: Top = None,
    output: Output = None,
    no_report: Annotated[bool, typer.Option("--no-report", help="Record only; print no report.")] = False,
    no_html: Annotated[bool, typer.Option("--no-html", help="Do not write report.html into the run "
                                          "directory.")] = False,
    weight: Weight = "usd",
    policy: Policy = "equal",
    gpu_usd_per_hour: GpuRate = None,
    energy_usd_per_kwh: EnergyPrice = None,
    pue: Pue = None,
    carbon_g_per_kwh: Carbon = None,
    region: Region = None,
    config: Config = None,
) -> None:
    """Run CMD (after `--`) with the GPUs sampled and its decorated steps recorded, then report.

    Exits with CMD's exit code.
    """
    from profiler.capture.runner import run_command

    command = list(ctx.args)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        typer.echo("sessionprof: error: give the command to run after --, e.g. sessionprof run -- python agent.py",
                   err=True)
        raise typer.Exit(2)
    from reports.render import FORMATS, WEIGHTS

    with _user_errors():
        _check_choice("--format", format, FORMATS)
        _check_choice("--weight", weight, WEIGHTS)
        prices = _prices(locals())
        result = run_command(command, run_dir=run_dir, gpu=gpu, interval_s=interval_s, prices=prices)
    if not no_report:
        from profiler.attribution.engine import attribute
        from profiler.traces.load import load
        from reports import render_encoded
        from reports.render import BINARY_FORMATS

        try:
            ledger = attribute(load(result.path), policy=policy, prices=prices)  # type: ignore[arg-type]
            if not no_html:
                _write_html(ledger, result.path)
            _emit(render_encoded(ledger, format, by=by, top=top, weight=weight,
                                 color=output is None and sys.stdout.isatty()), output,
                  binary=format in BINARY_FORMATS)
        except (ProfilerError, ValueError) as err:
            typer.echo(f"sessionprof: could not report on the run: {err}", err=True)
    typer.echo(f"run directory: {result.path}", err=True)
    raise typer.Exit(result.exit_code)


@app.command()
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


def _write_html(ledger: Any, run_path: Path) -> None:
    """Write the run's HTML report beside its records; a failure to write is a notice, not an error."""
    from reports import render

    page = run_path / "report.html"
    try:
        page.write_text(str(render(ledger, "html")), encoding="utf-8")
    except OSError as err:
        typer.echo(f"sessionprof: could not write {page}: {err.strerror or err}", err=True)
        return
    typer.echo(f"HTML report: {page}", err=True)


def _select(ledger: Any, sessions: list[str] | None, since: str | None, until: str | None) -> Any:
    """Narrow a ledger to some sessions and/or the steps that overlap a time window."""
    from profiler.analysis.sessions import parse_time, select

    return select(ledger, sessions=sessions or None,
                  since_ns=parse_time(since, option="--since") if since is not None else None,
                  until_ns=parse_time(until, option="--until") if until is not None else None)


def _load_and_attribute(path: Path, prices: Any, policy: str = "equal") -> Any:
    """Load a run or trace file (with a progress bar on a terminal) and attribute it."""
    from profiler.attribution.engine import attribute
    from profiler.traces.load import load

    update, done = _progress()
    try:
        run = load(path, progress=update)
    finally:
        done()
    return attribute(run, policy=policy, prices=prices)  # type: ignore[arg-type]


@app.command()
def sessions(
    path: Annotated[Path, typer.Argument(help="A run directory or a trace file.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table | json | csv | markdown")] = "table",
    output: Output = None,
    config: Config = None,
) -> None:
    """List the sessions in a run or trace file, with their steps, model calls, tokens, dollars and wall time."""
    from profiler.analysis.sessions import session_summaries
    from reports.sessions_report import FORMATS, render_sessions

    with _user_errors():
        _check_choice("--format", format, FORMATS)
        ledger = _load_and_attribute(path, _prices({"config": config}))
        _emit(render_sessions(session_summaries(ledger), format, source=str(path)), output)


@app.command()
def diff(
    a: Annotated[Path, typer.Argument(help="Run A (before): a run directory or a trace file.")],
    b: Annotated[Path, typer.Argument(help="Run B (after): a run directory or a trace file.")],
    session_a: Annotated[list[str] | None, typer.Option("--session-a", help="Only this session of A (id or "
                                                           "unique prefix; repeatable).")] = None,
    session_b: Annotated[list[str] | None, typer.Option("--session-b", help="Only this session of B.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | markdown | json")] = "table",
    top: Annotated[int | None, typer.Option("--top", min=1, help="Only the N steps whose own total $ "
                                               "(then tokens, joules, GiB*s) changed most.")] = None,
    changed: Annotated[bool, typer.Option("--changed", help="Only steps that changed, appeared or "
                                          "vanished.")] = False,
    output: Output = None,
    policy: Policy = "equal",
    gpu_usd_per_hour: GpuRate = None,
    energy_usd_per_kwh: EnergyPrice = None,
    pue: Pue = None,
    carbon_g_per_kwh: Carbon = None,
    region: Region = None,
    config: Config = None,
) -> None:
    """Compare two runs step by step: change in tokens, dollars, joules and GiB*s, steps added and removed.

    Steps are matched by their path of names and their ordinal among same-named siblings.
    """
    from profiler.analysis.diff import diff_ledgers, only_changed, top_changes
    from reports.diff_report import FORMATS, render_diff

    with _user_errors():
        _check_choice("--format", format, FORMATS)
        prices = _prices(locals())
        ledger_a = _select(_load_and_attribute(a, prices, policy), session_a, None, None)
        ledger_b = _select(_load_and_attribute(b, prices, policy), session_b, None, None)
        result = diff_ledgers(ledger_a, ledger_b)
        rows, caption = (only_changed(result), "only steps that changed, appeared or vanished") if changed else (
            result.steps, "")
        if top is not None:
            ranked = top_changes(result, len(result.steps))
            rows = ranked[ranked.index.isin(rows.index)].head(top)
            caption = f"top {top} steps by change in their own total $ (then tokens, joules, GiB*s)"
        _emit(render_diff(result, format, rows=rows, caption=caption), output)


@app.command()
def whatif(
    path: Annotated[Path, typer.Argument(help="A run directory or a trace file (read only: never modified).")],
    model: Annotated[str | None, typer.Option("--model", help="Price every model call as this model "
                                                 "(a genai-prices name: gpt-4o, claude-sonnet-4-5, ...).")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="The model's provider (openai, "
                                                    "anthropic, ...); inferred when omitted.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="table | markdown | json")] = "table",
    output: Output = None,
    policy: Policy = "equal",
    gpu_usd_per_hour: GpuRate = None,
    energy_usd_per_kwh: EnergyPrice = None,
    pue: Pue = None,
    carbon_g_per_kwh: Carbon = None,
    region: Region = None,
    config: Config = None,
) -> None:
    """Re-price a recorded run under another model, other prices or another GPU rate.

    Self-hosted calls (vLLM, Ollama, ...) are priced as if sent to the API, with the break-even GPU rate.
    """
    from profiler.analysis.whatif import what_if
    from profiler.pricing.prices import with_overrides
    from profiler.traces.load import load
    from reports.whatif_report import FORMATS, render_whatif

    with _user_errors():
        _check_choice("--format", format, FORMATS)
        base = _prices({"config": config})
        scenario = with_overrides(base, gpu_usd_per_hour=gpu_usd_per_hour, energy_usd_per_kwh=energy_usd_per_kwh,
                                  pue=pue, carbon_g_per_kwh=carbon_g_per_kwh, region=region)
        if model is None and provider is not None:
            raise ValueError("--provider needs --model")
        update, done = _progress()
        try:
            run = load(path, progress=update)
        finally:
            done()
        result = what_if(run, model=model, provider=provider, prices=scenario, base_prices=base,
                         policy=policy)
        _emit(render_whatif(result, format), output)


def _check_choice(option: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{option} must be one of {', '.join(choices)}, not {value!r}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
