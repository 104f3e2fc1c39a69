"""Prices and factors: GPU rental rates, electricity, PUE and grid carbon intensity. Flags beat
environment beat config file beat defaults; every default names its source in `DEFAULT_SOURCES`."""

from __future__ import annotations

import math
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from profiler.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: Indicative on-demand single-GPU rental rates in USD per hour, matched against the NVML name.
#: A GPU not listed here has no default: its GPU cost is reported as unpriced until a rate is set.
DEFAULT_GPU_USD_PER_HOUR: dict[str, float] = {
    "H100": 2.49,  # Lambda on-demand H100, 2026 (computespec.pages.dev, "Cloud GPU pricing explained")
    "A100": 1.19,  # RunPod A100 80GB, March 2026 (deploybase.ai, "NVIDIA L40S cloud pricing")
    "L40S": 0.79,  # RunPod, March 2026 (same source)
    "RTX 4090": 0.34,  # RunPod, March 2026 (same source)
}

#: Approximate annual grid carbon intensity in gCO2e/kWh (Ember, Global Electricity Review, 2023 data).
CARBON_G_PER_KWH_BY_REGION: dict[str, float] = {
    "world": 480.0,
    "us": 369.0,
    "eu": 244.0,
    "de": 381.0,
    "fr": 56.0,
    "cn": 582.0,
    "in": 713.0,
}

DEFAULT_SOURCES: dict[str, str] = {
    "energy_usd_per_kwh": "US average commercial electricity price, about 13 US cents/kWh (EIA, 2024)",
    "pue": "1.0: the GPU board's own energy only, as CodeCarbon assumes; data centres average about 1.58 "
    "(Uptime Institute, 2023)",
    "carbon_g_per_kwh": "world average grid intensity, 480 gCO2e/kWh (Ember, 2023 data)",
    "gpu_usd_per_hour": "indicative on-demand rental rates (Lambda, RunPod, 2026); see DEFAULT_GPU_USD_PER_HOUR",
    "api": "genai-prices bundled snapshot, prices as of each request's time",
}

CONFIG_FILE_NAMES = ("sessionprof.toml", ".sessionprof.toml")
_ENV = {
    "gpu_usd_per_hour": "SESSIONPROF_GPU_USD_PER_HOUR",
    "energy_usd_per_kwh": "SESSIONPROF_ENERGY_USD_PER_KWH",
    "pue": "SESSIONPROF_PUE",
    "carbon_g_per_kwh": "SESSIONPROF_CARBON_G_PER_KWH",
    "region": "SESSIONPROF_REGION",
}


@dataclass(frozen=True)
class Prices:
    """Every factor that turns measurements into dollars and grams."""

    gpu_usd_per_hour: float | None = None
    """One rate for every GPU; None uses `DEFAULT_GPU_USD_PER_HOUR` by GPU name."""
    energy_usd_per_kwh: float = 0.13
    """Electricity price."""
    pue: float = 1.0
    """Power usage effectiveness: facility energy over IT energy (>= 1)."""
    carbon_g_per_kwh: float | None = None
    """Grid intensity; None takes the region's figure."""
    region: str = "world"
    """Key of `CARBON_G_PER_KWH_BY_REGION`."""
    sources: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SOURCES))
    """Where each figure came from (default, config file, environment, flag)."""

    def __post_init__(self) -> None:
        """Reject prices that cannot be right, naming the setting."""
        for name in ("gpu_usd_per_hour", "energy_usd_per_kwh", "carbon_g_per_kwh"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")
        if not math.isfinite(self.pue) or self.pue < 1.0:
            raise ConfigError(f"pue must be a number >= 1.0, got {self.pue!r}")
        if self.carbon_g_per_kwh is None and self.region.lower() not in CARBON_G_PER_KWH_BY_REGION:
            known = ", ".join(sorted(CARBON_G_PER_KWH_BY_REGION))
            raise ConfigError(f"unknown region {self.region!r} (known: {known}; or set carbon_g_per_kwh)")

    @property
    def carbon_intensity_g_per_kwh(self) -> float:
        """The grid intensity in force: the explicit figure, else the region's."""
        if self.carbon_g_per_kwh is not None:
            return self.carbon_g_per_kwh
        return CARBON_G_PER_KWH_BY_REGION[self.region.lower()]

    def gpu_rate(self, gpu_name: str | None) -> tuple[float | None, str]:
        """Return (USD per GPU-hour, where it came from) for a device; None when unpriced."""
        if self.gpu_usd_per_hour is not None:
            return self.gpu_usd_per_hour, self.sources.get("gpu_usd_per_hour", "set by user")
        name = (gpu_name or "").upper()
        for key in sorted(DEFAULT_GPU_USD_PER_HOUR, key=len, reverse=True):
            if key in name:
                return DEFAULT_GPU_USD_PER_HOUR[key], f"default rate for {key}"
        return None, f"no rate for {gpu_name or 'unknown GPU'}: set --gpu-usd-per-hour"

    def to_json(self) -> dict[str, Any]:
        """Return the prices as recorded in run.json and reports."""
        data = asdict(self)
        data["carbon_intensity_g_per_kwh"] = self.carbon_intensity_g_per_kwh
        return data


def load_prices(
    *, config: Path | None = None, environ: dict[str, str] | None = None, cwd: Path | None = None, **flags: Any
) -> Prices:
    """Build `Prices` from defaults, a config file, the environment and flags, in rising precedence.

    The config file is `config`, else `sessionprof.toml` in `cwd`; its `[prices]` table takes the
    same keys as the flags. A flag given as None is ignored.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources = dict(DEFAULT_SOURCES)
    path = config or _find_config(cwd or Path.cwd())
    if path is not None:
        for key, value in _read_config(path).items():
            values[key], sources[key] = value, f"config file {path}"
    for key, variable in _ENV.items():
        if environ.get(variable, "").strip():
            values[key], sources[key] = _parse(key, environ[variable], variable), f"environment {variable}"
    for key, value in flags.items():
        if key not in _ENV:
            raise TypeError(f"unknown price setting {key!r}")
        if value is not None:
            values[key], sources[key] = _parse(key, value, f"--{key.replace('_', '-')}"), "command line"
    if "region" in values and "carbon_g_per_kwh" not in values:
        sources["carbon_g_per_kwh"] = f"region {values['region']} (Ember, 2023 data)"
    return Prices(**values, sources=sources)


def _find_config(cwd: Path) -> Path | None:
    for name in CONFIG_FILE_NAMES:
        if (cwd / name).is_file():
            return cwd / name
    return None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read config file ({err.strerror or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML ({err})") from None
    table = data.get("prices", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [prices] must be a table")
    unknown = sorted(set(table) - set(_ENV))
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) in [prices]: {', '.join(unknown)} (known: {', '.join(_ENV)})")
    return {key: _parse(key, value, f"{path} [prices].{key}") for key, value in table.items()}


def _parse(key: str, value: Any, where: str) -> Any:
    if key == "region":
        return str(value)
    try:
        if isinstance(value, bool):  # TOML `true` is not 1.0
            raise TypeError(key)
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}") from None


def with_overrides(prices: Prices, **changes: Any) -> Prices:
    """Return a copy of `prices` with some settings replaced (None leaves a setting as it is)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    sources = dict(prices.sources)
    for key in changes:
        sources[key] = "command line"
    return replace(prices, **changes, sources=sources)
