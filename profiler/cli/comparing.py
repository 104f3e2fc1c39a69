"""`sessionprof diff` and `sessionprof whatif`: one run against another run, or against other prices."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from profiler.cli.loading import attribute_path, load_run, select_steps
from profiler.cli.options import DiffFormat, Output, Policy, PriceFlags, WhatifFormat, price_options
from profiler.cli.output import emit, user_errors


@price_options
def diff(
    a: Annotated[Path, typer.Argument(help="Run A (before): a run directory or a trace file.")],
    b: Annotated[Path, typer.Argument(help="Run B (after): a run directory or a trace file.")],
    session_a: Annotated[list[str] | None, typer.Option("--session-a", help="Only this session of A (id or "
                                                           "unique prefix; repeatable).")] = None,
    session_b: Annotated[list[str] | None, typer.Option("--session-b", help="Only this session of B.")] = None,
    fmt: Annotated[DiffFormat, typer.Option("--format", "-f", help="The comparison's format.")] = "table",  # type: ignore[valid-type]
    top: Annotated[int | None, typer.Option("--top", min=1, help="Only the N steps whose own total $ "
                                               "(then tokens, joules, GiB*s) changed most.")] = None,
    changed: Annotated[bool, typer.Option("--changed", help="Only steps that changed, appeared or "
                                          "vanished.")] = False,
    output: Output = None,
    policy: Policy = "equal",
    *,
    prices: PriceFlags,
) -> None:
    """Compare two runs step by step: change in tokens, dollars, joules and GiB*s, steps added and removed.

    Steps are matched by their path of names and their ordinal among same-named siblings.
    """
    from profiler.analysis.diff import diff_ledgers, only_changed, top_changes
    from reports.diff_report import render_diff

    with user_errors():
        factors = prices.load()
        ledger_a = select_steps(attribute_path(a, factors, policy.value), session_a)
        ledger_b = select_steps(attribute_path(b, factors, policy.value), session_b)
        result = diff_ledgers(ledger_a, ledger_b)
        rows, caption = (only_changed(result), "only steps that changed, appeared or vanished") if changed else (
            result.steps, "")
        if top is not None:
            ranked = top_changes(result, len(result.steps))
            rows = ranked[ranked.index.isin(rows.index)].head(top)
            caption = f"top {top} steps by change in their own total $ (then tokens, joules, GiB*s)"
        emit(render_diff(result, fmt.value, rows=rows, caption=caption), output)


@price_options
def whatif(
    path: Annotated[Path, typer.Argument(help="A run directory or a trace file (read only: never modified).")],
    model: Annotated[str | None, typer.Option("--model", help="Price every model call as this model "
                                                 "(a genai-prices name: gpt-4o, claude-sonnet-4-5, ...).")] = None,
    provider: Annotated[str | None, typer.Option("--provider", help="The model's provider (openai, "
                                                    "anthropic, ...); inferred when omitted.")] = None,
    fmt: Annotated[WhatifFormat, typer.Option("--format", "-f", help="The comparison's format.")] = "table",  # type: ignore[valid-type]
    output: Output = None,
    policy: Policy = "equal",
    *,
    prices: PriceFlags,
) -> None:
    """Re-price a recorded run under another model, other prices or another GPU rate.

    Self-hosted calls (vLLM, Ollama, ...) are priced as if sent to the API, with the break-even GPU rate.
    """
    from profiler.analysis.whatif import what_if
    from profiler.pricing.prices import with_overrides
    from reports.whatif_report import render_whatif

    with user_errors():
        base = PriceFlags(config=prices.config).load()  # the run as recorded: the config's prices, no flags
        scenario = with_overrides(base, **prices.overrides())
        if model is None and provider is not None:
            raise ValueError("--provider needs --model")
        result = what_if(load_run(path), model=model, provider=provider, prices=scenario, base_prices=base,
                         policy=policy.value)
        emit(render_whatif(result, fmt.value), output)
