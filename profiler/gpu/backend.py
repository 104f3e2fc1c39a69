"""The seam between the sampler and a GPU: the backend protocol, its records, and the null backend.

`NvmlBackend` (in `profiler.gpu.nvml`, the one module that imports `pynvml`) reads real devices;
`profiler.testing` has a scripted double and a replay of a recorded samples file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

#: The capabilities a startup probe reports for each device, in `GpuInfo.supports`.
CAPABILITIES = ("energy_counter", "power_instant", "power_average", "memory_v2", "processes", "utilization",
                "clocks", "temperature")


@dataclass(frozen=True, slots=True)
class GpuInfo:
    """What the startup probe learned about one device."""

    index: int
    """The device's NVML index (host numbering, not CUDA_VISIBLE_DEVICES numbering)."""
    uuid: str
    """The device UUID, e.g. `GPU-5f0c...`; the key every sample carries."""
    name: str
    """The product name, e.g. `NVIDIA H100 80GB HBM3`."""
    supports: dict[str, bool] = field(default_factory=dict)
    """For each name in `CAPABILITIES`, whether the device answers it."""
    details: dict[str, Any] = field(default_factory=dict)
    """Anything else worth recording in run.json (driver, architecture, power limit, MIG, call latencies)."""

    def to_json(self) -> dict[str, Any]:
        """Return the record as written to run.json."""
        return {"index": self.index, "uuid": self.uuid, "name": self.name, "supports": dict(self.supports),
                "details": dict(self.details)}


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One reading of one device. None means the field was not read or is not supported."""

    energy_j: float | None = None
    """Cumulative energy counter in joules since the driver loaded."""
    power_w: float | None = None
    """Instantaneous power in watts (the 1 s average only where no instant reading exists)."""
    mem_used_bytes: int | None = None
    """Device memory used, NVML v2 semantics where available."""
    proc_mem_bytes: int | None = None
    """Memory used by the given processes on this device; None when the process list is not read."""
    util_pct: float | None = None
    """Percent of the last sample window in which a kernel ran."""
    proc_mem_bytes_by_pid: dict[int, int] | None = None
    """The given processes' memory on this device, by pid (those holding none are left out); None
    when the process list is not read or a process's usage is not available."""
    sm_clock_mhz: float | None = None
    """Current SM clock in MHz (a slow field)."""
    mem_clock_mhz: float | None = None
    """Current memory clock in MHz (a slow field)."""
    temp_c: float | None = None
    """GPU core temperature in degrees Celsius (a slow field)."""


@runtime_checkable
class GpuBackend(Protocol):
    """A source of GPU readings. Implementations must be safe to call from one background thread."""

    name: str
    """Short label recorded in run.json, e.g. `nvml`, `replay`, `fake`, `none`."""

    def open(self) -> list[GpuInfo]:
        """Initialise and probe every visible device. Raises `GpuUnavailableError` when there is none."""
        ...

    def read(self, index: int, pids: frozenset[int] | None = None, slow: bool = False) -> GpuReading:
        """Read one device (by `GpuInfo.index`).

        Args:
            index: the device, as given in `GpuInfo.index`.
            pids: this run's process ids; when given and `slow` is true, `proc_mem_bytes` is their sum
                and `proc_mem_bytes_by_pid` each one's part.
            slow: also read the slow fields (utilization, process list, clocks, temperature), which the
                sampler asks for at a lower rate.

        Raises:
            GpuReadError: a transient failure; the sampler counts it and carries on.
            GpuUnavailableError: the device is gone; the sampler stops reading it.
        """
        ...

    def close(self) -> None:
        """Release the library. Idempotent."""
        ...


class NullBackend:
    """No GPU: opens to an empty device list, so a run is CPU-only."""

    name = "none"

    def open(self) -> list[GpuInfo]:
        """Return no devices."""
        return []

    def read(self, index: int, pids: frozenset[int] | None = None, slow: bool = False) -> GpuReading:
        """Never called: there are no devices."""
        raise IndexError(index)

    def close(self) -> None:
        """Nothing to release."""
