"""Formatting of single figures, shared by the text renderers. A missing figure is never shown as 0."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from profiler.analysis.insights import missing_cache_counts
from profiler.attribution.ledger import Ledger

NOT_MEASURED = "—"


def missing(value: Any) -> bool:
    """Whether a figure is absent (None or NaN)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def usd(value: Any) -> str:
    """Dollars with enough digits for sub-cent amounts."""
    if missing(value):
        return NOT_MEASURED
    if value == 0:
        return "$0"
    if abs(value) >= 100:
        return f"${value:,.0f}"
    if abs(value) >= 0.01:
        return f"${value:.2f}" if abs(value) >= 1 else f"${value:.4f}"
    return f"${value:.6f}"


def number(value: Any, digits: int = 1) -> str:
    """A float with thousands separators; integers without decimals."""
    if missing(value):
        return NOT_MEASURED
    if float(value).is_integer() and abs(value) < 1e15:
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def tokens(value: Any) -> str:
    """A token count; blank for zero (a tool call has no tokens, that is not a missing figure)."""
    if missing(value) or value == 0:
        return ""
    return f"{int(value):,}"


def step_label(row: pd.Series) -> str:
    """A step's name with its status."""
    name = str(row["name"])
    if row["status"] == "error":
        name += f" [error: {row['error_type'] or 'error'}]"
    if isinstance(row.get("duplicate_of"), str):
        name += " (duplicate: counted once)"
    return name


def api_cell(row: pd.Series) -> str:
    """API dollars, or why there are none."""
    if row.get("unpriced_calls", 0) and missing(row["api_cost_usd"]):
        return "unpriced"
    if row.get("api_cost_source") == "self-hosted":
        return "self-hosted"
    if missing(row["api_cost_usd"]):
        return ""  # no model call beneath this step: no API bill, which is not a missing figure
    value = usd(row["api_cost_usd"])
    return value + ("+?" if row.get("unpriced_calls", 0) else "")


def _located_note(within_ms: float | None) -> str:
    """Where the counter's updates were located: a power edge at a step's end may move by as much."""
    if within_ms is None or not math.isfinite(within_ms):
        return ""
    return f", its updates located to within {number(within_ms, 1)} ms"


def notes(ledger: Ledger) -> list[str]:
    """The lines every report prints under its figures: provenance, checks and warnings."""
    totals, checks = ledger.totals, ledger.checks
    lines = []
    sources = totals.get("sources", {})
    lines.append(f"tokens: {sources.get('tokens')}")
    lines.append(f"API $: {sources.get('api_cost_usd')}")
    if totals.get("gpus"):
        for gpu in totals["gpus"]:
            lines.append(f"GPU {gpu['gpu']}: energy {gpu['energy_source']}; idle baseline "
                         f"{number(gpu['idle_power_w'])} W; counter update period "
                         f"{number((gpu['update_period_s'] or math.nan) * 1000, 0)} ms"
                         + _located_note(gpu.get("updates_located_within_ms"))
                         + (f"; memory {gpu['memory_source']}" if gpu.get("memory_source") else "")
                         + _readings_note(gpu.get("readings") or {}))
        lines.append(f"energy $: {sources.get('energy_cost_usd')}; CO2: {sources.get('co2_g')}")
        lines.append(f"GPU $: {sources.get('gpu_cost_usd')} ({ledger.steps['gpu_cost_source'].iat[0]})")
        held = "held" if checks.get("conservation_held") else "FAILED"
        lines.append(f"conservation check: {held} (steps + session overhead + unattributed = measured, per GPU)")
    else:
        lines.append(f"GPU: {NOT_MEASURED} not measured (no GPU samples in this run)")
    if checks.get("unpriced_calls"):
        lines.append(f"unpriced: {checks['unpriced_calls']} model call(s) of {', '.join(checks['unpriced_models'])} "
                     "(not in genai-prices; totals exclude them)")
    if checks.get("duplicate_calls"):
        lines.append(f"duplicates: {checks['duplicate_calls']} model call(s) were described twice (the SDK's own "
                     "span and an instrumentor's, say); each counted once, the other span kept at $0 "
                     "(duplicate_of names the span that counts)")
    lines.extend(_cache_note(ledger))
    if checks.get("estimated_energy_steps"):
        lines.append(f"estimated: energy of {checks['estimated_energy_steps']} step(s) shorter than two sensor "
                     "updates, or integrated from power")
    if checks.get("incomplete_run"):
        lines.append("incomplete run: the recorder did not finish cleanly (killed?); figures cover what was written")
    dropped = {k: v for k, v in (checks.get("dropped") or {}).items() if v}
    if dropped:
        lines.append("dropped: " + ", ".join(f"{k} {v}" for k, v in dropped.items()))
    if checks.get("stand_in_calls"):
        lines.append(f"stand-in model: {checks['stand_in_calls']} call(s) answered by a local stand-in, not a real "
                     "model; their dollars are what these token counts would cost")
    lines.extend(_policy_notes(ledger.run))
    lines.extend(f"warning: {w}" for w in checks.get("warnings", []))
    return lines


def _cache_note(ledger: Ledger) -> list[str]:
    """Name the calls that reported no cache counts, and how far their dollars may be too high."""
    gap = missing_cache_counts(ledger)
    if not gap.calls:
        return []
    names = ", ".join(f"{name} x{count}" for name, count in list(gap.by_name.items())[:3])
    more = f" and {len(gap.by_name) - 3} more" if len(gap.by_name) > 3 else ""
    share = f" ({gap.share_of_api_cost:.0%} of the API $)" if gap.share_of_api_cost is not None else ""
    return [f"cache counts missing: {gap.calls} model call(s) ({names}{more}) reported no cache-read or cache-write "
            f"tokens though their model has a cheaper cache price (some instrumentors leave them out); their "
            f"{usd(gap.api_cost_usd)} may be overstated by up to {usd(gap.overstated_max_usd)}{share}, the "
            "difference were all their input read from the cache"]


def _readings_note(readings: dict[str, Any]) -> str:
    """Temperature and clocks over the run, e.g. `; 41-67 °C, SM 1,410-1,980 MHz`."""
    parts = []
    for key, label, unit in (("temp_c", "", "°C"), ("sm_clock_mhz", "SM ", "MHz"),
                             ("mem_clock_mhz", "memory ", "MHz")):
        low, high = (readings.get(key) or {}).get("min"), (readings.get(key) or {}).get("max")
        if low is not None and high is not None:
            span = number(low, 0) if low == high else f"{number(low, 0)}-{number(high, 0)}"
            parts.append(f"{label}{span} {unit}")
    return "; " + ", ".join(parts) if parts else ""


def _policy_notes(run: dict[str, Any]) -> list[str]:
    """Which share the memory policy could apply, and where it fell back to equal shares."""
    if run.get("policy") != "memory":
        return []
    fallback = run.get("policy_fallback") or {}
    if not fallback:
        return ["policy: concurrent steps share each GPU by the memory their processes hold"]
    return [f"policy: memory share fell back to equal shares on GPU {gpu} for {number(note['equal_s'])} of "
            f"{number(note['concurrent_s'])} s of concurrent steps ({'; '.join(note['reasons'])})"
            for gpu, note in fallback.items()]
