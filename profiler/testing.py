"""Test doubles shipped for users and for our tests: a scripted GPU.

    from profiler.testing import FakeGpuBackend
    with profiler.session(gpu=FakeGpuBackend(power_w=lambda t: 300 if t % 2 < 1 else 80)):
        ...
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping

from profiler.errors import GpuReadError, GpuUnavailableError
from profiler.gpu.backend import CAPABILITIES, GpuInfo, GpuReading

Signal = float | Callable[[float], float]
"""A constant, or a function of seconds since the backend opened."""


def _value(signal: Signal, t_s: float) -> float:
    return float(signal(t_s)) if callable(signal) else float(signal)


class FakeGpuBackend:
    """Scripted GPUs: power, memory, utilization, clocks and temperature, constants or functions of time.

    The energy counter integrates the power signal, so totals are known exactly in tests.
    """

    name = "fake"

    def __init__(
        self,
        *,
        devices: int = 1,
        power_w: Signal = 100.0,
        mem_used_bytes: Signal = 4 * 1024**3,
        util_pct: Signal = 50.0,
        proc_mem_bytes_by_pid: Mapping[int, Signal] | None = None,
        sm_clock_mhz: Signal | None = 1980.0,
        mem_clock_mhz: Signal | None = 2619.0,
        temp_c: Signal | None = 45.0,
        energy_counter: bool = True,
        gpu_name: str = "Fake GPU",
        fail_reads: set[int] | None = None,
        lose_after_reads: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Describe the devices; nothing happens until `open()`.

        Args:
            devices: how many identical devices.
            power_w: watts, a constant or a function of seconds since `open()`.
            mem_used_bytes: device memory used.
            util_pct: utilization percent.
            proc_mem_bytes_by_pid: memory each process holds on every device, by pid; a slow read
                reports those of the sampler's pids that hold some (None: the process list is
                unknown, as where NVML cannot match pids).
            sm_clock_mhz, mem_clock_mhz, temp_c: clocks and temperature read on slow reads; None
                makes the device not support them.
            energy_counter: whether the device has an energy counter.
            gpu_name: the product name reported.
            fail_reads: read numbers (1-based, over all devices) that raise `GpuReadError`.
            lose_after_reads: after this many reads, every read raises `GpuUnavailableError`.
            clock: seconds, monotonic; injectable for deterministic tests.
        """
        self.devices = devices
        self.power_w, self.mem_used_bytes, self.util_pct = power_w, mem_used_bytes, util_pct
        self.proc_mem_bytes_by_pid = None if proc_mem_bytes_by_pid is None else dict(proc_mem_bytes_by_pid)
        self.sm_clock_mhz, self.mem_clock_mhz, self.temp_c = sm_clock_mhz, mem_clock_mhz, temp_c
        self.energy_counter = energy_counter
        self.gpu_name = gpu_name
        self.fail_reads = fail_reads or set()
        self.lose_after_reads = lose_after_reads
        self.clock = clock
        self.reads = 0
        self.closed = False
        self._t0 = 0.0
        self._energy_j: dict[int, tuple[float, float, float]] = {}

    def open(self) -> list[GpuInfo]:
        """Return the scripted devices."""
        self._t0 = self.clock()
        supports = dict.fromkeys(CAPABILITIES, True)
        supports["energy_counter"] = self.energy_counter
        supports["clocks"] = self.sm_clock_mhz is not None or self.mem_clock_mhz is not None
        supports["temperature"] = self.temp_c is not None
        return [GpuInfo(index=i, uuid=f"GPU-fake-{i}", name=self.gpu_name, supports=supports)
                for i in range(self.devices)]

    def read(self, index: int, pids: frozenset[int] | None = None, slow: bool = False) -> GpuReading:
        """Return the scripted values at the current time."""
        self.reads += 1
        if self.lose_after_reads is not None and self.reads > self.lose_after_reads:
            raise GpuUnavailableError("fake GPU lost")
        if self.reads in self.fail_reads:
            raise GpuReadError(f"scripted failure on read {self.reads}")
        t_s = self.clock() - self._t0
        power = _value(self.power_w, t_s)
        # The counter accrues the power that held since the last read, as a real counter lags.
        last_t, last_power, energy = self._energy_j.get(index, (0.0, power, 0.0))
        energy += last_power * max(t_s - last_t, 0.0)
        self._energy_j[index] = (t_s, power, energy)
        by_pid = self._process_memory(pids, t_s) if slow else None
        return GpuReading(
            energy_j=energy if self.energy_counter else None,
            power_w=power,
            mem_used_bytes=int(_value(self.mem_used_bytes, t_s)),
            util_pct=_value(self.util_pct, t_s) if slow else None,
            proc_mem_bytes=sum(by_pid.values()) if by_pid is not None else None,
            proc_mem_bytes_by_pid=by_pid,
            sm_clock_mhz=_optional_value(self.sm_clock_mhz, t_s) if slow else None,
            mem_clock_mhz=_optional_value(self.mem_clock_mhz, t_s) if slow else None,
            temp_c=_optional_value(self.temp_c, t_s) if slow else None,
        )

    def _process_memory(self, pids: frozenset[int] | None, t_s: float) -> dict[int, int] | None:
        """The scripted memory of the asked-for pids that hold some, as NVML lists only those."""
        if pids is None or self.proc_mem_bytes_by_pid is None:
            return None
        held = {pid: int(_value(signal, t_s)) for pid, signal in self.proc_mem_bytes_by_pid.items()
                if pid in pids}
        return {pid: used for pid, used in held.items() if used > 0}

    def close(self) -> None:
        """Mark closed."""
        self.closed = True


def _optional_value(signal: Signal | None, t_s: float) -> float | None:
    return _value(signal, t_s) if signal is not None else None


def _optional(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
