"""`GpuSampler` with a scripted backend and a fake clock: ticks are called directly, the thread only
for start/stop; errors are counted, a lost GPU stops being read, no GPU means a CPU-only run."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from profiler.errors import GpuUnavailableError
from profiler.gpu import host
from profiler.gpu.backend import NullBackend
from profiler.gpu.replay import ReplayBackend
from profiler.gpu.sampler import THREAD_NAME, GpuSampler
from profiler.gpu.samples_file import read_samples
from profiler.model import parse_pid_memory
from profiler.testing import FakeGpuBackend
from tests.builders import BASE_NS

NEVER_S = 600.0  # an interval so long that the thread never ticks on its own during a test


class FakeClock:
    """Epoch nanoseconds that advance by `step_ns` on every call."""

    def __init__(self, start_ns: int = BASE_NS, step_ns: int = 100_000_000) -> None:
        self.now, self.step = start_ns, step_ns
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        value, self.now = self.now, self.now + self.step
        return value


class SecondsClock:
    """Monotonic seconds for the backend, moved by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def sampler_threads() -> list[threading.Thread]:
    # The sampler's own thread only: exporter workers live for the process by design.
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    yield
    assert sampler_threads() == []


def make(tmp_path: Path | None = None, *, backend: FakeGpuBackend | None = None, **kwargs) -> GpuSampler:
    kwargs.setdefault("interval_s", NEVER_S)
    kwargs.setdefault("clock", FakeClock())
    return GpuSampler(
        backend or FakeGpuBackend(clock=SecondsClock()),
        tmp_path / "samples.csv" if tmp_path else None,
        **kwargs,
    )


def test_construction_touches_neither_thread_nor_hardware() -> None:
    backend = FakeGpuBackend(clock=SecondsClock())
    sampler = make(backend=backend)
    assert sampler_threads() == [] and backend.reads == 0 and sampler.gpus == []
    assert sampler.stop().ticks == 0  # stop before start: nothing to do, no error


def test_start_reads_once_starts_one_named_thread_and_stop_brackets_and_joins(tmp_path: Path) -> None:
    backend = FakeGpuBackend(clock=SecondsClock())
    sampler = make(tmp_path, backend=backend)
    gpus = sampler.start()
    try:
        assert [g.uuid for g in gpus] == ["GPU-fake-0"]
        assert [t.name for t in sampler_threads()] == [THREAD_NAME]
        assert sampler_threads()[0].daemon
        assert backend.reads == 1  # the first reading, before the agent's work
        sampler.tick()
        sampler.tick()
    finally:
        stats = sampler.stop()
    assert sampler_threads() == []
    assert stats.ticks == 4 and stats.samples == 4  # start + 2 + the closing bracket
    assert backend.closed
    again = sampler.stop()
    assert again.ticks == 4 and backend.reads == 4  # idempotent: no second bracket
    frame = read_samples(tmp_path / "samples.csv", [])
    assert frame["t_ns"].tolist() == [BASE_NS + k * 100_000_000 for k in range(4)]


def test_readings_follow_the_scripted_backend_and_the_injected_clock(tmp_path: Path) -> None:
    seconds = SecondsClock()
    backend = FakeGpuBackend(
        devices=2, power_w=lambda t: 100.0 + 10.0 * t, mem_used_bytes=3 * 2**30, util_pct=40.0, clock=seconds
    )
    sampler = make(tmp_path, backend=backend, slow_every=3)
    sampler.start()
    try:
        for _ in range(4):
            seconds.now += 1.0
            sampler.tick()
    finally:
        seconds.now += 1.0
        sampler.stop()
    frame = read_samples(tmp_path / "samples.csv", [])
    assert sorted(set(frame["gpu"])) == ["GPU-fake-0", "GPU-fake-1"]
    gpu0 = frame[frame["gpu"] == "GPU-fake-0"]
    assert gpu0["power_w"].tolist() == [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]
    # The counter accrues the power read at the previous reading over each second.
    assert gpu0["energy_j"].tolist() == [0.0, 100.0, 210.0, 330.0, 460.0, 600.0]
    assert (gpu0["mem_used_bytes"] == 3 * 2**30).all()
    # Utilization is a slow field: on the first tick, every third tick, and the closing bracket.
    assert [not math.isnan(u) for u in gpu0["util_pct"]] == [True, False, True, False, False, True]
    assert frame["t_ns"].is_monotonic_increasing
    assert set(sampler.first_rows) == {"GPU-fake-0", "GPU-fake-1"}
    assert sampler.first_rows["GPU-fake-0"][3] == 100.0


def test_per_process_memory_clocks_and_temperature_are_slow_fields(tmp_path: Path) -> None:
    seconds = SecondsClock()
    backend = FakeGpuBackend(
        proc_mem_bytes_by_pid={10: lambda t: 2**30 * (1 + t), 20: 2**20, 30: 0.0, 99: 5 * 2**30},
        sm_clock_mhz=lambda t: 1400.0 + t, mem_clock_mhz=None, temp_c=60.0, clock=seconds,
    )
    sampler = make(tmp_path, backend=backend, slow_every=2, pids=lambda: frozenset({10, 20, 30}))
    (info,) = sampler.start()
    assert info.supports["clocks"] and info.supports["temperature"]
    try:
        for _ in range(2):
            seconds.now += 1.0
            sampler.tick()
    finally:
        seconds.now += 1.0
        sampler.stop()
    frame = read_samples(tmp_path / "samples.csv", [])
    slow = frame["temp_c"].notna().to_numpy()
    assert slow.tolist() == [True, True, False, True]  # start, every second tick, the closing bracket
    assert frame["sm_clock_mhz"][slow].tolist() == [1400.0, 1401.0, 1403.0]
    assert frame["mem_clock_mhz"].isna().all()  # not supported: only that field is missing
    # Only the run's pids, and only those holding memory (as NVML lists them); pid 99 is not the run's.
    cells = frame["proc_mem_bytes_by_pid"].tolist()
    assert cells[0] == f"10:{2**30};20:{2**20}" and cells[2] is None
    assert parse_pid_memory(cells[1]) == {10: 2 * 2**30, 20: 2**20}
    assert frame["proc_mem_bytes"][slow].tolist() == [2**30 + 2**20, 2 * 2**30 + 2**20, 4 * 2**30 + 2**20]


def test_a_replay_gives_back_the_recorded_clocks_and_temperature(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text("t_ns,gpu,energy_j,power_w,mem_used_bytes,proc_mem_bytes,util_pct,sm_clock_mhz,"
                    "mem_clock_mhz,temp_c,proc_mem_bytes_by_pid\n"
                    f"{BASE_NS},GPU-r,1.0,100.0,5,,50,1980,,61,\n"
                    f"{BASE_NS + 10**9},GPU-r,2.0,100.0,5,,,,,,\n")
    seconds = SecondsClock()
    backend = ReplayBackend(path, clock=seconds)
    (info,) = backend.open()
    assert info.supports["clocks"] and info.supports["temperature"]
    reading = backend.read(0, slow=True)
    assert (reading.sm_clock_mhz, reading.mem_clock_mhz, reading.temp_c) == (1980.0, None, 61.0)
    assert backend.read(0).temp_c is None  # a fast read
    seconds.now += 1.5
    assert backend.read(0, slow=True).temp_c is None  # not read at that tick of the recording


def test_without_a_samples_path_readings_stay_in_memory() -> None:
    sampler = make()
    sampler.start()
    sampler.tick()
    sampler.stop()
    assert len(sampler.memory) == 3
    assert all(row[1] == "GPU-fake-0" for row in sampler.memory)


def test_read_errors_are_counted_and_sampling_goes_on(tmp_path: Path) -> None:
    backend = FakeGpuBackend(fail_reads={2, 3}, clock=SecondsClock())
    sampler = make(tmp_path, backend=backend)
    sampler.start()
    for _ in range(4):
        sampler.tick()
    stats = sampler.stop()
    assert stats.read_errors == 2
    assert "scripted failure on read 3" in stats.last_error
    assert stats.samples == 4 and backend.reads == 6
    assert stats.to_json()["read_errors"] == 2


def test_a_lost_gpu_stops_being_read(tmp_path: Path) -> None:
    backend = FakeGpuBackend(lose_after_reads=2, clock=SecondsClock())
    sampler = make(tmp_path, backend=backend)
    sampler.start()
    for _ in range(5):
        sampler.tick()
    stats = sampler.stop()
    assert backend.reads == 3  # two good reads, the one that found it gone, then none
    assert stats.lost_gpus == ["GPU-fake-0"]
    assert stats.samples == 2 and stats.read_errors == 0
    assert len(read_samples(tmp_path / "samples.csv", [])) == 2


def test_a_failing_process_list_does_not_stop_the_tick() -> None:
    def broken() -> frozenset[int]:
        raise PermissionError("no /proc")

    sampler = make(pids=broken)
    sampler.start()
    sampler.tick(slow=True)
    stats = sampler.stop()
    assert stats.samples == 3 and stats.read_errors == 0


def test_no_gpu_means_a_cpu_only_run_with_a_reason(tmp_path: Path) -> None:
    sampler = make(tmp_path, backend=NullBackend())  # type: ignore[arg-type]
    assert sampler.start() == []
    assert sampler.unavailable_reason == "no GPU found"
    assert sampler_threads() == []
    sampler.tick()
    stats = sampler.stop()
    assert stats.samples == 0
    assert not (tmp_path / "samples.csv").exists()


class _Unavailable(NullBackend):
    def open(self):
        raise GpuUnavailableError("NVML Shared Library Not Found: install the NVIDIA driver")


class _Broken(NullBackend):
    def open(self):
        raise RuntimeError("driver exploded")


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (_Unavailable(), "NVML Shared Library Not Found: install the NVIDIA driver"),
        (_Broken(), "GPU probe failed: driver exploded"),
    ],
)
def test_a_backend_that_cannot_open_gives_the_reason_never_a_traceback(
    backend: NullBackend, reason: str
) -> None:
    sampler = make(backend=backend)  # type: ignore[arg-type]
    assert sampler.start() == []
    assert sampler.unavailable_reason == reason
    sampler.stop()


@pytest.mark.parametrize("interval_s", [0.0, -1.0, 0.001, math.nan, math.inf])
def test_interval_is_validated(interval_s: float) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        GpuSampler(NullBackend(), None, interval_s=interval_s)  # type: ignore[arg-type]


def test_slow_every_is_validated() -> None:
    with pytest.raises(ValueError, match="slow_every"):
        GpuSampler(NullBackend(), None, slow_every=0)  # type: ignore[arg-type]


def test_the_thread_ticks_on_its_own_and_stops_promptly() -> None:
    sampler = GpuSampler(FakeGpuBackend(), None, interval_s=0.02)
    sampler.start()
    deadline = time.monotonic() + 5.0
    while sampler.stats.ticks < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    began = time.monotonic()
    stats = sampler.stop(timeout_s=2.0)
    assert time.monotonic() - began < 1.0
    assert stats.ticks >= 4 and stats.wall_s > 0
    # Its CPU time was measured (run.json's cost to the host), and a sleeping thread uses less than its wall time.
    assert 0 < stats.thread_cpu_s < stats.wall_s
    assert 0 < stats.to_json()["cpu_share_of_one_core"] < 1


@pytest.mark.parametrize("link, expected", [("pid:[4026531836]", "host"), ("pid:[4026532512]", "own")])
def test_pid_namespace_tells_the_host_from_a_container(monkeypatch: pytest.MonkeyPatch, link: str,
                                                       expected: str) -> None:
    monkeypatch.setattr(host.os, "readlink", lambda path: link)
    assert host.pid_namespace() == expected


def test_pid_namespace_is_unknown_without_proc(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_proc(path: str) -> str:
        raise FileNotFoundError(path)

    monkeypatch.setattr(host.os, "readlink", no_proc)
    assert host.pid_namespace() is None
