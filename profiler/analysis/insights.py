"""Figures derived from a `Ledger` for the reports: turns, context growth, cache hits, idle hold,
break-even, top steps, GPU series. Pure functions; renderers call them and compute nothing.

A figure the ledger cannot support is None (or NaN in a frame), never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from profiler.attribution.ledger import Ledger
from profiler.model import SESSION_KIND, UNATTRIBUTED_KIND
from profiler.pricing.api import ApiPricer

GIB = 1024.0**3
#: Hosts tried, in order, when pricing a self-hosted model as if it were sent to an API.
API_EQUIVALENT_PROVIDERS = (None, "openrouter", "together", "deepinfra", "fireworks", "groq", "novita")
#: Flame-graph weights: name -> the ledger's self column.
WEIGHTS = {"usd": "self_total_cost_usd", "joules": "self_energy_j", "gib_s": "self_gpu_mem_gib_s"}
WEIGHT_UNITS = {"usd": "USD", "joules": "J", "gib_s": "GiB*s"}

_TURN_COLUMNS = ("turn", "session_id", "span_id", "name", "model", "provider", "start_ns", "end_ns",
                 "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
                 "resent_tokens", "api_cost_usd", "total_cost_usd", "cumulative_cost_usd",
                 "cumulative_api_cost_usd")


def work_steps(ledger: Ledger) -> pd.DataFrame:
    """The steps proper: every row but the session (overhead) and `unattributed` rows."""
    steps = ledger.steps
    return steps[~steps["kind"].isin([SESSION_KIND, UNATTRIBUTED_KIND])]


def model_turns(ledger: Ledger) -> pd.DataFrame:
    """One row per model call (a turn), in start order, with the context it sent and the run's
    spending so far.

    Columns: `turn` (1-based within its session), tokens of the call, `resent_tokens` (the part of
    this call's input that the previous call of the session already sent or received: the context
    carried over), `api_cost_usd` and `total_cost_usd` of the call itself, and
    `cumulative_cost_usd` / `cumulative_api_cost_usd`: the own dollars of every step of the session
    that had finished by the end of this call (NaN while nothing finished was priced).
    """
    steps = ledger.steps
    calls = steps[steps["bills_usage"].astype(bool)].sort_values(["start_ns", "end_ns"], kind="stable")
    if calls.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in _TURN_COLUMNS})
    session = calls["session_id"].astype(object).fillna("").to_numpy()
    inp = calls["self_input_tokens"].to_numpy(dtype=float)
    out = calls["self_output_tokens"].to_numpy(dtype=float)
    turns = pd.DataFrame({
        "turn": calls.groupby(session, sort=False).cumcount().to_numpy() + 1,
        "session_id": calls["session_id"].to_numpy(), "span_id": calls["span_id"].to_numpy(),
        "name": calls["name"].to_numpy(), "model": calls["model"].to_numpy(), "provider": calls["provider"].to_numpy(),
        "start_ns": calls["start_ns"].to_numpy(dtype=np.int64), "end_ns": calls["end_ns"].to_numpy(dtype=np.int64),
        "input_tokens": inp, "cache_read_tokens": calls["self_cache_read_tokens"].to_numpy(dtype=float),
        "cache_write_tokens": calls["self_cache_write_tokens"].to_numpy(dtype=float), "output_tokens": out,
        "reasoning_tokens": calls["self_reasoning_tokens"].to_numpy(dtype=float),
        "api_cost_usd": calls["self_api_cost_usd"].to_numpy(dtype=float),
        "total_cost_usd": calls["self_total_cost_usd"].to_numpy(dtype=float),
    })
    carried = pd.Series(inp + out).groupby(session, sort=False).shift(1).to_numpy()
    turns["resent_tokens"] = np.where(np.isnan(carried), 0.0, np.minimum(inp, carried))
    turns["cumulative_cost_usd"] = np.nan
    turns["cumulative_api_cost_usd"] = np.nan
    done = work_steps(ledger)
    done_session = done["session_id"].astype(object).fillna("").to_numpy()
    for key in dict.fromkeys(session):
        mine = done[done_session == key].sort_values("end_ns", kind="stable")
        ends = mine["end_ns"].to_numpy(dtype=np.int64)
        rows = np.flatnonzero(session == key)
        finished = np.searchsorted(ends, turns["end_ns"].to_numpy()[rows], side="right")
        for source, target in (("self_total_cost_usd", "cumulative_cost_usd"),
                               ("self_api_cost_usd", "cumulative_api_cost_usd")):
            values = mine[source].to_numpy(dtype=float)
            running = np.concatenate([[0.0], np.cumsum(np.nan_to_num(values))])
            priced = np.concatenate([[0], np.cumsum(~np.isnan(values))])
            turns.loc[rows, target] = np.where(priced[finished] > 0, running[finished], np.nan)
    return turns[list(_TURN_COLUMNS)]


@dataclass
class ContextFigures:
    """How much of the input was context re-sent from earlier turns, and how much the cache served."""

    calls: int
    input_tokens: float | None
    """All input tokens of the model calls (inclusive of cache reads)."""
    resent_tokens: float | None
    """Input that the previous call of the same session had already sent or received."""
    resent_share: float | None
    cache_read_tokens: float | None
    cache_hit_ratio: float | None
    """Cache reads over input tokens, as the providers reported them (a provider that reports no
    cache reads counts as 0)."""
    output_tokens: float | None
    reasoning_tokens: float | None
    reasoning_share: float | None
    """Reasoning tokens over output tokens (reasoning is billed as output)."""
    largest_context_tokens: float | None


def context_figures(ledger: Ledger) -> ContextFigures:
    """Context growth, prompt-cache hit ratio and reasoning share over the run's model calls."""
    turns = model_turns(ledger)
    if turns.empty:
        return ContextFigures(0, None, None, None, None, None, None, None, None, None)
    inp = float(turns["input_tokens"].sum())
    out = float(turns["output_tokens"].sum())
    resent = float(turns["resent_tokens"].sum())
    cached = float(turns["cache_read_tokens"].sum())
    reasoning = float(turns["reasoning_tokens"].sum())
    return ContextFigures(
        calls=len(turns), input_tokens=inp, resent_tokens=resent, resent_share=_ratio(resent, inp),
        cache_read_tokens=cached, cache_hit_ratio=_ratio(cached, inp), output_tokens=out,
        reasoning_tokens=reasoning, reasoning_share=_ratio(reasoning, out),
        largest_context_tokens=float(turns["input_tokens"].max()),
    )


@dataclass
class IdleHold:
    """GPU memory held, and GPU time paid for, while the session waited on its tools."""

    total_gib_s: float | None
    """Idle hold over the whole run (memory held while the GPU did no work)."""
    tools_gib_s: float | None
    """The part charged to tool calls."""
    tools_share: float | None
    tools_gpu_s: float | None
    tools_gpu_cost_usd: float | None
    tools_energy_j: float | None
    tool_calls: int


def idle_hold(ledger: Ledger) -> IdleHold:
    """What the run's GPUs held while tools ran: memory (GiB*s), GPU-seconds, dollars, joules."""
    steps = ledger.steps
    tools = steps[steps["kind"] == "execute_tool"]
    total = ledger.totals.get("idle_hold_gib_s")
    tools_gib_s = _sum_or_none(tools["self_idle_hold_gib_s"])
    return IdleHold(
        total_gib_s=total, tools_gib_s=tools_gib_s,
        tools_share=_ratio(tools_gib_s, total) if tools_gib_s is not None and total is not None else None,
        tools_gpu_s=_sum_or_none(tools["self_gpu_s"]), tools_gpu_cost_usd=_sum_or_none(tools["self_gpu_cost_usd"]),
        tools_energy_j=_sum_or_none(tools["self_energy_j"]), tool_calls=len(tools),
    )


@dataclass
class BreakEven:
    """Self-hosted model calls priced as if they had been sent to an API."""

    calls: int
    """Calls served by a self-hosted model (vLLM, Ollama, ...)."""
    priced_calls: int
    """Of those, calls whose model an API price list knows."""
    api_equivalent_usd: float | None
    """What the priced calls would have cost through the API named in `priced_as`."""
    own_cost_usd: float | None
    """GPU rent and energy charged to the self-hosted calls themselves."""
    session_gpu_cost_usd: float | None
    """GPU rent and energy of the whole run: what self-hosting really paid, idle time included."""
    priced_as: list[str] = field(default_factory=list)
    unpriced_models: list[str] = field(default_factory=list)


def break_even(ledger: Ledger, pricer: ApiPricer | None = None) -> BreakEven:
    """Price each self-hosted call's tokens through a hosted API with the same model.

    The model name is looked up in genai-prices as given, then at the hosts of
    `API_EQUIVALENT_PROVIDERS`; a model no host lists stays unpriced (never $0).
    """
    steps = ledger.steps
    local = steps[steps["api_cost_source"] == "self-hosted"]
    if local.empty:
        return BreakEven(0, 0, None, None, None)
    pricer = pricer or ApiPricer()
    total, priced, seen, missing = 0.0, 0, [], []
    for _, row in local.iterrows():
        price = None
        for provider in API_EQUIVALENT_PROVIDERS:
            candidate = pricer.price(
                model=row["model"], provider=provider, input_tokens=row["self_input_tokens"],
                output_tokens=row["self_output_tokens"], cache_read_tokens=row["self_cache_read_tokens"],
                cache_write_tokens=row["self_cache_write_tokens"], start_ns=int(row["start_ns"]))
            if candidate.source == "computed:genai-prices":
                price = candidate
                break
        if price is None:
            missing.append(str(row["model"] or "(no model name)"))
            continue
        priced += 1
        total += price.cost_usd
        if price.detail not in seen:
            seen.append(price.detail)
    own_parts = local[["self_gpu_cost_usd", "self_energy_cost_usd"]]
    own = float(own_parts.sum().sum()) if own_parts.notna().any().any() else None
    gpu, energy = ledger.totals.get("gpu_cost_usd"), ledger.totals.get("energy_cost_usd")
    session = None if gpu is None and energy is None else (gpu or 0.0) + (energy or 0.0)
    return BreakEven(calls=len(local), priced_calls=priced, api_equivalent_usd=total if priced else None,
                     own_cost_usd=own, session_gpu_cost_usd=session, priced_as=seen,
                     unpriced_models=sorted(set(missing)))


@dataclass
class MissingCacheCounts:
    """Model calls that reported no prompt-cache counts although their model has a cache price.

    Some instrumentors leave the cache out (the official OpenAI instrumentor before it read
    `cached_tokens`, OpenInference on the Agents SDK's chat-completions path), so their input is
    priced as if none of it came from the cache.
    """

    calls: int
    span_ids: list[str]
    by_name: dict[str, int]
    """How many of these calls each span name has (`chat gpt-4o`: 4)."""
    api_cost_usd: float | None
    """What those calls were priced at, every input token at the full input price."""
    overstated_max_usd: float | None
    """The most those dollars can be too high: their price minus what they would cost had all their
    input been read from the cache (input price minus cache-read price, times the input tokens)."""
    share_of_api_cost: float | None
    """`overstated_max_usd` over the run's API dollars."""


def missing_cache_counts(ledger: Ledger, pricer: ApiPricer | None = None) -> MissingCacheCounts:
    """Name the priced calls that reported neither cache reads nor cache writes, where their model
    has a cache-read price below its input price, and bound how far their dollars may be too high."""
    steps = ledger.steps
    if "cache_tokens_reported" not in steps:
        return MissingCacheCounts(0, [], {}, None, None, None)
    silent = steps[steps["bills_usage"].astype(bool) & ~steps["cache_tokens_reported"].astype(bool)
                   & (steps["api_cost_source"] == "computed:genai-prices") & (steps["self_input_tokens"] > 0)]
    if silent.empty:
        return MissingCacheCounts(0, [], {}, None, None, None)
    inp = silent["self_input_tokens"].to_numpy(dtype=float)
    cached, _, _ = (pricer or ApiPricer()).price_many(
        model=silent["model"].to_numpy(dtype=object), provider=silent["provider"].to_numpy(dtype=object),
        input_tokens=inp, output_tokens=silent["self_output_tokens"].to_numpy(dtype=float),
        cache_read_tokens=inp, cache_write_tokens=np.zeros(len(silent)),
        start_ns=silent["start_ns"].to_numpy(dtype=np.int64), reported_cost_usd=np.full(len(silent), np.nan))
    priced = silent["self_api_cost_usd"].to_numpy(dtype=float)
    gap = priced - cached
    cacheable = np.isfinite(gap) & (gap > 0)  # a model without a cheaper cache price is priced right
    if not cacheable.any():
        return MissingCacheCounts(0, [], {}, None, None, None)
    named = silent[cacheable]
    overstated = float(gap[cacheable].sum())
    total = ledger.totals.get("api_cost_usd")
    return MissingCacheCounts(
        calls=len(named), span_ids=[str(s) for s in named["span_id"]],
        by_name={str(k): int(v) for k, v in named["name"].value_counts(sort=False).items()},
        api_cost_usd=float(priced[cacheable].sum()), overstated_max_usd=overstated,
        share_of_api_cost=_ratio(overstated, total))


def estimated_steps(ledger: Ledger) -> pd.DataFrame:
    """The rows whose energy is an estimate (shorter than two sensor updates, or integrated power)."""
    steps = ledger.steps
    return steps[steps["energy_estimated"].astype(bool)]


def top_steps(ledger: Ledger, column: str, n: int = 10) -> pd.DataFrame:
    """The `n` steps with the largest own (`self_`) `column`; steps without the figure are left out.

    Session overhead and the `unattributed` row are included: they are real spending.
    """
    steps = ledger.steps
    values = steps[column]
    ranked = steps[values.notna() & (values > 0)]
    return ranked.sort_values(column, ascending=False, kind="stable").head(n)


def step_paths(ledger: Ledger, ordered: pd.DataFrame | None = None) -> list[tuple[str, ...]]:
    """For each row of `ledger.tree_order()` (or of `ordered`, that frame already computed), the
    names from its root down to it."""
    ordered = ledger.tree_order() if ordered is None else ordered
    stack: list[str] = []
    paths = []
    for name, depth in zip(ordered["name"], ordered["depth"], strict=True):
        depth = int(depth)
        del stack[depth:]
        stack.append(str(name))
        paths.append(tuple(stack))
    return paths


def flame_weights(ledger: Ledger, weight: str) -> tuple[list[tuple[str, ...]], np.ndarray]:
    """Stacks and own amounts for a cost flame graph weighted by `usd`, `joules` or `gib_s`.

    Returns the paths of the rows with a positive own amount and those amounts.
    """
    if weight not in WEIGHTS:
        raise ValueError(f"unknown weight {weight!r} (choose from {', '.join(WEIGHTS)})")
    ordered = ledger.tree_order()
    values = ordered[WEIGHTS[weight]].to_numpy(dtype=float)
    paths = step_paths(ledger, ordered)
    keep = np.isfinite(values) & (values > 0)
    return [p for p, k in zip(paths, keep, strict=True) if k], values[keep]


def gpu_series(ledger: Ledger, max_points: int | None = None) -> pd.DataFrame:
    """Per-GPU power, memory and cumulative energy over time, for drawing lanes and counter tracks.

    Columns: `t_ns`, `gpu`, `power_w` (the reading, else the energy counter's slope), `mem_used_gib`,
    `energy_j` (cumulative since the GPU's first sample: the counter, else integrated power). With
    `max_points`, each GPU is cut into time buckets keeping the peak power and memory and the first
    energy reading of each, so a long run still draws its spikes.
    """
    samples = ledger.samples
    columns = ["t_ns", "gpu", "power_w", "mem_used_gib", "energy_j"]
    if samples is None or samples.empty:
        return pd.DataFrame({c: pd.Series(dtype="float64" if c != "gpu" else object) for c in columns})
    parts = []
    for gpu, group in samples.groupby("gpu", sort=False):
        group = group.sort_values("t_ns", kind="stable")
        t = group["t_ns"].to_numpy(dtype=np.int64)
        power = group["power_w"].to_numpy(dtype=float)
        counter = group["energy_j"].to_numpy(dtype=float)
        dt_s = np.diff(t) / 1e9
        if np.isfinite(counter).sum() >= 2:
            energy = pd.Series(counter).interpolate(limit_direction="both").to_numpy()
            energy = energy - energy[0]
            if not np.isfinite(power).any():
                slope = np.diff(energy) / np.where(dt_s > 0, dt_s, np.nan)
                power = np.concatenate([[slope[0] if len(slope) else np.nan], slope])
        elif np.isfinite(power).any():
            filled = pd.Series(power).interpolate(limit_direction="both").to_numpy()
            energy = np.concatenate([[0.0], np.cumsum(dt_s * (filled[1:] + filled[:-1]) / 2.0)])
        else:
            energy = np.full(len(t), np.nan)
        frame = pd.DataFrame({"t_ns": t, "gpu": str(gpu), "power_w": power,
                              "mem_used_gib": group["mem_used_bytes"].to_numpy(dtype=float) / GIB,
                              "energy_j": energy})
        if max_points is not None and len(frame) > max_points > 0:
            bucket = (np.arange(len(frame)) * max_points // len(frame))
            frame = frame.groupby(bucket).agg(t_ns=("t_ns", "first"), gpu=("gpu", "first"),
                                              power_w=("power_w", "max"), mem_used_gib=("mem_used_gib", "max"),
                                              energy_j=("energy_j", "first"))
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)[columns]


def time_window(ledger: Ledger) -> tuple[int, int]:
    """The run's first and last instant (ns): its steps and its GPU samples together."""
    steps = work_steps(ledger)
    sessions = ledger.steps[ledger.steps["kind"] == SESSION_KIND]
    starts = [int(frame["start_ns"].min()) for frame in (steps, sessions) if len(frame)]
    ends = [int(frame["end_ns"].max()) for frame in (steps, sessions) if len(frame)]
    if ledger.samples is not None and len(ledger.samples):
        starts.append(int(ledger.samples["t_ns"].min()))
        ends.append(int(ledger.samples["t_ns"].max()))
    if not starts:
        return 0, 0
    return min(starts), max(ends)


def _sum_or_none(values: pd.Series) -> float | None:
    return float(values.sum()) if len(values) and values.notna().any() else None


def _ratio(part: float | None, whole: float | None) -> float | None:
    if part is None or whole is None or not whole:
        return None
    return part / whole
