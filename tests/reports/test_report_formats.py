"""Every renderer, every format, on the empty run and the golden run (pyinstrument's smoke test)."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import profiler
from profiler.attribution.ledger import Ledger
from reports import render, render_encoded, render_parts
from reports._cells import notes
from reports.parquet_report import pyarrow_available
from reports.registry import RENDERERS, WEIGHTS, Renderer
from reports.render import FORMATS
from tests.paths import GOLDEN


def _check_output(fmt: str, out: str | bytes, ledger: Ledger) -> None:
    assert isinstance(out, bytes) == RENDERERS[fmt].binary, fmt
    if fmt == "parquet":
        assert out[:4] == b"PAR1"
        return
    assert isinstance(out, str)
    # A missing figure is never printed as a NaN (nor as a Python None).
    assert not re.search(r"\bnan\b", out, re.IGNORECASE), fmt
    if fmt in ("json", "perfetto", "speedscope"):
        document = json.loads(out)
        assert document
        if fmt == "perfetto":
            assert isinstance(document["traceEvents"], list)
        if fmt == "speedscope":
            assert document["profiles"][0]["type"] == "sampled"
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out)))
        assert rows and "self_total_cost_usd" in rows[0]
    elif fmt == "html":
        assert out.startswith("<!DOCTYPE html>") and out.rstrip().endswith("</html>")
    elif fmt == "folded":
        for line in out.splitlines():
            assert re.fullmatch(r"[^\n]+ \d+", line), line
    else:  # what a reader of the table or the Markdown sees is checked in test_report_text.py
        assert "Total (measured)" in out


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("which", ["empty_ledger", "golden_ledger", "cpu_only_ledger"])
def test_every_format_renders(fmt: str, which: str, request: pytest.FixtureRequest) -> None:
    if fmt == "parquet" and not pyarrow_available():
        pytest.skip("pyarrow is not installed")
    ledger = request.getfixturevalue(which)
    _check_output(fmt, render(ledger, fmt), ledger)


@pytest.mark.parametrize("fmt", ["speedscope", "folded"])
@pytest.mark.parametrize("weight", WEIGHTS)
def test_flame_graph_weights(fmt: str, weight: str, golden_ledger: Ledger, empty_ledger: Ledger) -> None:
    for ledger in (golden_ledger, empty_ledger):
        _check_output(fmt, render(ledger, fmt, weight=weight), ledger)


def test_unknown_weight_and_format_are_clear_errors(golden_ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="unknown weight 'watts'.*usd, joules, gib_s"):
        render(golden_ledger, "speedscope", weight="watts")
    with pytest.raises(ValueError, match="html, perfetto, speedscope, folded, parquet"):
        render(golden_ledger, "pdf")


def test_the_registry_is_the_list_of_formats() -> None:
    assert FORMATS == tuple(RENDERERS) == ("table", "json", "csv", "markdown", "html", "perfetto", "speedscope",
                                           "folded", "parquet")
    assert all(name == renderer.name for name, renderer in RENDERERS.items())
    extensions = [renderer.file_extension for renderer in RENDERERS.values()]
    assert all(ext.startswith(".") for ext in extensions) and len(set(extensions)) == len(extensions)
    assert [name for name, renderer in RENDERERS.items() if renderer.binary] == ["parquet"]


def test_a_format_is_added_by_one_registry_entry(golden_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = Renderer("steps", ".steps.txt", "tests.reports.test_report_formats:_step_names", options=("width",))
    monkeypatch.setitem(RENDERERS, "steps", entry)
    text = render(golden_ledger, "steps", top=2, width=9, color=True)  # `color` is not the renderer's option
    assert text == "top=2 width=9 session golden"
    assert b"".join(render_encoded(golden_ledger, "steps", top=2, width=9)) == text.encode()
    assert list(render_parts(golden_ledger, "steps", top=2, width=9)) == [text]


def _step_names(ledger: Ledger, *, by: str, top: int | None, width: int) -> str:
    return f"top={top} width={width} {ledger.tree_order()['name'].iloc[0]}"


def test_golden_run_builder_matches_the_committed_files(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("golden_build", GOLDEN / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(tmp_path)
    for name in ("spans.jsonl", "samples.csv", "run.json"):
        assert (tmp_path / name).read_text() == (GOLDEN / name).read_text(), name


def test_notes_give_the_gpu_readings_and_where_memory_share_fell_back() -> None:
    run = profiler.load(GOLDEN)  # samples with no per-process memory, clocks or temperature
    ledger = profiler.attribute(run, policy="memory")
    (line,) = [n for n in notes(ledger) if n.startswith("policy:")]
    assert "fell back to equal shares" in line and "no per-process memory" in line
    run.samples["temp_c"] = np.linspace(41.0, 67.0, len(run.samples))
    run.samples["sm_clock_mhz"] = 1980.0
    ledger = profiler.attribute(run)
    readings = ledger.totals["gpus"][0]["readings"]
    assert readings["temp_c"]["min"] == 41.0 and readings["temp_c"]["max"] == 67.0
    assert readings["temp_c"]["count"] == len(run.samples) and "mem_clock_mhz" not in readings
    assert any(n.endswith("; 41-67 °C, SM 1,980 MHz") for n in notes(ledger))
    assert not any(n.startswith("policy:") for n in notes(ledger))  # equal shares: nothing to say


def test_notes_say_how_well_the_counter_updates_were_located() -> None:
    run = profiler.load(GOLDEN)  # counter read at a fixed 10 Hz: no phase to locate
    assert run.samples["energy_j"].notna().all()
    assert not any("located to within" in n for n in notes(profiler.attribute(run)))
    # The same counter read on the sampler's dithered schedule: its updates are located, and the
    # spread they were located to is stated (and matches the figure in totals).
    from profiler.gpu.sampler import tick_offset

    start_ns = int(run.samples["t_ns"].iat[0])
    t_s = np.array([tick_offset(k, 0.1) for k in range(len(run.samples))])
    updates = np.floor((t_s - 0.037) / 0.1)
    run.samples["t_ns"] = start_ns + np.round(t_s * 1e9).astype(np.int64)
    run.samples["energy_j"] = 1000.0 + 30.0 * (updates - updates[0])
    ledger = profiler.attribute(run)
    within_ms = ledger.totals["gpus"][0]["updates_located_within_ms"]
    assert 0 < within_ms < 25  # located, to within a quarter of the 100 ms period
    assert any(n.startswith("GPU ") and f"its updates located to within {within_ms:.1f} ms" in n
               for n in notes(ledger))


def test_the_json_steps_write_missing_values_as_null_and_numpy_values_as_numbers(golden_ledger: Ledger) -> None:
    import pandas as pd

    steps = golden_ledger.steps.copy()
    n = len(steps)
    steps["model"] = pd.Series([float("nan"), pd.NA, np.int64(7), np.bool_(True)] * (n // 4)
                               + [None] * (n % 4), dtype=object)
    steps["energy_j"] = np.nan
    ledger = Ledger(steps=steps, totals=golden_ledger.totals, checks=golden_ledger.checks, run=golden_ledger.run)
    document = json.loads(render(ledger, "json"))
    assert [step["model"] for step in document["steps"][:4]] == [None, None, 7, True]
    assert all(step["energy_j"] is None for step in document["steps"])
    text = str(render(ledger, "json"))
    assert text.count("\n    {") == n  # one step per line


def test_the_json_steps_are_the_ledgers_own_however_chunks_pieces_and_constant_columns_fall(
        golden_ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    from reports import json_report

    steps = golden_ledger.steps.copy()
    n = len(steps)
    # Runs of null columns that differ from chunk to chunk: a run in the first rows only, one
    # broken by a column that has values, and one that ends the row.
    steps.loc[: n // 2, ["energy_j", "self_energy_j", "active_energy_j"]] = np.nan
    steps["gpu_s"] = np.nan
    steps["self_gpu_busy_s"] = np.nan
    steps["self_energy_uncertainty_j"] = np.nan
    # Texts null throughout a chunk or the whole ledger: an object column, and pandas' own strings.
    steps.loc[: n // 2, "model"] = None
    steps["error_type"] = None
    steps["tokens_source"] = pd.Series(pd.NA, index=steps.index, dtype="string")
    steps.loc[n // 2:, "energy_source"] = pd.NA
    # Columns that hold one value throughout a chunk, or seem to: 0.0 beside -0.0 is not constant.
    steps["remote"] = True
    steps["cache_write_tokens"] = 0.0
    steps.loc[n - 1, "cache_write_tokens"] = -0.0
    steps["reasoning_tokens"] = 7.0
    steps.loc[: n // 2, "memory_source"] = "measured: the run's processes"
    steps["provider"] = "openai"
    # Equal but written differently: 1, 1.0 and True are no constant.
    steps["tool_name"] = pd.Series([(1, 1.0, True)[i % 3] for i in range(n)], index=steps.index, dtype=object)
    ledger = Ledger(steps=steps, totals=golden_ledger.totals, checks=golden_ledger.checks, run=golden_ledger.run)
    monkeypatch.setattr(json_report, "_CHUNK", 5)
    monkeypatch.setattr(json_report, "_PIECE", 2)
    written = json.loads(render(ledger, "json"))["steps"]
    # Compared as JSON text: a 0 for a 0.0, a 0.0 for a -0.0 or a key out of order would show.
    assert list(map(json.dumps, written)) == list(map(json.dumps, ledger.to_json()["steps"]))
