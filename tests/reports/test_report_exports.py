"""Perfetto trace events, speedscope and folded flame graphs, Parquet, and the CLI that writes them."""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from profiler.attribution.ledger import Ledger
from profiler.cli.app import app
from profiler.model import UNATTRIBUTED_KIND
from reports import render
from reports.flamegraph import FOLDED_SCALE
from reports.parquet_report import INSTALL_HINT, pyarrow_available
from tests.paths import GOLDEN

needs_pyarrow = pytest.mark.skipif(not pyarrow_available(), reason="pyarrow is not installed")


def _events(ledger: Ledger) -> list[dict]:
    return json.loads(render(ledger, "perfetto"))["traceEvents"]


def test_perfetto_slices_are_the_steps(golden_ledger: Ledger) -> None:
    events = _events(golden_ledger)
    slices = [e for e in events if e["ph"] == "X"]
    steps = golden_ledger.steps[golden_ledger.steps["kind"] != UNATTRIBUTED_KIND]
    assert len(slices) == len(steps)
    origin = min(int(steps["start_ns"].min()), int(golden_ledger.samples["t_ns"].min()))
    by_id = steps.set_index("span_id")
    for event in slices:
        row = by_id.loc[event["args"]["span_id"]]
        assert event["name"] == row["name"] and event["cat"] == row["kind"]
        assert event["ts"] == pytest.approx((row["start_ns"] - origin) / 1000)
        assert event["dur"] == pytest.approx((row["end_ns"] - row["start_ns"]) / 1000)
        if not pd.isna(row["self_total_cost_usd"]):
            assert event["args"]["self_total_cost_usd"] == pytest.approx(row["self_total_cost_usd"])
    names = {e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    assert "session golden" in names and any(n.startswith("GPU 0: NVIDIA H100") for n in names)


def test_perfetto_slices_on_one_thread_nest_only_under_their_parent(golden_ledger: Ledger) -> None:
    slices = [e for e in _events(golden_ledger) if e["ph"] == "X"]
    threads: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for event in slices:
        threads[(event["pid"], event["tid"])].append(event)
    assert len(threads) >= 2, "the concurrent calculator call needs a thread of its own"
    for lane in threads.values():
        lane.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack: list[dict] = []
        for event in lane:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= event["ts"]:
                stack.pop()
            if stack:
                outer = stack[-1]
                assert event["ts"] + event["dur"] <= outer["ts"] + outer["dur"], "slices overlap without nesting"
                assert event["args"]["parent_span_id"] == outer["args"]["span_id"], event["name"]
            stack.append(event)


def test_perfetto_counters(golden_ledger: Ledger) -> None:
    counters = [e for e in _events(golden_ledger) if e["ph"] == "C"]
    by_name: dict[str, list[dict]] = defaultdict(list)
    for event in counters:
        by_name[event["name"]].append(event)
    samples = len(golden_ledger.samples)
    assert len(by_name["GPU power (W)"]) == samples
    assert len(by_name["GPU memory used (GiB)"]) == samples
    energy = by_name["GPU energy since start (J)"]
    assert energy[-1]["args"]["energy_j"] == pytest.approx(golden_ledger.totals["energy_j"])
    assert max(e["args"]["mem_used_gib"] for e in by_name["GPU memory used (GiB)"]) == pytest.approx(43)
    dollars = [e["args"]["usd"] for e in by_name["cumulative $ (steps finished)"]]
    assert len(dollars) == 5 and dollars == sorted(dollars)


def test_perfetto_of_a_cpu_only_run_has_no_counters_but_all_slices(cpu_only_ledger: Ledger) -> None:
    events = _events(cpu_only_ledger)
    assert not [e for e in events if e["ph"] == "C" and e["name"].startswith("GPU")]
    assert len([e for e in events if e["ph"] == "X"]) == 13


@pytest.mark.parametrize(("weight", "total"), [("usd", "total_cost_usd"), ("joules", "energy_j"),
                                                ("gib_s", "gpu_mem_gib_s")])
def test_speedscope_weights(golden_ledger: Ledger, weight: str, total: str) -> None:
    document = json.loads(render(golden_ledger, "speedscope", weight=weight))
    frames = document["shared"]["frames"]
    profile = document["profiles"][0]
    assert len(profile["samples"]) == len(profile["weights"])
    assert all(0 <= i < len(frames) for stack in profile["samples"] for i in stack)
    assert sum(profile["weights"]) == pytest.approx(golden_ledger.totals[total])
    assert profile["endValue"] == pytest.approx(golden_ledger.totals[total])
    assert frames[profile["samples"][0][0]]["name"] == "session golden"


def test_folded_stacks(golden_ledger: Ledger, hostile_ledger: Ledger) -> None:
    lines = render(golden_ledger, "folded", weight="joules").splitlines()
    counts = {}
    for line in lines:
        stack, count = line.rsplit(" ", 1)
        counts[stack] = counts.get(stack, 0) + int(count)
    scale = FOLDED_SCALE["joules"][0]
    assert sum(counts.values()) / scale == pytest.approx(golden_ledger.totals["energy_j"], abs=len(lines) / scale)
    assert "session golden;invoke_agent planner;summarise;chat meta-llama/Llama-3.1-8B-Instruct" in counts
    # A name with the separator or a line break cannot break the format.
    for line in render(hostile_ledger, "folded").splitlines():
        assert line.count(";") <= 3 and "\n" not in line
    assert any('a"b,c d <img' in line for line in render(hostile_ledger, "folded").splitlines())


@needs_pyarrow
def test_parquet_round_trip_keeps_missing_figures_missing(golden_ledger: Ledger, cpu_only_ledger: Ledger) -> None:
    import io

    for ledger in (golden_ledger, cpu_only_ledger):
        frame = pd.read_parquet(io.BytesIO(render(ledger, "parquet")))
        expected = ledger.tree_order().drop(columns=["bills_usage"]).reset_index(drop=True)
        assert list(frame.columns) == list(expected.columns)
        for column in ("self_total_cost_usd", "energy_j", "gpu_mem_gib_s", "input_tokens"):
            np.testing.assert_allclose(frame[column].to_numpy(float), expected[column].to_numpy(float))
    assert frame["energy_j"].isna().all()  # CPU-only: null, never 0
    grouped = pd.read_parquet(io.BytesIO(render(golden_ledger, "parquet", by="tool")))
    assert set(grouped["tool"]) == {"web_search", "read_page", "calculator", "flaky_api", "cache_lookup"}


def test_parquet_without_pyarrow_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr("reports.parquet_report.pyarrow_available", lambda: False)
    result = CliRunner().invoke(app, ["report", str(GOLDEN), "-f", "parquet", "-o", str(tmp_path / "x.parquet")])
    assert result.exit_code == 1
    assert result.output.strip() == f"sessionprof: error: {INSTALL_HINT}"
    assert "pip install pyarrow" in INSTALL_HINT
    assert not (tmp_path / "x.parquet").exists()


@pytest.mark.parametrize("fmt", ["html", "perfetto", "speedscope", "folded", "parquet"])
def test_cli_report_writes_each_new_format(fmt: str, tmp_path: Path) -> None:
    if fmt == "parquet" and not pyarrow_available():
        pytest.skip("pyarrow is not installed")
    target = tmp_path / f"out.{fmt}"
    result = CliRunner().invoke(app, ["report", str(GOLDEN), "--format", fmt, "-o", str(target),
                                      "--weight", "joules"])
    assert result.exit_code == 0, result.output
    assert f"report written to {target}" in result.output
    assert target.stat().st_size > 100


def test_cli_run_writes_report_html_beside_the_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    agent = "import profiler\nwith profiler.step('work'):\n    pass"
    result = CliRunner().invoke(app, ["run", "--run-dir", str(run_dir), "--gpu", "none", "-f", "json", "--",
                                      sys.executable, "-c", agent])
    assert result.exit_code == 0, result.output
    page = run_dir / "report.html"
    assert page.is_file() and page.read_text().startswith("<!DOCTYPE html>")
    assert f"HTML report: {page}" in result.output
    skipped = CliRunner().invoke(app, ["run", "--run-dir", str(tmp_path / "quiet"), "--gpu", "none", "--no-html",
                                       "--", sys.executable, "-c", agent])
    assert skipped.exit_code == 0, skipped.output
    assert not (tmp_path / "quiet" / "report.html").exists()


def test_two_sessions_get_a_process_each(two_session_ledger: Ledger) -> None:
    events = _events(two_session_ledger)
    processes = {e["pid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    sessions = [name for pid, name in processes.items() if pid < 1000]
    assert sessions == ["session golden", "session golden"]
    slices = [e for e in events if e["ph"] == "X"]
    assert len({e["pid"] for e in slices}) == 2
    assert len(slices) == 2 * 13
    dollars = [e for e in events if e["ph"] == "C" and e["name"].startswith("cumulative $")]
    assert {e["pid"] for e in dollars} == {1, 2}
