"""A full disk loses records, counted, but never the run: spans.jsonl and samples.csv stay whole lines."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

import profiler
from instrumentation.exporter import RunDirExporter
from profiler.gpu.samples_file import SamplesWriter, read_samples
from profiler.model import SAMPLE_COLUMNS
from profiler.testing import FakeGpuBackend
from reports import render
from tests.reliability.helpers import DiskFillsOnce, tmpfs


def _lines(path: Path) -> list[str]:
    text = path.read_text()
    assert text.endswith("\n")  # a line boundary at the end
    return text.splitlines()


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_span_batch_cut_short_by_a_full_disk_is_cut_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    disk = DiskFillsOnce(monkeypatch, "spans.jsonl")
    exporter = RunDirExporter(tmp_path)
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("before"):
        pass
    disk.armed = True
    with tracer.start_as_current_span("lost to the full disk"):
        pass
    with tracer.start_as_current_span("after"):
        pass
    provider.shutdown()
    lines = _lines(tmp_path / "spans.jsonl")
    assert len(lines) == 2 and all(json.loads(line) for line in lines)  # before: half a line, then "after" glued on
    assert exporter.failed_spans == 1 and exporter.exported_spans == 2
    assert profiler.load(tmp_path).spans["name"].tolist() == ["before", "after"]


def _row(t_ns: int) -> tuple[object, ...]:
    values = {"t_ns": t_ns, "gpu": "GPU-0", "energy_j": 1.5, "power_w": 100.0}
    return tuple(values.get(column) for column in SAMPLE_COLUMNS)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc/self/fd")
def test_a_samples_batch_cut_short_by_a_full_disk_is_cut_back(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    disk = DiskFillsOnce(monkeypatch, "samples.csv")
    writer = SamplesWriter(tmp_path / "samples.csv")
    writer.write([_row(1), _row(2)])
    disk.armed = True
    with pytest.raises(OSError, match="No space"):
        writer.write([_row(3), _row(4), _row(5)])
    writer.write([_row(6)])
    writer.close()
    assert len(_lines(tmp_path / "samples.csv")) == 4  # the header and three whole rows
    warnings: list[str] = []
    assert read_samples(tmp_path / "samples.csv", warnings)["t_ns"].tolist() == [1, 2, 6]
    assert warnings == [] and writer.failed_rows == 3


# --- a real full disk: a 1 MiB tmpfs that fills, then frees ------------------------------------------

def _fill(path: Path) -> None:
    with contextlib.suppress(OSError), path.open("wb", buffering=0) as stream:
        while True:
            stream.write(b"\0" * 4096)


@pytest.mark.skipif(not hasattr(os, "geteuid"), reason="POSIX only")
def test_a_disk_that_fills_and_frees_leaves_a_readable_run_that_counts_its_losses(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "size=1m") as disk:
        run_dir = disk / "run"
        with profiler.session(run_dir=run_dir, gpu=FakeGpuBackend(), sample_interval_s=0.02) as session:
            with profiler.step("before"):
                pass
            session.recorder.flush()
            _fill(disk / "filler")
            for _ in range(20):
                with profiler.step("while full", attributes={"padding": "x" * 2000}):
                    pass
                session.recorder.flush()
            (disk / "filler").unlink()
            with profiler.step("after"):
                pass
        ledger = session.ledger
        steps = ledger.steps["name"].tolist()
        meta = json.loads((run_dir / "run.json").read_text())
        report = render(ledger, "table")
    assert "before" in steps and "after" in steps  # before: the report refused the run at line 2
    lost = meta["dropped"]["spans_failed_export"]
    assert lost >= 1 and steps.count("while full") == 20 - lost
    assert f"spans_failed_export {lost}" in report  # the report says how many were lost
