"""Input that would make figures wrong without a word: parent cycles, samples stamped far from the
run, parts that go negative, a GPU without a price. Each is handled and said, never silent."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from profiler import attribute
from profiler.attribution.engine import check_conservation
from profiler.energy.clock_outliers import set_aside_clock_outliers
from tests.builders import BASE_NS, S, chat, concat_samples, make_run, ns, row, span, steady_gpu, value

YEAR_2100_NS = 4_102_444_800 * S


def test_a_parent_cycle_is_cut_once_and_said() -> None:
    # Two spans that name each other as parent: each showed both spans' tokens, without a word.
    for order in ([0, 1], [1, 0]):
        rows = [chat("a", "b", start=0, end=2, input_tokens=100), chat("b", "a", start=1, end=3, input_tokens=1000)]
        ledger = attribute(make_run([rows[i] for i in order]))
        assert value(ledger, "a", "input_tokens") == 1100 and value(ledger, "b", "input_tokens") == 1000
        assert ledger.totals["input_tokens"] == 1100
        assert ledger.checks["cycles_cut"] == ["a"]
        [warning] = [w for w in ledger.checks["warnings"] if "cycle" in w]
        assert warning.startswith("1 cycle(s) of parent links") and "'chat gpt-4o' (a, whose parent b" in warning


def _with_sample_at(samples: pd.DataFrame, position: int, t_ns: int) -> pd.DataFrame:
    samples = samples.copy()
    samples.loc[position, "t_ns"] = t_ns
    return samples


def test_a_sample_stamped_in_2100_is_set_aside_and_said() -> None:
    # One of 88 rows in 2100: 11.1 GB, 30 s, $1.6M for a 4 s run, negative unattributed energy, "held".
    samples = _with_sample_at(steady_gpu(0, 8.7, power_w=100.0), 40, YEAR_2100_NS)
    ledger = attribute(make_run([span("s", start=0, end=8.7, session_root=True)], samples))
    assert ledger.checks["samples_set_aside"] == {"GPU-0": 1}
    assert any(w.startswith("GPU GPU-0: 1 sample(s) set aside whose time lies far from the run's (up to 76.1 years")
               for w in ledger.checks["warnings"]), ledger.checks["warnings"]
    assert ledger.checks["conservation_held"] is True
    assert value(ledger, "s", "energy_j") == pytest.approx(870.0)
    assert value(ledger, "unattributed", "self_energy_j") == pytest.approx(0.0)
    assert ledger.totals["total_cost_usd"] < 0.01
    assert ledger.samples is not None and ledger.samples["t_ns"].max() < YEAR_2100_NS


@pytest.mark.parametrize("where", ["first", "last", "middle"])
def test_a_sample_stamped_far_in_the_past_or_future_is_set_aside_wherever_it_is(where: str) -> None:
    samples = steady_gpu(0, 5)
    position = {"first": 0, "last": len(samples) - 1, "middle": 20}[where]
    for far in (BASE_NS - 30 * 86400 * S, BASE_NS + 3 * 86400 * S, 1):
        kept, set_aside = set_aside_clock_outliers(_with_sample_at(samples, position, far), (ns(0), ns(5)))
        assert set_aside.counts == {"GPU-0": 1} and len(kept) == len(samples) - 1


def test_samples_around_the_spans_and_gaps_within_them_stay() -> None:
    # Two sessions an hour apart, sampled while each ran: both are the run's.
    samples = concat_samples(steady_gpu(0, 5), steady_gpu(3600, 3605))
    spans = [span("a", start=0, end=5, session_root=True, session="A"),
             span("b", start=3600, end=3605, session_root=True, session="B")]
    ledger = attribute(make_run(spans, samples))
    assert "samples_set_aside" not in ledger.checks
    assert value(ledger, "a", "energy_j") == pytest.approx(500.0) and value(ledger, "b", "energy_j") == pytest.approx(
        500.0)
    # A sampler running a while before the first step is the run's too (its idle time is unattributed).
    kept, set_aside = set_aside_clock_outliers(steady_gpu(0, 300), (ns(290), ns(300)))
    assert not set_aside.counts and len(kept) == len(steady_gpu(0, 300))


def test_without_spans_the_largest_run_of_samples_is_kept() -> None:
    samples = concat_samples(steady_gpu(0, 5), steady_gpu(90_000, 90_001))
    kept, set_aside = set_aside_clock_outliers(samples, None)
    assert set_aside.counts == {"GPU-0": 11} and kept["t_ns"].max() == ns(5)


def test_a_counter_that_runs_backwards_fails_the_conservation_check_loudly() -> None:
    # A clock stepped back by 2.05 s: sorted by time, the counter goes down and up; parts come out negative.
    samples = steady_gpu(0, 10, power_w=100.0)
    samples.loc[60:, "t_ns"] -= int(2.05 * S)
    ledger = attribute(make_run([span("s", start=0, end=10, session_root=True), span("t", "s", start=1, end=9)],
                                samples))
    assert ledger.checks["conservation_held"] is False
    problems = ledger.checks["conservation_problems"]
    assert any(p.startswith("GPU GPU-0 energy_j: ") and "step(s) of the curve negative" in p
               for p in problems), problems
    assert ledger.checks["conservation"]["GPU-0"]["energy_j"]["held"] is False


@pytest.mark.parametrize(("quantity", "measured", "received", "unattributed", "problem"), [
    ("energy_j", 10.0, [12.0, 0.0], -2.0, "1 part(s) negative (down to -2)"),  # adds up, yet a part is < 0
    ("energy_j", -3.0, [-3.0], 0.0, "2 part(s) negative"),
    ("gpu_s", 10.0, [5.0, math.inf], 0.0, "1 part(s) not finite"),
    ("gpu_s", math.nan, [5.0], 0.0, "1 part(s) not finite"),
    ("gpu_s", 10.0, [5.0, 4.0], 0.0, "parts add up to 9, measured 10"),
])
def test_the_conservation_check_can_fail(quantity: str, measured: float, received: list[float], unattributed: float,
                                         problem: str) -> None:
    check = check_conservation(quantity, measured, np.array(received), unattributed)
    assert check["held"] is False and any(p.startswith(problem) for p in check["problems"]), check["problems"]


def test_a_curve_that_runs_backwards_fails_the_check_though_the_parts_add_up() -> None:
    check = check_conservation("energy_j", 10.0, np.array([10.0]), 0.0, np.array([6.0, -2.0, 6.0]))
    assert check["held"] is False and check["problems"] == [
        "1 step(s) of the curve negative, down to -2 (a counter or clock that ran backwards)"]


def test_energy_above_the_baseline_may_dip_below_zero_in_a_part() -> None:
    check = check_conservation("active_energy_j", 10.0, np.array([12.0, -2.0]), 0.0)
    assert check["held"] is True and check["problems"] == []


def test_one_unpriced_gpu_leaves_the_priced_ones_dollars_and_is_named() -> None:
    # Two GPUs, one without a price: the run's GPU dollars became null and the total dropped, silently.
    samples = concat_samples(steady_gpu(0, 10, gpu="GPU-a"), steady_gpu(0, 10, gpu="GPU-b"))
    meta = {"gpus": [{"uuid": "GPU-a", "name": "NVIDIA H100 80GB HBM3"}, {"uuid": "GPU-b", "name": "Mystery X1"}]}
    spans = [span("s", start=0, end=10, session_root=True)]
    both = attribute(make_run(spans, samples, meta))
    alone = attribute(make_run(spans, steady_gpu(0, 10, gpu="GPU-a"), {"gpus": meta["gpus"][:1]}))
    assert both.totals["gpu_cost_usd"] == pytest.approx(alone.totals["gpu_cost_usd"]) and alone.totals[
        "gpu_cost_usd"] > 0
    assert both.totals["total_cost_usd"] > alone.totals["total_cost_usd"]  # the second GPU's energy dollars too
    assert both.checks["unpriced_gpus"] == ["GPU-b"]
    assert any("no $/GPU-hour for 1 GPU(s): GPU-b (Mystery X1)" in w for w in both.checks["warnings"])
    assert row(both, "s")["gpu_cost_source"].startswith("default rate for H100; no rate for Mystery X1")


def test_no_priced_gpu_is_no_gpu_dollars_not_zero() -> None:
    ledger = attribute(make_run([span("s", start=0, end=10, session_root=True)], steady_gpu(0, 10, gpu="GPU-b"),
                                {"gpus": [{"uuid": "GPU-b", "name": "Mystery X1"}]}))
    assert ledger.totals["gpu_cost_usd"] is None and ledger.checks["unpriced_gpus"] == ["GPU-b"]
    assert row(ledger, "s")["gpu_cost_source"] == "no rate for Mystery X1: set --gpu-usd-per-hour"
    assert np.isnan(value(ledger, "s", "gpu_cost_usd"))
