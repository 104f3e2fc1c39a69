"""The figures `profiler.analysis.insights` derives for the reports, checked by hand on the golden run."""

from __future__ import annotations

import math

import numpy as np
import pytest

from profiler.analysis import insights
from profiler.attribution.ledger import Ledger


def test_turns_and_context_resent(golden_ledger: Ledger) -> None:
    turns = insights.model_turns(golden_ledger)
    assert list(turns["turn"]) == [1, 2, 3, 4, 5]
    assert list(turns["input_tokens"]) == [1200, 1800, 2600, 3100, 3400]
    # Re-sent = min(this input, previous input + previous output).
    assert list(turns["resent_tokens"]) == [0, 1500, 2000, 3000, 3250]
    cumulative = turns["cumulative_cost_usd"].to_numpy()
    assert (np.diff(cumulative) >= 0).all()
    assert cumulative[-1] <= golden_ledger.totals["total_cost_usd"]
    assert cumulative[0] == pytest.approx(turns["total_cost_usd"].iat[0])


def test_context_figures(golden_ledger: Ledger) -> None:
    ctx = insights.context_figures(golden_ledger)
    assert ctx.calls == 5
    assert ctx.input_tokens == 12100 and ctx.resent_tokens == 9750
    assert ctx.resent_share == pytest.approx(9750 / 12100)
    assert ctx.cache_hit_ratio == pytest.approx((1024 + 1536 + 2900) / 12100)
    assert ctx.reasoning_share == pytest.approx(250 / 1550)
    assert ctx.largest_context_tokens == 3400


def test_idle_hold_while_tools_run(golden_ledger: Ledger) -> None:
    hold = insights.idle_hold(golden_ledger)
    steps = golden_ledger.steps
    tools = steps[steps["kind"] == "execute_tool"]
    assert hold.tool_calls == 5
    assert hold.tools_gib_s == pytest.approx(tools["self_idle_hold_gib_s"].sum())
    assert hold.total_gib_s == pytest.approx(golden_ledger.totals["idle_hold_gib_s"])
    assert 0 < hold.tools_share < 1
    # web_search: 3 s holding 40 GiB above the baseline with the GPU idle.
    assert tools.loc[tools["name"] == "execute_tool web_search", "self_idle_hold_gib_s"].iat[0] == pytest.approx(120)


def test_break_even_prices_self_hosted_calls_at_an_api(golden_ledger: Ledger) -> None:
    even = insights.break_even(golden_ledger)
    assert even.calls == 3
    assert even.own_cost_usd is not None and even.own_cost_usd > 0
    assert even.session_gpu_cost_usd == pytest.approx(
        golden_ledger.totals["gpu_cost_usd"] + golden_ledger.totals["energy_cost_usd"])
    if even.priced_calls:  # depends on genai-prices' snapshot listing a host for the model
        assert even.api_equivalent_usd > 0 and even.priced_as
    else:
        assert even.api_equivalent_usd is None and even.unpriced_models


def test_missing_figures_are_none_never_zero(empty_ledger: Ledger, cpu_only_ledger: Ledger) -> None:
    ctx = insights.context_figures(empty_ledger)
    assert ctx.calls == 0 and ctx.cache_hit_ratio is None and ctx.reasoning_share is None
    assert insights.model_turns(empty_ledger).empty
    for ledger in (empty_ledger, cpu_only_ledger):
        hold = insights.idle_hold(ledger)
        assert hold.total_gib_s is None and hold.tools_gib_s is None and hold.tools_gpu_cost_usd is None
        assert insights.gpu_series(ledger).empty
        assert insights.top_steps(ledger, "self_energy_j").empty
    even = insights.break_even(cpu_only_ledger)
    assert even.calls == 3 and even.own_cost_usd is None and even.session_gpu_cost_usd is None
    assert insights.time_window(empty_ledger) == (0, 0)


def test_top_steps_and_paths(golden_ledger: Ledger) -> None:
    top = insights.top_steps(golden_ledger, "self_total_cost_usd", 3)
    assert list(top["name"])[0] == "chat o4-mini"
    assert (np.diff(top["self_total_cost_usd"].to_numpy()) <= 0).all()
    paths = insights.step_paths(golden_ledger)
    assert len(paths) == len(golden_ledger.steps)
    assert ("session golden", "invoke_agent planner", "summarise", "chat meta-llama/Llama-3.1-8B-Instruct") in paths


@pytest.mark.parametrize(("weight", "total"), [("usd", "total_cost_usd"), ("joules", "energy_j"),
                                                ("gib_s", "gpu_mem_gib_s")])
def test_flame_weights_add_up_to_the_totals(golden_ledger: Ledger, weight: str, total: str) -> None:
    paths, values = insights.flame_weights(golden_ledger, weight)
    assert len(paths) == len(values) > 0
    assert values.sum() == pytest.approx(golden_ledger.totals[total], rel=1e-9)


def test_gpu_series_matches_the_measurement(golden_ledger: Ledger) -> None:
    series = insights.gpu_series(golden_ledger)
    measured = golden_ledger.totals["gpus"][0]["measured"]["energy_j"]
    assert series["energy_j"].iat[-1] == pytest.approx(measured)
    assert series["power_w"].max() == pytest.approx(golden_ledger.samples["power_w"].max())
    small = insights.gpu_series(golden_ledger, max_points=20)
    assert len(small) <= 20
    # Buckets keep the peaks, so a short spike still shows.
    assert small["power_w"].max() == series["power_w"].max()
    assert small["mem_used_gib"].max() == series["mem_used_gib"].max()


def test_gpu_series_derives_power_from_the_energy_counter(golden_ledger: Ledger) -> None:
    import copy

    ledger = copy.deepcopy(golden_ledger)
    ledger.samples["power_w"] = math.nan
    series = insights.gpu_series(ledger)
    assert np.isfinite(series["power_w"]).all()
    assert series["power_w"].max() == pytest.approx(350, abs=10)


def test_spending_so_far_counts_the_steps_of_the_turns_session_that_ended_by_its_end(
        two_session_ledger: Ledger) -> None:
    turns = insights.model_turns(two_session_ledger)
    steps = insights.work_steps(two_session_ledger)
    assert turns["session_id"].nunique() == 2
    for _, turn in turns.iterrows():
        done = steps[(steps["session_id"] == turn["session_id"]) & (steps["end_ns"] <= turn["end_ns"])]
        for source, target in (("self_total_cost_usd", "cumulative_cost_usd"),
                               ("self_api_cost_usd", "cumulative_api_cost_usd")):
            priced = done[source].dropna()
            expected = priced.sum() if len(priced) else math.nan
            assert turn[target] == pytest.approx(expected, nan_ok=True), (turn["span_id"], target)
