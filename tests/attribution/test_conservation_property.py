"""Conservation on random runs: whatever the span tree and the sensor series, the ledger's self
values (steps, session rows and `unattributed`) add up to what each device measured."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from profiler import attribute
from profiler.attribution.engine import POLICIES
from profiler.energy.sensor_checks import work_intervals
from profiler.energy.timeline import GIB, QUANTITIES, build_timelines
from profiler.model import Run
from profiler.pricing.api import ApiPricer
from tests.builders import (
    assert_inclusive_is_self_plus_descendants,
    assert_tree_is_consistent,
    concat_samples,
    samples_frame,
    span,
    spans_frame,
)

pytestmark = pytest.mark.slow  # long property, fuzz or real-time runs: -m 'not slow' skips them

#: Quantities whose cumulative curve never decreases, so no share of them can be negative.
NON_DECREASING = tuple(q for q in QUANTITIES if q != "active_energy_j")
KINDS = ("chat", "execute_tool", "step", "invoke_agent")
PRICER = ApiPricer()  # shared, so repeated call shapes hit its cache

times_ms = st.integers(min_value=-3_000, max_value=23_000)
maybe_nan = st.floats(min_value=0.0, max_value=1.0)
#: The processes spans run in (None: a span from a tool that does not say).
PIDS = (None, 100, 100, 200)


@st.composite
def span_rows(draw: st.DrawFn) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for session in range(draw(st.integers(1, 2))):
        trace = f"t{session}"
        ids: list[str] = []
        if draw(st.booleans()):
            root_id = f"{trace}-root"
            start, end = sorted(draw(st.lists(times_ms, min_size=2, max_size=2)))
            outer = None
            if draw(st.booleans()):  # the session was opened inside a span of its own (a request)
                outer = f"{trace}-outer"
                rows.append(
                    span(
                        outer,
                        start=(start - draw(st.integers(0, 2_000))) / 1e3,
                        end=(end + draw(st.integers(0, 2_000))) / 1e3,
                        trace=trace,
                    )
                )
            rows.append(
                span(root_id, outer, start=start / 1e3, end=end / 1e3, trace=trace, session_root=True,
                     pid=draw(st.sampled_from(PIDS)))
            )
            ids.append(root_id)
        for k in range(draw(st.integers(0 if ids else 1, 7))):
            span_id = f"{trace}-{k}"
            parent = draw(st.sampled_from([None, *ids])) if ids else None
            start = draw(times_ms)
            # Mostly inside a plausible window; sometimes zero-length; children may outlive parents.
            length = draw(st.one_of(st.just(0), st.integers(1, 12_000)))
            kind = draw(st.sampled_from(KINDS))
            tokens = draw(st.sampled_from([math.nan, 0.0, 120.0, 4_000.0]))
            rows.append(
                span(
                    span_id,
                    parent,
                    start=start / 1e3,
                    end=(start + length) / 1e3,
                    trace=trace,
                    kind=kind,
                    remote=kind == "chat" and draw(st.booleans()),
                    model="gpt-4o" if kind == "chat" else None,
                    provider="openai",
                    input_tokens=tokens,
                    output_tokens=tokens / 10,
                    pid=draw(st.sampled_from(PIDS)),
                )
            )
            ids.append(span_id)
    return rows


def _with_gaps(draw: st.DrawFn, values: np.ndarray, allow_all_nan: bool = True) -> np.ndarray:
    share = draw(st.sampled_from([0.0, 0.0, 0.2, 0.6, 1.0] if allow_all_nan else [0.0, 0.2]))
    mask = np.array(draw(st.lists(maybe_nan, min_size=len(values), max_size=len(values)))) < share
    return np.where(mask, np.nan, values)


@st.composite
def gpu_samples(draw: st.DrawFn, gpu: str) -> pd.DataFrame:
    times = sorted(draw(st.lists(st.integers(-5_000, 25_000), min_size=2, max_size=30, unique=True)))
    n = len(times)
    floats = st.lists(st.floats(0.0, 1.0), min_size=n, max_size=n)
    power = 50.0 + 650.0 * np.array(draw(floats))
    energy = None
    if draw(st.booleans()):  # an energy counter: non-decreasing, held between its ~100 ms updates
        steps = np.array(draw(floats)) * np.where(np.array(draw(floats)) < 0.3, 0.0, 400.0)
        energy = _with_gaps(draw, 5e5 + np.cumsum(steps))
    power = _with_gaps(draw, power)
    mem = _with_gaps(draw, np.array(draw(floats)) * 80 * GIB)
    proc = None
    if draw(st.booleans()):
        proc = _with_gaps(
            draw, np.where(np.array(draw(floats)) < 0.2, 0.0, np.array(draw(floats)) * 40 * GIB)
        )
    util = _with_gaps(draw, 100.0 * np.array(draw(floats)))
    by_pid = draw(st.one_of(st.none(), st.lists(pid_memory(), min_size=n, max_size=n)))
    return samples_frame(
        [t / 1e3 for t in times],
        gpu=gpu,
        energy_j=energy,
        power_w=power,
        mem_used_bytes=mem,
        proc_mem_bytes=proc,
        util_pct=util,
        proc_mem_bytes_by_pid=by_pid,
    )


@st.composite
def pid_memory(draw: st.DrawFn) -> dict[int, int] | None:
    """One reading of per-process memory: unread (None), or some of the run's processes, zeros included."""
    if draw(st.integers(0, 3)) == 0:
        return None
    held = st.sampled_from([0, 1, 2**20, 3 * 2**30, 40 * 2**30])
    return draw(st.dictionaries(st.sampled_from([p for p in PIDS if p is not None] + [999]), held))


@st.composite
def runs(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[pd.DataFrame], str]:
    rows = draw(span_rows())
    gpus = [draw(gpu_samples(f"GPU-{i}")) for i in range(draw(st.integers(1, 2)))]
    return rows, gpus, draw(st.sampled_from(POLICIES))


def _check_ledger(ledger: Any, samples: pd.DataFrame) -> None:
    assert ledger.checks["conservation_held"] is True
    # The idle baseline is taken outside the run's steps, as the engine does.
    lines = build_timelines(samples, work=work_intervals(ledger.steps))
    for quantity in QUANTITIES:
        present = [line for line in lines if quantity in line.curves]
        column = ledger.steps[f"self_{quantity}"]
        if not present:
            assert column.isna().all(), quantity
            continue
        measured = sum(line.total(quantity) for line in present)
        scale = max(1.0, *(float(np.abs(line.curves[quantity]).max()) for line in present))
        attributed = float(column.sum())
        assert abs(attributed - measured) <= 1e-9 * scale, (quantity, attributed, measured)
        if quantity in NON_DECREASING:
            assert column.min() >= -1e-9 * scale, (quantity, column.min())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=runs(), alone=st.integers(0, 1))
def test_self_values_add_up_to_every_device_total(
    case: tuple[list[dict[str, Any]], list[pd.DataFrame], str], alone: int
) -> None:
    rows, gpus, policy = case
    spans = spans_frame(rows)
    samples = concat_samples(*gpus)
    ledger = attribute(Run(spans=spans, samples=samples), policy=policy, pricer=PRICER)  # type: ignore[arg-type]
    _check_ledger(ledger, samples)
    for gpu, per_quantity in ledger.checks["conservation"].items():
        assert all(entry["held"] for entry in per_quantity.values()), gpu
    assert_inclusive_is_self_plus_descendants(ledger, ["energy_j", "gpu_s", "input_tokens"])
    assert_tree_is_consistent(ledger)
    if len(gpus) > 1:  # per device: the same spans with one GPU's samples conserve that GPU's totals alone
        one = gpus[alone]
        _check_ledger(attribute(Run(spans=spans, samples=one), policy=policy, pricer=PRICER), one)  # type: ignore[arg-type]
