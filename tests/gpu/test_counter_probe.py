"""The energy counter's startup check: its verdicts on synthetic reads, the sampler running it in its
thread against the simulated NVML library (tests/nvml_sim), and what attribution makes of a verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import profiler
from profiler.energy.sensor_checks import (
    MAX_UPDATE_PERIOD_S,
    PROBE_TOLERANCE,
    GpuSensor,
    gpu_sensors,
    judge_counter,
)
from profiler.energy.update_grid import change_period
from profiler.errors import GpuUnavailableError
from profiler.gpu.counter_probe import PROBE_INTERVAL_S, PROBE_S
from profiler.gpu.nvml import NvmlBackend
from profiler.gpu.sampler import GpuSampler
from profiler.model import SAMPLE_COLUMNS, SPAN_COLUMNS, Run, frame_from_rows
from profiler.testing import FakeGpuBackend
from tests.nvml_sim import build  # noqa: E402 - one compiled library per test session

BASE_NS = 1_700_000_000_000_000_000


def probe_reads(period_s: float, watts: float, *, seconds: float = 1.1, gain: float = 1.0,
                phase_s: float = 0.037) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What reads every 10 ms see of a counter updated every `period_s` at constant power: (t, J, W)."""
    t = np.arange(0.0, seconds, PROBE_INTERVAL_S) + 1e-4
    last = phase_s + np.floor((t - phase_s) / period_s) * period_s
    return t, 5e5 + gain * watts * last, np.full(len(t), watts)


# ---- verdicts -----------------------------------------------------------------------------------


@pytest.mark.parametrize("period_s", [0.02, 0.1, 0.25])
def test_the_update_period_is_timed_from_the_change_points(period_s: float) -> None:
    t, energy, power = probe_reads(period_s, 300.0)
    result = judge_counter(t, energy, power)
    assert result["update_period_ms"] == pytest.approx(period_s * 1e3, abs=1.0)
    assert result["changes"] == pytest.approx(1.1 / period_s, abs=1)


def test_a_healthy_counter_agrees_with_power() -> None:
    result = judge_counter(*probe_reads(0.1, 300.0))
    assert result["verdict"] == "ok"
    assert result["power_ratio"] == pytest.approx(1.0, abs=0.01)
    assert "problem" not in result


def test_a_step_in_power_during_the_check_still_agrees() -> None:
    # The agent starts work 0.43 s in: each update's joules are paired with the power read with it.
    t = np.arange(0.0, 1.1, PROBE_INTERVAL_S) + 1e-4
    last = np.floor(t / 0.1) * 0.1
    fine = np.linspace(0.0, 1.2, 12_001)
    joules = np.concatenate([[0.0], np.cumsum(np.diff(fine) * np.where(fine[:-1] < 0.43, 80.0, 450.0))])
    power = np.where(last - 0.025 >= 0.43, 450.0, np.where(last <= 0.43, 80.0, 265.0))
    result = judge_counter(t, 5e5 + np.interp(last, fine, joules), power)
    assert result["verdict"] == "ok" and result["power_ratio"] == pytest.approx(1.0, abs=0.1)


def test_a_counter_that_does_not_move_is_stuck() -> None:
    t, energy, power = probe_reads(0.1, 120.0)
    result = judge_counter(t, np.full(len(t), energy[0]), power)
    assert result["verdict"] == "stuck"
    assert "did not change for 1.09 s while the GPU drew 120 W" in result["problem"]


def test_a_check_shorter_than_the_slowest_update_cannot_call_it_stuck() -> None:
    t, energy, power = probe_reads(0.1, 120.0, seconds=MAX_UPDATE_PERIOD_S - 0.1)
    result = judge_counter(t, np.full(len(t), energy[0]), power)
    assert result["verdict"] == "unvalidated"


def test_a_counter_that_goes_down_is_flagged() -> None:
    t, energy, power = probe_reads(0.1, 200.0, gain=-1.0)
    result = judge_counter(t, energy, power)
    assert result["verdict"] == "decreasing" and "went down by 20.000 J" in result["problem"]


@pytest.mark.parametrize("gain", [0.5, 1.6])
def test_a_counter_far_from_power_disagrees(gain: float) -> None:
    result = judge_counter(*probe_reads(0.1, 200.0, gain=gain))
    assert result["verdict"] == "disagrees"
    assert result["power_ratio"] == pytest.approx(1.0 / gain, rel=0.01)
    assert f"{1.0 / gain:.2f}x" in result["problem"] and f"{PROBE_TOLERANCE:.0%}" in result["problem"]


def test_without_power_or_enough_updates_the_counter_is_unvalidated() -> None:
    t, energy, power = probe_reads(0.1, 200.0)
    no_power = judge_counter(t, energy, np.full(len(t), np.nan))
    assert no_power["verdict"] == "unvalidated" and no_power["reason"] == "no power readings to compare with"
    assert no_power["update_period_ms"] == pytest.approx(100.0, abs=1.0)  # still timed
    slow = judge_counter(*probe_reads(0.3, 200.0))
    assert slow["verdict"] == "unvalidated" and "fewer than" in slow["reason"]
    assert judge_counter(np.array([0.0]), np.array([1.0]), np.array([1.0]))["verdict"] == "unvalidated"


def test_failed_and_zero_readings_drop_out() -> None:
    t, energy, power = probe_reads(0.1, 250.0)
    energy[5::7] = np.nan  # failed reads
    power[::3] = 0.0  # polled too fast
    result = judge_counter(t, energy, power)
    assert result["verdict"] == "ok" and result["power_ratio"] == pytest.approx(1.0, abs=0.01)


def test_a_stalled_read_that_saw_two_updates_keeps_the_count() -> None:
    t, energy, _ = probe_reads(0.1, 300.0, seconds=2.0)
    keep = (t < 0.52) | (t > 0.68)  # 160 ms without a read (the GIL held by a busy agent)
    assert change_period(t[keep], energy[keep]) == pytest.approx(0.1, abs=5e-4)


# ---- in the sampler, against the simulated NVML library ----------------------------------------


@pytest.fixture
def simulated(tmp_path: Path) -> Iterator:
    """Return a function: scenario text -> a started-and-stopped sampler's `describe()`."""
    try:
        lib = build.build_nvml_sim()
    except build.CompilerNotFoundError as err:
        pytest.skip(f"simulated NVML needs a C compiler: {err}")

    def sample(scenario: str, seconds: float = PROBE_S + 0.2, **options) -> dict:
        path = tmp_path / f"scenario{len(list(tmp_path.iterdir()))}.txt"
        path.write_text(scenario)
        with build.attach(lib, path) as nvml:
            sampler = GpuSampler(NvmlBackend(nvml, visible_devices=None), None, **options)
            sampler.start()
            assert sampler._probe is not None and not sampler._probe.done  # the agent does not wait for it
            time.sleep(seconds)
            sampler.stop()
            return sampler.describe()

    yield sample


FAULTS = """\
update_period_ms 100
device uuid=GPU-ok arch=hopper
power idle_w=80 busy_w=450 period_ms=1730 duty=0.4
device uuid=GPU-stuck arch=hopper energy_stuck_after_ms=0
power watts=100
device uuid=GPU-half arch=hopper energy_gain=0.5
power watts=200
device uuid=GPU-down arch=hopper energy_gain=-1
power watts=200
device uuid=GPU-none arch=hopper
unsupported energy_counter
"""


def test_the_sampler_checks_each_counter_in_its_thread(simulated) -> None:
    meta = simulated(FAULTS)
    probes = {gpu["uuid"]: gpu["counter_probe"] for gpu in meta["gpus"]}
    assert {uuid: p["verdict"] for uuid, p in probes.items()} == {
        "GPU-ok": "ok", "GPU-stuck": "stuck", "GPU-half": "disagrees", "GPU-down": "decreasing",
        "GPU-none": "absent"}
    ok = probes["GPU-ok"]
    assert ok["update_period_ms"] == pytest.approx(100.0, abs=10.0)
    assert ok["power_ratio"] == pytest.approx(1.0, abs=PROBE_TOLERANCE)
    assert probes["GPU-half"]["power_ratio"] == pytest.approx(2.0, rel=0.05)
    assert ok["reads"] >= 0.8 * PROBE_S / PROBE_INTERVAL_S and ok["read_errors"] == 0
    assert 0 < ok["read_us_median"] <= ok["read_us_max"]  # every read timed
    sampler = meta["sampler"]
    assert sampler["counter_probe_s"] == PROBE_S and 0 < sampler["counter_probe_cpu_s"] < 0.5


@pytest.mark.parametrize("period_ms", [40, 250])
def test_the_update_period_is_measured_within_ten_milliseconds(simulated, period_ms: int) -> None:
    meta = simulated(f"update_period_ms {period_ms}\ndevice uuid=GPU-p arch=hopper\npower watts=150\n")
    assert meta["gpus"][0]["counter_probe"]["update_period_ms"] == pytest.approx(period_ms, abs=10.0)


def test_a_run_shorter_than_the_check_is_judged_on_what_it_read(simulated) -> None:
    meta = simulated("device uuid=GPU-s arch=hopper\npower watts=150\n", seconds=0.3)
    probe = meta["gpus"][0]["counter_probe"]
    assert probe["verdict"] == "unvalidated" and probe["reads"] >= 5
    assert probe["update_period_ms"] == pytest.approx(100.0, abs=10.0)


def test_read_counter_asks_one_field_query_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        lib = build.build_nvml_sim()
    except build.CompilerNotFoundError as err:
        pytest.skip(f"simulated NVML needs a C compiler: {err}")
    path = tmp_path / "scenario.txt"
    path.write_text("device arch=hopper\npower watts=150\n"
                    "device arch=ampere\npower watts=90\nunsupported power_instant power_average\n")
    with build.attach(lib, path) as nvml:
        backend = NvmlBackend(nvml, visible_devices=None)
        backend.open()
        full = backend.read(1)
        with monkeypatch.context() as patch:
            patch.setattr(nvml, "nvmlDeviceGetMemoryInfo", lambda *a, **k: pytest.fail("not a full read"))
            quick = backend.read_counter(0)
        assert quick.power_w == 150.0 and quick.energy_j is not None and quick.mem_used_bytes is None
        # Without an instant field there is no one-call query: a full read, with the 1 s average.
        slow = backend.read_counter(1)
        assert slow.power_w == 90.0 and slow.mem_used_bytes == full.mem_used_bytes
        backend.close()
        with pytest.raises(GpuUnavailableError):
            backend.read_counter(0)


class _FailingCounter(FakeGpuBackend):
    """A scripted GPU whose counter check reads all fail, as a broken driver's might."""

    probe_counter = True

    def read_counter(self, index: int):
        raise RuntimeError("not a GPU error")


def test_failed_check_reads_are_counted_and_sampling_goes_on() -> None:
    sampler = GpuSampler(_FailingCounter(), None, interval_s=0.05, counter_probe_s=0.2)
    sampler.start()
    time.sleep(0.4)
    sampler.stop()
    probe = sampler.describe()["gpus"][0]["counter_probe"]
    assert probe["verdict"] == "unvalidated" and probe["reads"] == 0 and probe["read_errors"] >= 10
    assert sampler.stats.read_errors == 0 and sampler.stats.samples >= 5


def test_the_check_can_be_turned_off_and_scripted_backends_skip_it() -> None:
    assert GpuSampler(FakeGpuBackend(), None).counter_probe_s == 0.0
    assert GpuSampler(NvmlBackend(visible_devices=None), None, counter_probe_s=0).counter_probe_s == 0.0
    assert GpuSampler(NvmlBackend(visible_devices=None), None).counter_probe_s == PROBE_S
    sampler = GpuSampler(FakeGpuBackend(), None, interval_s=0.05)
    sampler.start()
    time.sleep(0.1)
    sampler.stop()
    meta = sampler.describe()
    assert "counter_probe" not in meta["gpus"][0] and meta["sampler"]["counter_probe_cpu_s"] is None


# ---- what attribution makes of a verdict --------------------------------------------------------


def _run(verdict: str | None, *, counter_w: float = 100.0, power_w: float | None = 100.0) -> Run:
    t = np.arange(0.0, 5.0 + 1e-9, 0.1)
    samples = frame_from_rows({"t_ns": (BASE_NS + t * 1e9).astype(np.int64).tolist(),
                               "gpu": ["GPU-x"] * len(t), "energy_j": (5e5 + counter_w * t).tolist(),
                               "power_w": [power_w] * len(t)}, SAMPLE_COLUMNS)
    gpu: dict = {"uuid": "GPU-x", "name": "x", "details": {"power_source": "field_instant_gpu"}}
    if verdict is not None:
        gpu["counter_probe"] = {"verdict": verdict}
    if verdict not in (None, "ok"):
        gpu["counter_probe"]["problem"] = f"the counter failed ({verdict})"
    return Run(spans=frame_from_rows([], SPAN_COLUMNS), samples=samples, meta={"gpus": [gpu]})


def test_a_stuck_counter_is_replaced_by_integrated_power() -> None:
    ledger = profiler.attribute(_run("stuck", counter_w=0.0))
    assert ledger.totals["gpus"][0]["energy_source"] == "measured:integrated-power"
    assert ledger.totals["energy_j"] == pytest.approx(500.0, rel=0.01)  # not 0 J
    assert ledger.checks["conservation_held"] is True
    assert ledger.checks["counter_probe"]["GPU-x"]["verdict"] == "stuck"
    expected = "GPU GPU-x: at startup the counter failed (stuck); its joules are not used: energy is"
    assert any(expected in w for w in ledger.checks["warnings"])


def test_a_stuck_counter_without_power_leaves_energy_unmeasured() -> None:
    ledger = profiler.attribute(_run("decreasing", power_w=None))
    assert ledger.totals["energy_j"] is None
    assert any("energy is not measured" in w for w in ledger.checks["warnings"])


def test_a_counter_that_disagrees_with_power_is_still_used_with_a_warning() -> None:
    ledger = profiler.attribute(_run("disagrees", counter_w=50.0))
    assert ledger.totals["gpus"][0]["energy_source"] == "measured:nvml-counter"
    assert ledger.totals["energy_j"] == pytest.approx(250.0)
    expected = "failed (disagrees); one of the two is off: energy still comes from the counter"
    assert any(expected in w for w in ledger.checks["warnings"])


def test_a_healthy_verdict_adds_no_warning() -> None:
    ledger = profiler.attribute(_run("ok"))
    assert ledger.checks["counter_probe"]["GPU-x"]["verdict"] == "ok"
    assert not ledger.checks["warnings"]


@pytest.mark.parametrize(("source", "arch", "name", "reading"), [
    ("field_instant_gpu", "hopper", "H100", "instant"),
    ("field_instant_module", "hopper", "GH200", "instant"),
    ("power_usage", "ampere", "NVIDIA A10", "average"),
    ("power_usage", "ada", "NVIDIA L4", "average"),
    ("power_usage", "unknown(14)", "NVIDIA next", "average"),
    ("power_usage", "ampere", "NVIDIA A100-SXM4-80GB", "read-time"),  # GA100: instant, as NVML says
    ("power_usage", "turing", "Tesla T4", "read-time"),
    ("power_usage", None, "old", "read-time"),
    (None, None, "replay of GPU-x", "read-time"),
])
def test_what_each_gpus_power_reading_is(source: str | None, arch: str | None, name: str,
                                         reading: str) -> None:
    details = {"power_source": source, "architecture": arch}
    meta = {"gpus": [{"uuid": "GPU-x", "name": name, "details": details}]}
    assert gpu_sensors(meta) == {"GPU-x": GpuSensor(reading)}
    assert gpu_sensors({}) == {} and GpuSensor().counter_usable
