"""NvmlBackend through the real pynvml bindings, against the simulated NVML library in tests/nvml_sim."""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

import profiler
from profiler.errors import GpuReadError, GpuUnavailableError
from profiler.gpu.backend import CAPABILITIES, GpuBackend, GpuInfo
from profiler.gpu.nvml import NvmlBackend, probe_gpus
from profiler.gpu.sampler import GpuSampler
from profiler.gpu.samples_file import read_samples
from tests.nvml_sim import build  # noqa: E402 - one compiled library per test session
from tests.paths import REPO

H100 = ('device uuid=GPU-22222222-bbbb-4000-8000-000000000002 name="NVIDIA H100 80GB HBM3" arch=hopper '
        'power_limit_w=700')
Sim = Callable[..., ModuleType]


@pytest.fixture(scope="session")
def sim_lib() -> Path:
    """The compiled simulation; skips the test when there is no C compiler."""
    try:
        return build.build_nvml_sim()
    except build.CompilerNotFoundError as err:
        pytest.skip(f"simulated NVML needs a C compiler: {err}")


@pytest.fixture
def sim(sim_lib: Path, tmp_path: Path) -> Iterator[Sim]:
    """Return a function: scenario text -> the real pynvml module, attached to the simulation."""
    with contextlib.ExitStack() as stack:
        def attach(scenario: str) -> ModuleType:
            path = tmp_path / f"scenario{len(list(tmp_path.iterdir()))}.txt"
            path.write_text(textwrap.dedent(scenario))
            return stack.enter_context(build.attach(sim_lib, path))
        yield attach


def _open(nvml: ModuleType, visible_devices: str | None = None) -> tuple[NvmlBackend, list[GpuInfo]]:
    """Open a backend on `nvml`, ignoring this process's CUDA_VISIBLE_DEVICES unless given."""
    backend = NvmlBackend(nvml, visible_devices=visible_devices)
    return backend, backend.open()


# ---- the simulation itself -------------------------------------------------------------------------


def test_struct_layouts_match_pynvml(sim_lib: Path) -> None:
    import pynvml

    lib = ctypes.CDLL(str(sim_lib))
    assert lib.nvmlSimStructSize(b"memory_v2") == ctypes.sizeof(pynvml.c_nvmlMemory_v2_t)
    assert lib.nvmlSimStructSize(b"memory_v2") == pynvml.nvmlMemory_v2 & 0xFFFFFF  # pynvml's version word
    assert lib.nvmlSimStructSize(b"memory") == ctypes.sizeof(pynvml.c_nvmlMemory_t)
    assert lib.nvmlSimStructSize(b"field_value") == ctypes.sizeof(pynvml.c_nvmlFieldValue_t)
    assert lib.nvmlSimStructSize(b"process_info") == ctypes.sizeof(pynvml.c_nvmlProcessInfo_v3_t)
    assert lib.nvmlSimStructSize(b"utilization") == ctypes.sizeof(pynvml.c_nvmlUtilization_t)


# ---- probe -----------------------------------------------------------------------------------------


def test_probe_reports_every_capability_and_the_details(sim: Sim) -> None:
    nvml = sim(f"""
        driver_version 555.42.06
        nvml_version 12.555.42.06
        {H100}
        memory total=80GiB used=2GiB reserved=512MiB
        util gpu=87 memory=40
    """)
    backend, infos = _open(nvml)
    assert isinstance(backend, GpuBackend) and backend.name == "nvml"
    (info,) = infos
    assert info.index == 0
    assert (info.uuid, info.name) == ("GPU-22222222-bbbb-4000-8000-000000000002", "NVIDIA H100 80GB HBM3")
    assert info.supports == dict.fromkeys(CAPABILITIES, True)
    details = info.details
    assert details["driver_version"] == "555.42.06" and details["nvml_version"] == "12.555.42.06"
    assert details["architecture"] == "hopper"
    assert details["power_limit_w"] == 700.0
    assert details["mig_mode"] is False
    assert details["memory_total_bytes"] == 80 * 2**30
    assert details["memory_reserved_bytes"] == 512 * 2**20
    assert details["memory_used_includes_reserved"] is False
    assert details["power_source"] == "field_instant_gpu"
    for call in ("energy_counter", "power_instant_gpu", "power_average_gpu", "memory_v2", "processes",
                 "utilization"):
        assert details["call_us"][call] >= 0.0
    json.dumps(info.to_json())  # run.json must be able to hold it
    backend.close()


def test_probe_times_each_call(sim: Sim) -> None:
    nvml = sim(f"slow_call_ms 3\n{H100}\n")
    backend, (info,) = _open(nvml)
    assert info.details["call_us"]["memory_v2"] >= 3000.0
    assert info.details["call_us"]["energy_counter"] >= 3000.0
    backend.close()


def test_one_unsupported_field_marks_only_that_field(sim: Sim) -> None:
    nvml = sim(f"""
        {H100}
        power watts=300
        memory total=80GiB used=2GiB reserved=512MiB
        unsupported power_instant power_average utilization memory_v2
        error processes=NO_PERMISSION
    """)
    backend, (info,) = _open(nvml)
    assert info.supports == {"energy_counter": True, "power_instant": False, "power_average": False,
                             "memory_v2": False, "processes": False, "utilization": False,
                             "clocks": True, "temperature": True}
    assert info.details["power_source"] == "power_usage"
    assert info.details["memory_used_includes_reserved"] is True
    assert "Insufficient Permissions" in info.details["unsupported_reason"]["processes"]
    reading = backend.read(0, pids=frozenset({1}), slow=True)
    assert reading.power_w == 300.0  # from nvmlDeviceGetPowerUsage
    assert reading.mem_used_bytes == 2 * 2**30 + 512 * 2**20  # v1: used includes reserved
    assert reading.energy_j is not None
    assert reading.util_pct is None and reading.proc_mem_bytes is None
    backend.close()


def test_power_on_module_scope_only(sim: Sim) -> None:
    nvml = sim(f"{H100} power_scope=module\npower watts=420\n")
    backend, (info,) = _open(nvml)
    assert info.supports["power_instant"] and info.supports["power_average"]
    assert info.details["power_scope"] == "module" and info.details["power_source"] == "field_instant_module"
    assert backend.read(0).power_w == 420.0
    backend.close()


# ---- read ------------------------------------------------------------------------------------------


def test_read_converts_units(sim: Sim) -> None:
    nvml = sim(f"""
        update_period_ms 10000
        {H100} energy_start_mj=5000000
        power watts=250
        memory total=80GiB used=2GiB reserved=512MiB
        util gpu=87
    """)
    backend, _ = _open(nvml)
    fast = backend.read(0)
    assert fast.energy_j == 5000.0  # 5,000,000 mJ; the counter has not updated yet
    assert fast.power_w == 250.0
    assert fast.mem_used_bytes == 2 * 2**30  # v2: without the reserved memory
    assert fast.util_pct is None and fast.proc_mem_bytes is None
    assert backend.read(0, slow=True).util_pct == 87.0
    backend.close()


def test_energy_and_power_are_read_in_one_field_call(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = sim(f"{H100}\npower watts=250\n")
    backend, (info,) = _open(nvml)
    assert info.details["batched_fields"] is True
    calls: list[list[tuple[int, int]]] = []
    real = nvml.nvmlDeviceGetFieldValues
    monkeypatch.setattr(nvml, "nvmlDeviceGetFieldValues",
                        lambda h, fields: calls.append(fields) or real(h, fields))
    monkeypatch.setattr(nvml, "nvmlDeviceGetTotalEnergyConsumption", None)  # not called at all
    reading = backend.read(0)
    assert calls == [[(nvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, 0), (nvml.NVML_FI_DEV_POWER_INSTANT, 0)]]
    assert reading.power_w == 250.0 and reading.energy_j is not None
    backend.close()
    monkeypatch.undo()
    # Without the counter there is nothing to batch: power alone, as before.
    backend, (info,) = _open(sim(f"{H100}\npower watts=90\nunsupported energy_counter\n"))
    assert info.details["batched_fields"] is False
    assert backend.read(0).power_w == 90.0
    backend.close()


def test_energy_counter_updates_once_per_period(sim: Sim) -> None:
    nvml = sim(f"update_period_ms 10000\n{H100}\npower watts=500\n")
    backend, _ = _open(nvml)
    first = backend.read(0).energy_j
    time.sleep(0.05)
    assert backend.read(0).energy_j == first  # within one update period the counter holds still
    backend.close()


@pytest.mark.parametrize(("power", "mean_w", "wobble_j"), [
    ("watts=250", 250.0, 0.0),
    # square wave: busy 400 W for 25 ms, idle 100 W for 25 ms; the running integral strays from
    # mean*t by at most (busy - mean) * busy time = 150 W * 25 ms.
    ("idle_w=100 busy_w=400 period_ms=50 duty=0.5", 250.0, 150 * 0.025),
])
def test_energy_is_monotonic_and_integrates_the_power(sim: Sim, power: str, mean_w: float,
                                                       wobble_j: float) -> None:
    period_s = 0.02
    nvml = sim(f"update_period_ms {period_s * 1e3:g}\n{H100}\npower {power}\n")
    backend, _ = _open(nvml)
    before = time.monotonic()
    first = backend.read(0).energy_j
    after_first = time.monotonic()
    energies = [first]
    for _ in range(8):
        time.sleep(0.04)
        energies.append(backend.read(0).energy_j)
    before_last = time.monotonic()
    last = backend.read(0).energy_j
    after = time.monotonic()
    energies.append(last)
    assert all(b >= a for a, b in zip(energies, energies[1:], strict=False))
    assert first is not None and last is not None
    # Each read returns the counter as of its last update, at most one period stale, so the
    # difference covers between (before_last - after_first - period) and (after - before + period).
    low = mean_w * (before_last - after_first - period_s) - wobble_j - 0.002
    high = mean_w * (after - before + period_s) + wobble_j + 0.002
    assert low <= last - first <= high
    backend.close()


def test_unsupported_energy_counter_gives_none_but_power_still_works(sim: Sim) -> None:
    nvml = sim(f"{H100}\npower watts=321\nunsupported energy_counter\n")
    backend, (info,) = _open(nvml)
    assert info.supports["energy_counter"] is False
    assert info.supports["power_instant"] is True
    reading = backend.read(0)
    assert reading.energy_j is None
    assert reading.power_w == 321.0
    backend.close()


def test_process_memory_sums_only_the_given_pids(sim: Sim) -> None:
    nvml = sim(f"""
        {H100}
        process pid=100 mem=1MiB
        process pid=200 mem=2MiB
        process pid=300 mem=4MiB
        process pid=400 mem=na
    """)
    backend, _ = _open(nvml)
    assert backend.read(0, pids=frozenset({100, 300, 999}), slow=True).proc_mem_bytes == 5 * 2**20
    assert backend.read(0, pids=frozenset({999}), slow=True).proc_mem_bytes == 0
    # pid 400's usage is NVML's "not available", so the sum is unknown rather than too small
    assert backend.read(0, pids=frozenset({100, 400}), slow=True).proc_mem_bytes is None
    assert backend.read(0, pids=frozenset({100}), slow=False).proc_mem_bytes is None  # slow fields not read
    assert backend.read(0, pids=None, slow=True).proc_mem_bytes is None
    backend.close()


def test_process_memory_is_read_per_pid(sim: Sim) -> None:
    nvml = sim(f"""
        {H100}
        process pid=100 mem=1MiB
        process pid=200 mem=2MiB
        process pid=300 mem=4MiB
        process pid=300 mem=8MiB
        process pid=400 mem=na
    """)
    backend, _ = _open(nvml)
    reading = backend.read(0, pids=frozenset({100, 300, 999}), slow=True)
    # pid 300 is listed twice (as NVML lists a process once per MIG instance): its parts add up.
    assert reading.proc_mem_bytes_by_pid == {100: 2**20, 300: 12 * 2**20}
    assert reading.proc_mem_bytes == 13 * 2**20
    assert backend.read(0, pids=frozenset({999}), slow=True).proc_mem_bytes_by_pid == {}
    assert backend.read(0, pids=frozenset({100, 400}), slow=True).proc_mem_bytes_by_pid is None
    assert backend.read(0, pids=frozenset({100}), slow=False).proc_mem_bytes_by_pid is None
    backend.close()


def test_clocks_and_temperature_are_slow_fields(sim: Sim) -> None:
    nvml = sim(f"{H100} temp_c=67 sm_clock_mhz=1755 mem_clock_mhz=2619\n")
    backend, (info,) = _open(nvml)
    assert info.supports["clocks"] and info.supports["temperature"]
    slow = backend.read(0, slow=True)
    assert (slow.sm_clock_mhz, slow.mem_clock_mhz, slow.temp_c) == (1755.0, 2619.0, 67.0)
    fast = backend.read(0)
    assert (fast.sm_clock_mhz, fast.mem_clock_mhz, fast.temp_c) == (None, None, None)
    backend.close()


@pytest.mark.parametrize("missing", ["temperature", "clocks"])
def test_an_unsupported_clock_or_temperature_is_missing_on_its_own(sim: Sim, missing: str) -> None:
    backend, (info,) = _open(sim(f"{H100}\nunsupported {missing}\n"))
    assert info.supports["temperature"] is (missing != "temperature")
    assert info.supports["clocks"] is (missing != "clocks")
    probe_key = "temperature" if missing == "temperature" else "clock_sm"
    assert "Not Supported" in info.details["unsupported_reason"][probe_key]
    reading = backend.read(0, slow=True)
    if missing == "temperature":
        assert reading.temp_c is None and reading.sm_clock_mhz == 1980.0 and reading.mem_clock_mhz == 2619.0
    else:
        assert reading.temp_c == 40.0 and reading.sm_clock_mhz is None and reading.mem_clock_mhz is None
    assert reading.power_w is not None
    backend.close()


def test_a_clock_that_stops_answering_is_missing(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = sim(f"{H100}\n")
    backend, _ = _open(nvml)
    real = nvml.nvmlDeviceGetClockInfo

    def memory_clock_unsupported(handle: object, clock: int) -> int:
        if clock == nvml.NVML_CLOCK_MEM:
            raise nvml.NVMLError(nvml.NVML_ERROR_NOT_SUPPORTED)
        return real(handle, clock)

    monkeypatch.setattr(nvml, "nvmlDeviceGetClockInfo", memory_clock_unsupported)
    reading = backend.read(0, slow=True)
    assert reading.mem_clock_mhz is None and reading.sm_clock_mhz == 1980.0 and reading.temp_c == 40.0
    backend.close()


def test_the_sampler_writes_per_process_memory_clocks_and_temperature(sim: Sim, tmp_path: Path) -> None:
    nvml = sim(f"""
        {H100} temp_c=55
        process pid=4242 mem=18GiB
        process pid=77 mem=2GiB
        process pid=1 mem=5GiB
        unsupported clocks
    """)
    sampler = GpuSampler(NvmlBackend(nvml, visible_devices=None), tmp_path / "samples.csv",
                         interval_s=600.0, pids=lambda: frozenset({4242, 77}))
    sampler.start()
    sampler.tick(slow=False)
    sampler.stop()
    frame = read_samples(tmp_path / "samples.csv", [])
    assert frame["proc_mem_bytes_by_pid"].tolist() == [f"77:{2 * 2**30};4242:{18 * 2**30}", None,
                                                       f"77:{2 * 2**30};4242:{18 * 2**30}"]
    assert frame["proc_mem_bytes"].tolist()[::2] == [20 * 2**30] * 2
    assert frame["temp_c"].tolist()[::2] == [55.0, 55.0] and math.isnan(frame["temp_c"].iat[1])
    assert frame[["sm_clock_mhz", "mem_clock_mhz"]].isna().all(axis=None)


# Above the kernel's PID_MAX_LIMIT (2**22): no PID namespace can have it, as a host PID seen from a container.
FOREIGN_PID = 2**22 + 7


def test_the_sampler_records_processes_of_other_pid_namespaces(sim: Sim, tmp_path: Path) -> None:
    nvml = sim(f"""
        {H100}
        process pid=4242 mem=18GiB
        process pid={FOREIGN_PID} mem=2GiB
        process pid={os.getpid()} mem=1GiB
    """)
    sampler = GpuSampler(NvmlBackend(nvml, visible_devices=None), tmp_path / "samples.csv",
                         interval_s=600.0, pids=lambda: frozenset({4242}))
    (info,) = sampler.start()
    assert info.details["pid_namespace"] in ("host", "own")
    sampler.tick(slow=True)
    sampler.stop()
    (gpu,) = sampler.describe()["gpus"]
    # Two processes are not the run's; one of them does not exist in this PID namespace.
    assert gpu["processes_seen"] == {"other_processes": 2, "not_in_this_pid_namespace": 1}


def test_a_run_whose_pids_nvml_does_not_list_is_warned_about(sim: Sim, tmp_path: Path) -> None:
    # As inside a container: NVML lists the run's own process under its host PID.
    nvml = sim(f"""
        {H100}
        memory total=80GiB used=20GiB
        process pid={FOREIGN_PID} mem=18GiB
    """)
    run_dir = tmp_path / "run"
    backend = NvmlBackend(nvml, visible_devices=None)
    with profiler.session("in-a-container", run_dir=run_dir, gpu=backend, sample_interval_s=0.05), \
            profiler.step("work"):
        time.sleep(0.3)
    ledger = profiler.attribute(profiler.load(run_dir))
    (gpu,) = ledger.totals["gpus"]
    assert gpu["memory_source"] == "measured:device-memory-above-baseline"
    (warning,) = [w for w in ledger.checks["warnings"] if "PID namespace" in w]
    assert "1 process(es)" in warning and "host PIDs" in warning and "\n" not in warning


def test_gpu_lost_mid_run_raises_unavailable(sim: Sim) -> None:
    nvml = sim(f"{H100} lose_after_ms=400\n")
    backend, _ = _open(nvml)
    opened = time.monotonic()
    assert backend.read(0).power_w is not None
    time.sleep(max(0.0, opened + 0.42 - time.monotonic()))
    with pytest.raises(GpuUnavailableError, match="GPU is lost") as caught:
        backend.read(0)
    assert "\n" not in str(caught.value)
    assert isinstance(caught.value.__cause__, nvml.NVMLError_GpuIsLost)
    backend.close()


def test_other_nvml_errors_in_read_are_transient(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = sim(f"{H100}\n")
    backend, _ = _open(nvml)

    real = nvml.nvmlDeviceGetFieldValues

    def broken(handle: object, fields: list[tuple[int, int]]) -> list[object]:
        # Energy and power come in one batched field read; the energy field fails on its own.
        values = real(handle, fields)
        for value in values:
            if value.fieldId == nvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION:
                value.nvmlReturn = nvml.NVML_ERROR_UNKNOWN
        return values

    monkeypatch.setattr(nvml, "nvmlDeviceGetFieldValues", broken)
    with pytest.raises(GpuReadError, match="energy counter on GPU 0") as caught:
        backend.read(0)
    assert isinstance(caught.value.__cause__, nvml.NVMLError_Unknown)
    backend.close()


def test_read_of_an_unknown_index(sim: Sim) -> None:
    backend, _ = _open(sim(f"{H100}\n"))
    with pytest.raises(IndexError):
        backend.read(7)
    backend.close()


# ---- open failures ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("error", "expected"), [
    ("DRIVER_NOT_LOADED", "driver not loaded"),
    ("NO_PERMISSION", "no permission"),
    ("LIB_RM_VERSION_MISMATCH", "versions differ"),
    ("UNKNOWN", "NVML failed while initialising"),
])
def test_init_failure_is_one_actionable_line(sim: Sim, error: str, expected: str) -> None:
    nvml = sim(f"init_error {error}\n{H100}\n")
    with pytest.raises(GpuUnavailableError, match=expected) as caught:
        NvmlBackend(nvml, visible_devices=None).open()
    assert "\n" not in str(caught.value)


def test_no_devices(sim: Sim) -> None:
    with pytest.raises(GpuUnavailableError, match="no NVIDIA GPU"):
        NvmlBackend(sim("# no devices\n"), visible_devices=None).open()


def test_failed_open_shuts_nvml_down(sim: Sim) -> None:
    nvml = sim(f"{H100}\n")
    with pytest.raises(GpuUnavailableError):
        NvmlBackend(nvml, visible_devices="7").open()
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()


def test_unofficial_bindings_are_refused() -> None:
    impostor = ModuleType("pynvml")  # the deprecated PyPI `pynvml` lacks nvidia-ml-py's private helpers
    with pytest.raises(GpuUnavailableError, match="pip install nvidia-ml-py"):
        NvmlBackend(impostor, visible_devices=None).open()


# ---- CUDA_VISIBLE_DEVICES --------------------------------------------------------------------------

THREE_GPUS = f"""
    device uuid=GPU-11111111-aaaa-4000-8000-000000000001 name="NVIDIA A100-SXM4-80GB" arch=ampere
    {H100}
    mig uuid=MIG-33333333-cccc-4000-8000-000000000003 gi=1 ci=0
    device uuid=GPU-44444444-dddd-4000-8000-000000000004 name="NVIDIA L4" arch=ada
"""


@pytest.mark.parametrize(("visible", "indices"), [
    (None, [0, 1, 2]),
    ("GPU-22222222-bbbb-4000-8000-000000000002", [1]),
    ("GPU-4444", [2]),  # a unique prefix, as CUDA accepts
    ("2,0", [2, 0]),
    ("1,bogus,0", [1]),  # CUDA stops at the first entry that names no device
    ("MIG-33333333-cccc-4000-8000-000000000003", [1]),
    ("MIG-GPU-22222222-bbbb-4000-8000-000000000002/1/0", [1]),
])
def test_visible_devices_select_by_uuid(sim: Sim, visible: str | None, indices: list[int]) -> None:
    backend, infos = _open(sim(THREE_GPUS), visible_devices=visible)
    assert [info.index for info in infos] == indices
    assert [info.details["cuda_ordinal"] for info in infos] == list(range(len(indices)))
    backend.close()


def test_visible_devices_from_the_environment(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = sim(THREE_GPUS)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-22222222-bbbb-4000-8000-000000000002")
    backend = NvmlBackend(nvml)
    (info,) = backend.open()
    assert (info.index, info.name) == (1, "NVIDIA H100 80GB HBM3")
    backend.read(1)
    with pytest.raises(IndexError):
        backend.read(0)  # not visible, so not opened
    backend.close()


def test_mig_instance_maps_to_its_parent(sim: Sim) -> None:
    backend, (info,) = _open(sim(THREE_GPUS), visible_devices="MIG-33333333-cccc-4000-8000-000000000003")
    assert info.uuid == "GPU-22222222-bbbb-4000-8000-000000000002"
    assert info.details["mig_mode"] is True
    assert info.details["mig_instances"] == [
        {"uuid": "MIG-33333333-cccc-4000-8000-000000000003", "gpu_instance_id": 1, "compute_instance_id": 0}]
    assert info.supports["utilization"] is False  # MIG disables device utilisation
    backend.close()


@pytest.mark.parametrize("visible",
                         ["", "-1", "GPU-", "GPU-99999999", "MIG-00000000-0000-0000-0000-000000000000"])
def test_visible_devices_selecting_nothing(sim: Sim, visible: str) -> None:
    with pytest.raises(GpuUnavailableError, match="CUDA_VISIBLE_DEVICES") as caught:
        _open(sim(THREE_GPUS), visible_devices=visible)
    assert "\n" not in str(caught.value)


# ---- close -----------------------------------------------------------------------------------------


def test_close_is_idempotent(sim: Sim) -> None:
    nvml = sim(f"{H100}\n")
    NvmlBackend(nvml).close()  # never opened: nothing to do
    backend, _ = _open(nvml)
    backend.close()
    backend.close()
    with pytest.raises(GpuUnavailableError, match="closed"):
        backend.read(0)
    with pytest.raises(nvml.NVMLError_Uninitialized):
        nvml.nvmlDeviceGetCount()  # the one open was matched by one shutdown


def test_close_never_raises(sim: Sim, monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = sim(f"{H100}\n")
    backend, _ = _open(nvml)

    def failing() -> None:
        raise nvml.NVMLError(nvml.NVML_ERROR_UNKNOWN)

    monkeypatch.setattr(nvml, "nvmlShutdown", failing)
    backend.close()


# ---- this machine, and the production loader ------------------------------------------------------


def test_no_driver_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import pynvml

    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        pass
    else:
        pytest.skip("a real NVML library is installed here")
    monkeypatch.setattr(pynvml, "nvmlLib", None)
    monkeypatch.setattr(pynvml, "_nvmlGetFunctionPointer_cache", {})
    with pytest.raises(GpuUnavailableError, match="libnvidia-ml.so.1 not found") as caught:
        NvmlBackend().open()
    assert "\n" not in str(caught.value)
    devices, reason = probe_gpus()
    assert devices == [] and reason is not None and "\n" not in reason


def test_probe_gpus_through_ld_library_path(sim_lib: Path, tmp_path: Path) -> None:
    """The production path: pynvml's own CDLL('libnvidia-ml.so.1') finds the simulation."""
    scenario = tmp_path / "scenario.txt"
    scenario.write_text(f"{H100}\n")
    env = {**os.environ, "LD_LIBRARY_PATH": str(sim_lib.parent), "NVML_SIM_SCENARIO": str(scenario),
           "PYTHONPATH": str(REPO)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    code = ("import json, sys; from profiler.gpu.nvml import probe_gpus; d, r = probe_gpus(); "
            "print(json.dumps([[i.to_json() for i in d], r]))")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True,
                         timeout=60)
    devices, reason = json.loads(out.stdout)
    assert reason is None
    assert [d["uuid"] for d in devices] == ["GPU-22222222-bbbb-4000-8000-000000000002"]


def test_importing_the_package_does_not_import_pynvml() -> None:
    code = "import sys, profiler.gpu.backend, profiler.gpu.nvml; assert 'pynvml' not in sys.modules, 'pynvml imported'"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                   check=True, timeout=60)
