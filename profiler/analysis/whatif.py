"""What-if: re-price a recorded run under another model, other prices or another GPU rate.

The run is read, never written: a what-if is a second attribution of the same raw records. With a
model, every call whose usage is billed is priced with genai-prices as if that model had served the
same tokens; calls served on your own GPU (`genai.SELF_HOSTED_PROVIDERS`) are priced as if they had
gone to that API, which gives the break-even of self-hosting against the API.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from profiler.attribution.billing import mark_billable
from profiler.attribution.engine import attribute
from profiler.attribution.ledger import Ledger
from profiler.errors import ConfigError
from profiler.model import Run
from profiler.pricing.api import ApiPricer
from profiler.pricing.prices import Prices
from profiler.traces.genai import SELF_HOSTED_PROVIDERS

#: The cost components compared, as rows of `WhatIf.comparison`.
COMPONENTS = ("api_cost_usd", "gpu_cost_usd", "energy_cost_usd", "total_cost_usd", "co2_g")
_SELF_HOSTED_NOTE = "self-hosted"


@dataclass
class WhatIf:
    """A recorded run priced as it was and as it would have been."""

    original: Ledger
    scenario: Ledger
    changes: dict[str, Any]
    """What the scenario changes: `model`, `provider`, and each price setting with (was, now)."""
    comparison: pd.DataFrame
    """One row per cost component (`COMPONENTS`): `original`, `what_if`, `delta`, `pct`."""
    by_model: pd.DataFrame
    """Per original (provider, model): `calls`, `input_tokens`, `output_tokens`, `original_usd`,
    `what_if_usd`, `what_if_model` (as genai-prices priced it), `unpriced_calls`."""
    break_even: dict[str, Any] | None
    """For runs with self-hosted calls: what they cost on your GPU against the API (see `what_if`)."""


def check_model(model: str, provider: str | None = None, when_ns: int | None = None) -> str:
    """Return how genai-prices names `model` (`provider/model`), or raise a one-line ConfigError."""
    from genai_prices import Usage, calc_price

    when = datetime.fromtimestamp(when_ns / 1e9, tz=timezone.utc) if when_ns else None
    try:
        result = calc_price(Usage(input_tokens=0, output_tokens=0), model, provider_id=provider,
                            genai_request_timestamp=when)
    except (LookupError, ValueError) as err:
        where = f" at provider {provider!r}" if provider else ""
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"unknown model {model!r}{where}: genai-prices has no price for it ({reason}); "
                          "give a model it knows, e.g. gpt-4o, claude-sonnet-4-5, gemini-2.5-flash") from None
    return f"{result.provider.id}/{result.model.id}"


def what_if(run: Run, *, model: str | None = None, provider: str | None = None, prices: Prices | None = None,
            base_prices: Prices | None = None, policy: str = "equal") -> WhatIf:
    """Price `run` as recorded (with `base_prices`) and under the scenario.

    Args:
        run: the recorded run (left unchanged).
        model: price every billed model call as this model (genai-prices name, e.g. `gpt-4o`).
        provider: the provider of `model` (`openai`, `anthropic`, ...); inferred when None.
        prices: the scenario's GPU, energy and carbon factors (default: `base_prices`).
        base_prices: the factors of the run as recorded (default: `Prices()`).
        policy: how concurrent steps share a GPU, for both attributions.

    Raises:
        ConfigError: the model (or provider) is unknown to genai-prices.
    """
    base_prices = base_prices or Prices()
    prices = prices or base_prices
    pricer = ApiPricer()
    original = attribute(run, policy=policy, prices=base_prices, pricer=pricer)  # type: ignore[arg-type]
    spans = run.spans
    billing = mark_billable(spans).to_numpy(dtype=bool) if len(spans) else np.zeros(0, dtype=bool)
    self_hosted = billing.copy()
    if len(spans):
        self_hosted &= spans["provider"].isin(SELF_HOSTED_PROVIDERS).to_numpy()
    changes: dict[str, Any] = {}
    priced_as = None
    if model is not None:
        first_ns = int(spans["start_ns"].min()) if len(spans) else None
        priced_as = check_model(model, provider, first_ns)
        changes.update(model=model, provider=provider, priced_as=priced_as)
    for name in ("gpu_usd_per_hour", "energy_usd_per_kwh", "pue", "carbon_intensity_g_per_kwh", "region"):
        was, now = getattr(base_prices, name), getattr(prices, name)
        if was != now:
            changes[name] = {"was": was, "now": now}

    scenario_spans = spans.copy()
    if model is not None:
        scenario_spans.loc[billing, "model"] = model
        scenario_spans.loc[billing, "provider"] = provider
    scenario_run = Run(spans=scenario_spans, samples=run.samples, meta=dict(run.meta), source=run.source,
                       warnings=list(run.warnings))
    scenario = attribute(scenario_run, policy=policy, prices=prices, pricer=pricer)  # type: ignore[arg-type]
    return WhatIf(original=original, scenario=scenario, changes=changes,
                  comparison=_comparison(original, scenario),
                  by_model=_by_model(original, scenario),
                  break_even=(_break_even(original,
                                          _api_equivalent(scenario, spans, self_hosted, model, pricer))
                              if self_hosted.any() else None))


def _comparison(original: Ledger, scenario: Ledger) -> pd.DataFrame:
    rows = []
    for name in COMPONENTS:
        was, now = _figure(original, name), _figure(scenario, name)
        delta = now - was if was is not None and now is not None else None
        pct = delta / was * 100.0 if delta is not None and was else None
        rows.append({"component": name, "original": was, "what_if": now, "delta": delta, "pct": pct})
    return pd.DataFrame(rows)


def _figure(ledger: Ledger, name: str) -> float | None:
    value = ledger.totals.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0.0 if name == "api_cost_usd" and not ledger.checks.get("unpriced_calls") else None
    return float(value)


def _by_model(original: Ledger, scenario: Ledger) -> pd.DataFrame:
    """Per model of the recorded run: its calls, tokens and dollars as recorded and in the scenario."""
    was = original.steps[original.steps["bills_usage"]]
    keys = list(zip(was["trace_id"], was["span_id"], strict=True))
    now = scenario.steps.set_index(["trace_id", "span_id"]).loc[keys]
    frame = pd.DataFrame({
        "provider": was["provider"].fillna("(none)").to_numpy(dtype=object),
        "model": was["model"].fillna("(no model name)").to_numpy(dtype=object),
        "input_tokens": was["self_input_tokens"].to_numpy(dtype=float),
        "output_tokens": was["self_output_tokens"].to_numpy(dtype=float),
        "original_usd": was["self_api_cost_usd"].to_numpy(dtype=float),
        "what_if_usd": now["self_api_cost_usd"].to_numpy(dtype=float),
        "what_if_model": now["api_price_detail"].to_numpy(dtype=object),
        "unpriced_calls": (now["api_cost_source"] == "unpriced").to_numpy(dtype=int),
    })
    if not len(frame):
        return frame.assign(calls=pd.Series(dtype=np.int64))
    grouped = frame.groupby(["provider", "model"], sort=False)
    out = grouped.agg(calls=("input_tokens", "size"), input_tokens=("input_tokens", "sum"),
                      output_tokens=("output_tokens", "sum"),
                      original_usd=("original_usd", lambda v: v.sum(min_count=1)),
                      what_if_usd=("what_if_usd", lambda v: v.sum(min_count=1)),
                      what_if_model=("what_if_model", lambda v: ", ".join(sorted({str(x) for x in v if x}))),
                      unpriced_calls=("unpriced_calls", "sum"))
    out = out.reset_index().sort_values("what_if_usd", ascending=False, na_position="last")
    return out.reset_index(drop=True)


def _api_equivalent(scenario: Ledger, spans: pd.DataFrame, self_hosted: np.ndarray, model: str | None,
                    pricer: ApiPricer) -> pd.DataFrame:
    """The self-hosted calls with what they would cost at an API: at `model` (as the scenario priced
    them), else each at its own model name wherever genai-prices finds an API serving it."""
    keys = set(zip(spans["trace_id"][self_hosted], spans["span_id"][self_hosted], strict=False))
    steps = scenario.steps
    mask = np.array([k in keys for k in zip(steps["trace_id"], steps["span_id"], strict=False)], dtype=bool)
    calls = scenario.steps.loc[mask, ["self_input_tokens", "self_output_tokens", "self_api_cost_usd",
                                      "api_cost_source", "api_price_detail"]].copy()
    if model is None:
        rows = spans[self_hosted]
        prices = [pricer.price(model=r.model, provider=None, input_tokens=r.input_tokens,
                               output_tokens=r.output_tokens, cache_read_tokens=r.cache_read_tokens,
                               cache_write_tokens=r.cache_write_tokens, start_ns=int(r.start_ns))
                  for r in rows.itertuples(index=False)]
        calls["self_api_cost_usd"] = [p.cost_usd for p in prices]
        calls["api_cost_source"] = [p.source for p in prices]
        calls["api_price_detail"] = [p.detail for p in prices]
    return calls


def _break_even(original: Ledger, calls: pd.DataFrame) -> dict[str, Any]:
    """Self-hosted calls on your GPU against the same tokens at the API.

    `self_hosted_usd` is what the run paid to hold its GPUs (GPU $ + energy $ over the whole run,
    the idle time between calls included: an API would not need the GPU at all); the break-even
    GPU rate is the $/GPU-hour at which that equals the API's bill.
    """
    api_usd = float(calls["self_api_cost_usd"].sum()) if calls["self_api_cost_usd"].notna().any() else None
    unpriced = int((calls["api_cost_source"] == "unpriced").sum())
    totals = original.totals
    gpu_usd, energy_usd = totals.get("gpu_cost_usd"), totals.get("energy_cost_usd")
    gpu_hours = (totals.get("gpu_s") or 0.0) / 3600.0
    held_usd = None if gpu_usd is None and energy_usd is None else (gpu_usd or 0.0) + (energy_usd or 0.0)
    result: dict[str, Any] = {
        "self_hosted_calls": int(len(calls)),
        "input_tokens": float(calls["self_input_tokens"].sum()),
        "output_tokens": float(calls["self_output_tokens"].sum()),
        "api_equivalent_usd": api_usd,
        "api_unpriced_calls": unpriced,
        "api_priced_as": ", ".join(sorted({str(d) for d, source in zip(calls["api_price_detail"],
                                                                       calls["api_cost_source"], strict=False)
                                           if d and source != "unpriced"})),
        "gpu_hours": gpu_hours if totals.get("gpu_s") is not None else None,
        "self_hosted_gpu_usd": gpu_usd,
        "self_hosted_energy_usd": energy_usd,
        "self_hosted_usd": held_usd,
        "break_even_gpu_usd_per_hour": None,
        "cheaper": None,
        "note": "",
    }
    if api_usd is None:
        result["note"] = "genai-prices has no API price for these calls' model; give --model to compare"
    elif not gpu_hours:
        result["note"] = ("no GPU measurements in this run: the self-hosted side has no cost figure; "
                          "record the run with GPU sampling to see the break-even")
    else:
        # The GPU rate at which holding the GPU (plus its energy) costs what the API would have.
        result["break_even_gpu_usd_per_hour"] = max(api_usd - (energy_usd or 0.0), 0.0) / gpu_hours
        if gpu_usd is None:
            result["self_hosted_usd"] = None
            result["note"] = "no $/GPU-hour for this GPU: give --gpu-usd-per-hour to compare against the API"
        else:
            result["cheaper"] = "self-hosted" if held_usd is not None and held_usd < api_usd else "api"
    return result
