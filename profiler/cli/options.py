"""The command line's options, declared once: fixed choices as enums, shared options, the price options."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from profiler.attribution.choices import GROUP_KEYS, POLICIES
from reports.registry import DIFF_FORMATS, RENDERERS, SESSIONS_FORMATS, WEIGHTS, WHATIF_FORMATS

if TYPE_CHECKING:
    from profiler.pricing.prices import Prices


def _choices(name: str, values: tuple[str, ...]) -> type[Enum]:
    """An enum of string values, so that typer checks a choice and lists the valid ones (exit 2)."""
    return Enum(name, {value: value for value in values}, type=str)  # type: ignore[return-value]


ReportFormat = _choices("ReportFormat", tuple(RENDERERS))
SessionsFormat = _choices("SessionsFormat", SESSIONS_FORMATS)
DiffFormat = _choices("DiffFormat", DIFF_FORMATS)
WhatifFormat = _choices("WhatifFormat", WHATIF_FORMATS)
GroupBy = _choices("GroupBy", GROUP_KEYS)
SharePolicy = _choices("SharePolicy", POLICIES)
FlameWeight = _choices("FlameWeight", WEIGHTS)

Format = Annotated[ReportFormat, typer.Option("--format", "-f", help="The report's format.")]  # type: ignore[valid-type]
Weight = Annotated[FlameWeight, typer.Option(  # type: ignore[valid-type]
    "--weight", help="What speedscope and folded flame graphs weigh: each step's own usd | joules | gib_s "
    "(folded counts: micro-USD, mJ, MiB*s).")]
By = Annotated[GroupBy, typer.Option("--by", help="step (the tree) or a grouping.")]  # type: ignore[valid-type]
Top = Annotated[int | None, typer.Option("--top", min=1, help="Only the N costliest steps or groups.")]
Output = Annotated[Path | None, typer.Option("--output", "-o", help="Write the report to this file.")]
Policy = Annotated[SharePolicy, typer.Option(  # type: ignore[valid-type]
    "--policy", help="How concurrent steps share a GPU: equal | tokens | memory (by the GPU memory each "
    "step's process holds).")]
# What a recording takes: `run` and `serve`.
RunDir = Annotated[Path | None, typer.Option("--run-dir", help="The run's directory (default: a new one under "
                                             "./.sessionprof/runs).")]
Gpu = Annotated[str, typer.Option("--gpu", help="auto | nvml | none | replay:<samples.csv>")]
Interval = Annotated[float, typer.Option("--interval", help="Seconds between GPU readings.")]
NoReport = Annotated[bool, typer.Option("--no-report", help="Record only; print no report.")]
NoHtml = Annotated[bool, typer.Option("--no-html", help="Do not write report.html into the run directory.")]
Config = Annotated[Path | None, typer.Option("--config", help="Config file (default ./sessionprof.toml).",
                                              rich_help_panel="Prices")]
Sessions = Annotated[list[str] | None, typer.Option("--session", help="Only this session (id or unique prefix; "
                                                       "repeat for several). `sessionprof sessions` lists them.")]
Since = Annotated[str | None, typer.Option("--since", help="Only steps that end at or after this time: ISO-8601 "
                                              "(UTC unless an offset is given) or epoch seconds.")]
Until = Annotated[str | None, typer.Option("--until", help="Only steps that start at or before this time: "
                                              "ISO-8601 (UTC unless an offset is given) or epoch seconds.")]


@dataclass(frozen=True)
class PriceFlags:
    """The price options as given on the command line; None where not given."""

    gpu_usd_per_hour: float | None = None
    energy_usd_per_kwh: float | None = None
    pue: float | None = None
    carbon_g_per_kwh: float | None = None
    region: str | None = None
    config: Path | None = None

    def overrides(self) -> dict[str, Any]:
        """The factors given (config excluded), by `Prices` field name."""
        return {key: value for key, value in asdict(self).items() if key != "config" and value is not None}

    def load(self) -> Prices:
        """Prices from these flags over the environment, the config file and the defaults."""
        from profiler.pricing.prices import load_prices

        return load_prices(config=self.config, **self.overrides())


def _price_option(name: str, kind: Any, flag: str, text: str) -> inspect.Parameter:
    option = typer.Option(flag, help=text, rich_help_panel="Prices")
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=Annotated[kind, option])


PRICE_PARAMETERS = (
    _price_option("gpu_usd_per_hour", float | None, "--gpu-usd-per-hour", "GPU rental rate, $/GPU-hour."),
    _price_option("energy_usd_per_kwh", float | None, "--energy-usd-per-kwh", "Electricity price, $/kWh."),
    _price_option("pue", float | None, "--pue", "Data-centre PUE (>= 1)."),
    _price_option("carbon_g_per_kwh", float | None, "--carbon-g-per-kwh", "Grid intensity, gCO2e/kWh."),
    _price_option("region", str | None, "--region", "Grid region for carbon: world, us, eu, fr, ..."),
    inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Config),
)

Command = TypeVar("Command", bound=Callable[..., Any])


def price_options(command: Command) -> Command:
    """Give a command the price options (`--gpu-usd-per-hour` ... `--config`), declared here once.

    The command declares a `prices: PriceFlags` parameter in their stead and receives them in it.
    """
    signature = inspect.signature(command, eval_str=True)  # typer reads this signature as it stands
    kept = [parameter for name, parameter in signature.parameters.items() if name != "prices"]

    @functools.wraps(command)
    def with_prices(**options: Any) -> Any:
        flags = PriceFlags(**{parameter.name: options.pop(parameter.name) for parameter in PRICE_PARAMETERS})
        return command(**options, prices=flags)

    with_prices.__signature__ = signature.replace(parameters=[*kept, *PRICE_PARAMETERS])  # type: ignore[attr-defined]
    return with_prices  # type: ignore[return-value]
