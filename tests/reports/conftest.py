"""Ledgers for the renderer tests: the golden run, an empty run, and a CPU-only run (no GPU samples)."""

from __future__ import annotations

import copy

import pytest

import profiler
from profiler.attribution.ledger import Ledger
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, empty_frame
from tests.paths import GOLDEN

HOSTILE = "<script>alert(1)</script>"


@pytest.fixture(scope="session")
def golden_ledger() -> Ledger:
    return profiler.attribute(profiler.load(GOLDEN))


@pytest.fixture(scope="session")
def empty_ledger() -> Ledger:
    run = Run(spans=empty_frame(SPAN_COLUMNS), samples=empty_frame(SAMPLE_COLUMNS))
    return profiler.attribute(run)


@pytest.fixture(scope="session")
def cpu_only_ledger() -> Ledger:
    """The golden run without its GPU samples: every GPU figure is missing."""
    run = profiler.load(GOLDEN)
    run.samples = empty_frame(SAMPLE_COLUMNS)
    run.meta["gpus"] = []
    return profiler.attribute(run)


@pytest.fixture(scope="session")
def hostile_ledger(golden_ledger: Ledger) -> Ledger:
    """The golden ledger with trace strings that would run script if not escaped."""
    ledger = copy.deepcopy(golden_ledger)
    steps = ledger.steps
    tool = steps.index[steps["name"] == "execute_tool web_search"][0]
    steps.loc[tool, "name"] = HOSTILE
    steps.loc[steps["name"] == "execute_tool read_page", "name"] = 'a"b;c\nd <img src=x onerror=alert(2)>'
    steps.loc[steps["model"] == "acme-llm-1", "model"] = "<b>acme</b>"
    ledger.checks["unpriced_models"] = ["<b>acme</b>"]
    return ledger


@pytest.fixture(scope="session")
def two_session_ledger() -> Ledger:
    """The golden session twice: the second a copy in another trace, 20 s later, with no GPU beside it."""
    import pandas as pd

    run = profiler.load(GOLDEN)
    second = run.spans.copy()
    second["trace_id"] = "f" * 32
    second["session_id"] = "conv-golden-2"
    second["start_ns"] += 20 * 10**9
    second["end_ns"] += 20 * 10**9
    run.spans = pd.concat([run.spans, second], ignore_index=True)
    return profiler.attribute(run)
