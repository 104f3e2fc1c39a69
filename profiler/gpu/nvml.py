"""The real-GPU backend: NVIDIA's NVML through the official `nvidia-ml-py` bindings (`pynvml`).

This is the only module in the project that imports `pynvml`, and it does so inside
`NvmlBackend.open()`, so `import profiler` works on machines without the bindings or a driver.

Units follow NVML at the edge and the project inside: NVML reports millijoules, milliwatts and
bytes; `GpuReading` carries joules, watts and bytes. Every NVML error goes through
`_map_nvml_error`, which decides between "this one field is not supported" (the reading gets
None), "the GPU is gone" (`GpuUnavailableError`) and "this read failed" (`GpuReadError`).
"""

from __future__ import annotations

import enum
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Literal, TypeVar

from profiler.errors import GpuReadError, GpuUnavailableError, ProfilerError
from profiler.gpu.backend import CAPABILITIES, GpuInfo, GpuReading
from profiler.gpu.host import pid_exists, pid_namespace

__all__ = ["NvmlBackend", "probe_gpus"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# NVML field ids and scopes (nvml.h); spelled out so that the module needs no pynvml at import.
_FI_POWER_AVERAGE = 185
_FI_POWER_INSTANT = 186
_FI_TOTAL_ENERGY = 83  # NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION, mJ
_SCOPE_GPU = 0
_SCOPE_MODULE = 1
#: NVML's "not available" value for unsigned 64-bit fields such as `usedGpuMemory`.
_NOT_AVAILABLE_U64 = 2**64 - 1

# Errors that mean "this query has no answer on this device or driver", not "the read failed":
# NOT_SUPPORTED (the usual case), FUNCTION_NOT_FOUND (a driver older than the bindings lacks the
# symbol) and ARGUMENT_VERSION_MISMATCH (the driver does not know this struct version, e.g. v2).
_UNSUPPORTED = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND",
                "NVML_ERROR_ARGUMENT_VERSION_MISMATCH")

# One-line, actionable messages for the errors that leave no usable GPU, by NVML error name.
_UNAVAILABLE = {
    "NVML_ERROR_LIBRARY_NOT_FOUND": "NVML library libnvidia-ml.so.1 not found: install the NVIDIA driver, "
    "or run the container with GPU access (e.g. docker --gpus all)",
    "NVML_ERROR_DRIVER_NOT_LOADED": "NVIDIA driver not loaded: load the kernel module (check that "
    "`nvidia-smi` works) or install the driver",
    "NVML_ERROR_NO_PERMISSION": "no permission to open the NVIDIA devices: check the permissions of "
    "/dev/nvidia* or run the container with GPU access",
    "NVML_ERROR_LIB_RM_VERSION_MISMATCH": "NVML library and kernel driver versions differ (driver upgraded "
    "without reloading it): reboot, or reload the nvidia kernel modules",
    "NVML_ERROR_GPU_IS_LOST": "GPU is lost (fell off the bus or crashed): check `dmesg` for Xid errors; the "
    "device needs a reset",
    "NVML_ERROR_RESET_REQUIRED": "GPU requires a reset: run `nvidia-smi -r` or reboot",
    "NVML_ERROR_GPU_NOT_FOUND": "GPU not found: it was removed or hidden from this process",
    "NVML_ERROR_UNINITIALIZED": "NVML is not initialised (the backend was closed)",
}


#: Stands for an error constant that these bindings lack (older nvidia-ml-py), equal to no code.
_ABSENT = object()


class _Env(enum.Enum):
    """Marks the constructor default "read CUDA_VISIBLE_DEVICES"."""

    FROM_ENV = enum.auto()


class _NotSupported(ProfilerError):
    """Internal marker returned by `_map_nvml_error`: this device or driver has no answer to the query."""


def _map_nvml_error(nvml: ModuleType, err: BaseException, what: str, *,
                    opening: bool = False) -> ProfilerError:
    """Translate one NVML error into what the caller raises; the one place NVML errors are classified.

    Args:
        nvml: the bindings module, for its error codes.
        err: the `pynvml.NVMLError` (or `pynvml.NVMLLibraryMismatchError`) caught.
        what: what was being done, for the message, e.g. `reading power on GPU 0`.
        opening: the error came from initialising the library, where any failure means no GPU.

    Returns:
        `_NotSupported` when the query has no answer here (the caller reports that one field as
        None or unsupported; never when `opening`); `GpuUnavailableError` with a one-line,
        actionable message when the library, driver or device is gone; otherwise `GpuReadError`.
    """
    if isinstance(err, nvml.NVMLLibraryMismatchError):
        # pynvml's unversioned wrappers raise this when the driver lacks the current versioned symbol.
        code, label = nvml.NVML_ERROR_FUNCTION_NOT_FOUND, "NVMLLibraryMismatchError"
    else:
        code, label = getattr(err, "value", None), type(err).__name__
    detail = " ".join(str(err).split())  # NVML's own text, kept on one line
    if not opening and any(code == getattr(nvml, name, _ABSENT) for name in _UNSUPPORTED):
        return _NotSupported(f"{what}: {detail}")
    for name, message in _UNAVAILABLE.items():
        if code == getattr(nvml, name, _ABSENT) and (opening or name != "NVML_ERROR_NO_PERMISSION"):
            return GpuUnavailableError(f"{message} ({what}: {label})")
    if opening:
        return GpuUnavailableError(f"NVML failed while {what}: {detail} ({label})")
    return GpuReadError(f"NVML error while {what}: {detail} ({label})")


def _text(value: str | bytes) -> str:
    """Return NVML text as str (older bindings return bytes)."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _read_field(nvml: ModuleType, handle: Any, field_id: int, scope: int) -> float:
    """Read one NVML field value as a number, raising the field's own error like a plain call.

    `nvmlDeviceGetFieldValues` succeeds as a whole and reports failures per field, so the field's
    `nvmlReturn` is re-raised here to go through the same error mapping as every other call.
    """
    (value,) = nvml.nvmlDeviceGetFieldValues(handle, [(field_id, scope)])
    return _field_number(nvml, value)


def _field_number(nvml: ModuleType, value: Any) -> float:
    """The number in one `nvmlFieldValue_t`, or its own `nvmlReturn` raised as an NVML error."""
    if value.nvmlReturn != nvml.NVML_SUCCESS:
        raise nvml.NVMLError(value.nvmlReturn)
    member = {
        nvml.NVML_VALUE_TYPE_DOUBLE: "dVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_INT: "uiVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG: "ulVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG: "ullVal",
        nvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG: "sllVal",
        nvml.NVML_VALUE_TYPE_SIGNED_INT: "siVal",
        nvml.NVML_VALUE_TYPE_UNSIGNED_SHORT: "usVal",
    }.get(value.valueType, "uiVal")
    return float(getattr(value.value, member))


def _process_memory(procs: list[Any], pids: frozenset[int]) -> dict[int, int] | None:
    """`usedGpuMemory` (bytes) of the processes whose pid is in `pids`, by pid (summed where NVML
    lists a process more than once, as it does for one in several MIG instances).

    Returns None when one of them reports NVML's "not available" (WDDM, some containers):
    a partial answer would look like a real, smaller number.
    """
    by_pid: dict[int, int] = {}
    for proc in procs:
        if proc.pid not in pids:
            continue
        used = proc.usedGpuMemory
        if used is None or used == _NOT_AVAILABLE_U64:
            return None
        by_pid[int(proc.pid)] = by_pid.get(int(proc.pid), 0) + int(used)
    return by_pid


#: How many other processes' PIDs a device remembers: enough to tell a container from a shared GPU.
_OTHER_PIDS_KEPT = 256


def _note_other_processes(device: _Device, procs: list[Any], pids: frozenset[int]) -> None:
    """Remember the processes on the device that are not this run's, and which of them this PID
    namespace lacks (each PID looked up once)."""
    for proc in procs:
        pid = int(proc.pid)
        if pid in pids or pid in device.other_pids or len(device.other_pids) >= _OTHER_PIDS_KEPT:
            continue
        device.other_pids.add(pid)
        if not pid_exists(pid):
            device.unseen_pids.add(pid)


@dataclass(slots=True)
class _Device:
    """What `read` needs about one opened device, decided once by the probe."""

    index: int
    handle: Any
    supports: dict[str, bool]
    power_field: tuple[int, int] | None = None
    """(field id, scope) of the instant power field, when it answers."""
    power_usage: bool = False
    """Whether `nvmlDeviceGetPowerUsage` answers (the fallback for power)."""
    memory_v2: bool = False
    batched: list[tuple[int, int]] | None = None
    """(energy field, instant power field) when both answer one `nvmlDeviceGetFieldValues` call:
    one driver call a tick instead of two, and the two values from the same update."""
    other_pids: set[int] = field(default_factory=set)
    """Processes NVML listed on the device that are not this run's (at most `_OTHER_PIDS_KEPT`)."""
    unseen_pids: set[int] = field(default_factory=set)
    """Those of `other_pids` that this PID namespace does not have: host PIDs seen from a container."""


@dataclass(slots=True)
class _Selection:
    """One device chosen by CUDA_VISIBLE_DEVICES, and how it was named there."""

    index: int
    cuda_ordinal: int
    visible_as: str
    mig: list[dict[str, Any]] = field(default_factory=list)


class NvmlBackend:
    """`GpuBackend` over NVML: probes each visible device once, then reads it on demand.

    Safe to read from one background thread: NVML is thread-safe and ctypes releases the GIL
    during each call.
    """

    name = "nvml"
    probe_counter = True
    """The sampler checks this backend's energy counters at start (`profiler.gpu.counter_probe`)."""

    def __init__(self, nvml: ModuleType | None = None, *,
                 visible_devices: str | None | Literal[_Env.FROM_ENV] = _Env.FROM_ENV) -> None:
        """Make a backend; touches no hardware (that happens in `open`).

        Args:
            nvml: the bindings module; None imports `pynvml` in `open`. Tests pass a module here.
            visible_devices: a `CUDA_VISIBLE_DEVICES` value restricting the devices (indices,
                `GPU-<uuid>` prefixes, `MIG-...` forms); None for every device. By default, the
                environment variable as it is now.
        """
        self._module = nvml
        if visible_devices is _Env.FROM_ENV:
            visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
        self._visible = visible_devices
        self._nvml: ModuleType | None = None  # set while the library is initialised
        self._devices: dict[int, _Device] = {}
        self._infos: list[GpuInfo] = []

    # ---- open ----------------------------------------------------------------------------------

    def open(self) -> list[GpuInfo]:
        """Initialise NVML and probe every visible device once.

        Returns:
            One `GpuInfo` per visible device, in CUDA_VISIBLE_DEVICES order.

        Raises:
            GpuUnavailableError: no bindings, no library, no driver, no permission, a
                library/driver version mismatch, or no (visible) device; the message is one line
                and says what to do.
        """
        if self._nvml is not None:
            return list(self._infos)
        nvml = self._load_module()
        try:
            nvml.nvmlInit()
        except (nvml.NVMLError, nvml.NVMLLibraryMismatchError) as err:
            raise _map_nvml_error(nvml, err, "initialising NVML", opening=True) from err
        self._nvml = nvml
        try:
            self._infos = self._probe_all(nvml)
        except BaseException:
            self.close()  # do not leave NVML initialised behind a failed open
            raise
        return list(self._infos)

    def _load_module(self) -> ModuleType:
        """Return the bindings module, importing `pynvml` now if none was given."""
        nvml = self._module
        if nvml is None:
            try:
                import pynvml as nvml  # the project's only import of pynvml, kept lazy on purpose
            except ImportError as err:
                raise GpuUnavailableError(
                    "the NVML bindings are not installed: pip install nvidia-ml-py") from err
        # The deprecated PyPI `pynvml` package also installs a `pynvml` module, with different
        # struct layouts; NVIDIA's nvidia-ml-py is recognisable by this private function (as in Zeus).
        if not hasattr(nvml, "_nvmlGetFunctionPointer"):
            raise GpuUnavailableError(
                f"module {getattr(nvml, '__name__', nvml)!r} is not NVIDIA's official bindings: "
                "pip uninstall pynvml && pip install nvidia-ml-py")
        return nvml

    def _probe_all(self, nvml: ModuleType) -> list[GpuInfo]:
        """Enumerate devices, apply CUDA_VISIBLE_DEVICES, and probe each chosen device."""
        call_us: dict[str, float] = {}
        system: dict[str, str | None] = {}
        for key, getter in (("driver_version", nvml.nvmlSystemGetDriverVersion),
                            ("nvml_version", nvml.nvmlSystemGetNVMLVersion)):
            value = self._attempt(nvml, call_us, {}, key, getter)
            system[key] = _text(value) if value is not None else None
        system["pid_namespace"] = pid_namespace()
        try:
            count = nvml.nvmlDeviceGetCount()
        except nvml.NVMLError as err:
            raise _map_nvml_error(nvml, err, "counting GPUs", opening=True) from err
        if count == 0:
            raise GpuUnavailableError("NVML found no NVIDIA GPU on this machine")

        handles: dict[int, Any] = {}
        uuids: dict[int, str] = {}
        problems: list[str] = []
        for index in range(count):
            # One inaccessible device (cgroup-hidden, lost) must not hide the others.
            try:
                handles[index] = nvml.nvmlDeviceGetHandleByIndex(index)
                uuids[index] = _text(nvml.nvmlDeviceGetUUID(handles[index]))
            except nvml.NVMLError as err:
                handles.pop(index, None)
                problems.append(str(_map_nvml_error(nvml, err, f"opening GPU {index}", opening=True)))
                logger.warning("skipping GPU %d: %s", index, problems[-1])

        infos: list[GpuInfo] = []
        for chosen in self._select(nvml, uuids):
            try:
                info, device = self._probe(nvml, chosen, handles[chosen.index], uuids[chosen.index], system)
            except GpuUnavailableError as err:
                problems.append(str(err))
                logger.warning("skipping GPU %d: %s", chosen.index, err)
                continue
            self._devices[chosen.index] = device
            infos.append(info)
        if not infos:
            if self._visible is not None and not problems:
                raise GpuUnavailableError(
                    f"CUDA_VISIBLE_DEVICES={self._visible!r} selects none of the {count} NVIDIA GPU(s) "
                    f"({', '.join(uuids.values())}): unset it, or name a device index or UUID")
            raise GpuUnavailableError(problems[0] if problems else "no usable NVIDIA GPU")
        return infos

    def _select(self, nvml: ModuleType, uuids: dict[int, str]) -> list[_Selection]:
        """Resolve CUDA_VISIBLE_DEVICES to NVML devices, by UUID wherever the value names one.

        Follows CUDA: entries are comma-separated; an integer is a device index, `GPU-...` a
        (unique) UUID prefix, `MIG-<uuid>` or `MIG-GPU-<uuid>/<gi>/<ci>` a MIG instance (which is
        mapped to its parent board, since NVML has no per-instance power or energy); parsing stops
        at the first entry that names no device. Integers are taken as NVML (PCI bus) indices, which
        match CUDA's numbering only with CUDA_DEVICE_ORDER=PCI_BUS_ID or a single GPU.
        """
        if self._visible is None:
            return [_Selection(index, index, str(index)) for index in sorted(uuids)]
        chosen: dict[int, _Selection] = {}
        for ordinal, raw in enumerate(self._visible.split(",")):
            entry = raw.strip()
            index, mig = self._resolve_entry(nvml, entry, uuids)
            if index is None:
                if entry:
                    logger.warning("CUDA_VISIBLE_DEVICES: %r names no GPU; ignoring it and what follows",
                                   entry)
                break
            selection = chosen.setdefault(index, _Selection(index, ordinal, entry))
            if mig is not None:
                selection.mig.append(mig)
        return list(chosen.values())

    def _resolve_entry(self, nvml: ModuleType, entry: str,
                       uuids: dict[int, str]) -> tuple[int | None, dict[str, Any] | None]:
        """Return (NVML index, MIG note or None) for one CUDA_VISIBLE_DEVICES entry, or (None, None)."""
        by_uuid = {uuid.lower(): index for index, uuid in uuids.items()}
        if re.fullmatch(r"\d+", entry):
            return (int(entry) if int(entry) in uuids else None), None
        if entry.upper().startswith("GPU-"):
            matches = [index for uuid, index in by_uuid.items() if uuid.startswith(entry.lower())]
            return (matches[0] if len(matches) == 1 else None), None
        legacy = re.fullmatch(r"MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)", entry)
        if legacy:  # the pre-R470 form names the parent board and the instance ids directly
            index = by_uuid.get(legacy.group(1).lower())
            note = {"uuid": entry, "gpu_instance_id": int(legacy.group(2)),
                    "compute_instance_id": int(legacy.group(3))}
            return (index, note) if index is not None else (None, None)
        if entry.upper().startswith("MIG-"):
            try:
                mig_handle = nvml.nvmlDeviceGetHandleByUUID(entry.encode())
                parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(mig_handle)
                index = by_uuid.get(_text(nvml.nvmlDeviceGetUUID(parent)).lower())
            except nvml.NVMLError as err:
                logger.warning("CUDA_VISIBLE_DEVICES: cannot resolve %s: %s", entry, err)
                return None, None
            note: dict[str, Any] = {"uuid": entry}
            for key, getter in (("gpu_instance_id", "nvmlDeviceGetGpuInstanceId"),
                                ("compute_instance_id", "nvmlDeviceGetComputeInstanceId")):
                try:
                    note[key] = int(getattr(nvml, getter)(mig_handle))
                except nvml.NVMLError:
                    note[key] = None  # nice to have only
            return (index, note) if index is not None else (None, None)
        return None, None

    @staticmethod
    def _attempt(nvml: ModuleType, call_us: dict[str, float], reasons: dict[str, str], key: str,
                 fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
        """Call one NVML function during the probe, timing it.

        Returns:
            The result, or None when the device does not answer this query (the reason goes to
            `reasons[key]`); the latency in microseconds goes to `call_us[key]` either way.

        Raises:
            GpuUnavailableError: the device or library is gone.
        """
        start = time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        except (nvml.NVMLError, nvml.NVMLLibraryMismatchError) as err:
            mapped = _map_nvml_error(nvml, err, f"probing {key}")
            if isinstance(mapped, GpuUnavailableError):
                raise mapped from err
            # Unsupported, or an error such as NO_PERMISSION on one query: that field only.
            reasons[key] = str(mapped)
            return None
        finally:
            call_us[key] = round((time.perf_counter_ns() - start) / 1e3, 1)

    def _probe(self, nvml: ModuleType, chosen: _Selection, handle: Any, uuid: str,
               system: dict[str, str | None]) -> tuple[GpuInfo, _Device]:
        """Ask one device each question once and record what it answers and how fast."""
        call_us: dict[str, float] = {}
        reasons: dict[str, str] = {}

        def attempt(key: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
            return self._attempt(nvml, call_us, reasons, key, fn, *args, **kwargs)

        name = attempt("name", nvml.nvmlDeviceGetName, handle)
        arch = attempt("architecture", nvml.nvmlDeviceGetArchitecture, handle)
        arch_names = {getattr(nvml, n): n.removeprefix("NVML_DEVICE_ARCH_").lower()
                      for n in dir(nvml) if n.startswith("NVML_DEVICE_ARCH_")}
        energy_mj = attempt("energy_counter", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)

        # Instant power: GPU scope first; on superchips (GH200) only the module scope (GPU+CPU) answers.
        power_field: tuple[int, int] | None = None
        power_scope: str | None = None
        for scope, label in ((_SCOPE_GPU, "gpu"), (_SCOPE_MODULE, "module")):
            mw = attempt(f"power_instant_{label}", _read_field, nvml, handle, _FI_POWER_INSTANT, scope)
            if mw is not None:
                power_field, power_scope = (_FI_POWER_INSTANT, scope), label
                break
        average_scope: str | None = None
        for scope, label in ((_SCOPE_GPU, "gpu"), (_SCOPE_MODULE, "module")):
            mw = attempt(f"power_average_{label}", _read_field, nvml, handle, _FI_POWER_AVERAGE, scope)
            if mw is not None:
                average_scope = label
                break
        power_usage_mw = attempt("power_usage", nvml.nvmlDeviceGetPowerUsage, handle)

        memory = attempt("memory_v2", nvml.nvmlDeviceGetMemoryInfo, handle, version=nvml.nvmlMemory_v2)
        memory_v2 = memory is not None
        if memory is None:
            memory = attempt("memory_v1", nvml.nvmlDeviceGetMemoryInfo, handle)
        # The process list goes through the unversioned wrapper, which picks the current (v3) symbol
        # and raises NVMLLibraryMismatchError when the driver lacks it (docs/gpus.md#the-bindings-and-their-errors).
        procs = attempt("processes", nvml.nvmlDeviceGetComputeRunningProcesses, handle)
        util = attempt("utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
        mig = attempt("mig_mode", nvml.nvmlDeviceGetMigMode, handle)
        limit_mw = attempt("power_limit", nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        if limit_mw is None:
            limit_mw = attempt("power_management_limit", nvml.nvmlDeviceGetPowerManagementLimit, handle)
        temp_c = attempt("temperature", nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        sm_mhz = attempt("clock_sm", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        mem_mhz = attempt("clock_mem", nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)

        answered = {
            "energy_counter": energy_mj is not None,
            "power_instant": power_field is not None,
            "power_average": average_scope is not None,
            "memory_v2": memory_v2,
            "processes": procs is not None,
            "utilization": util is not None,
            "clocks": sm_mhz is not None or mem_mhz is not None,
            "temperature": temp_c is not None,
        }
        # Keyed by CAPABILITIES so that a capability added there without a probe here fails loudly.
        supports = {capability: answered[capability] for capability in CAPABILITIES}
        details: dict[str, Any] = {
            **system,
            "architecture": arch_names.get(arch, f"unknown({arch})") if arch is not None else None,
            "power_limit_w": limit_mw / 1e3 if limit_mw is not None else None,
            "mig_mode": bool(mig[0]) if mig is not None else None,
            "memory_total_bytes": int(memory.total) if memory is not None else None,
            # With only v1, `used` includes the driver's reserved memory (912 MB vs 7.8 MB on an idle A100).
            "memory_used_includes_reserved": not memory_v2,
            "power_source": (f"field_instant_{power_scope}" if power_field is not None
                             else "power_usage" if power_usage_mw is not None else None),
            "power_scope": power_scope,
            "power_average_scope": average_scope,
            "temperature_c_at_open": temp_c,
            "clock_sm_mhz_at_open": sm_mhz,
            "cuda_ordinal": chosen.cuda_ordinal,
            "visible_as": chosen.visible_as,
            "call_us": call_us,
        }
        if memory_v2 and memory is not None:
            details["memory_reserved_bytes"] = int(memory.reserved)
        if chosen.mig:
            details["mig_instances"] = chosen.mig
        if reasons:
            details["unsupported_reason"] = reasons
        info = GpuInfo(index=chosen.index, uuid=uuid, name=_text(name) if name is not None else "unknown",
                       supports=supports, details=details)
        batched = None
        if energy_mj is not None and power_field is not None:
            fields = [(_FI_TOTAL_ENERGY, _SCOPE_GPU), power_field]
            both = attempt("energy_and_power_fields", nvml.nvmlDeviceGetFieldValues, handle, fields)
            if both is not None and all(v.nvmlReturn == nvml.NVML_SUCCESS for v in both):
                batched = fields
        details["batched_fields"] = batched is not None
        device = _Device(index=chosen.index, handle=handle, supports=supports, power_field=power_field,
                         power_usage=power_usage_mw is not None, memory_v2=memory_v2, batched=batched)
        return info, device

    # ---- read ----------------------------------------------------------------------------------

    def read(self, index: int, pids: frozenset[int] | None = None, slow: bool = False) -> GpuReading:
        """Read one device.

        Args:
            index: the device's NVML index, as in `GpuInfo.index`.
            pids: this run's process ids; with `slow`, `proc_mem_bytes` is their summed device
                memory in bytes and `proc_mem_bytes_by_pid` each one's (None when the process list
                is unsupported or a process's usage is not available).
            slow: also read utilization (%), the process list, clocks and temperature, which cost
                more per call.

        Returns:
            Energy in J (cumulative counter), power in W (instant where the device has it, else
            `nvmlDeviceGetPowerUsage`, a 1 s average on Ampere and later), device memory used in
            bytes, and with `slow` utilization in %, process memory in bytes, clocks in MHz and
            temperature in C. A field the device does not support is None.

        Raises:
            GpuUnavailableError: the device is lost or NVML was shut down (the backend is closed).
            GpuReadError: any other NVML failure; the sampler counts it and carries on.
            IndexError: `index` was not returned by `open`.
        """
        nvml = self._nvml
        if nvml is None:
            raise GpuUnavailableError("the NVML backend is closed")
        device = self._devices.get(index)
        if device is None:
            raise IndexError(f"GPU {index} was not opened by this backend")
        handle = device.handle

        def call(what: str, fn: Callable[..., _T], *args: Any, **kwargs: Any) -> _T | None:
            """Call NVML: the result, None when the field is unsupported, else the mapped error."""
            try:
                return fn(*args, **kwargs)
            except (nvml.NVMLError, nvml.NVMLLibraryMismatchError) as err:
                mapped = _map_nvml_error(nvml, err, f"{what} on GPU {index}")
                if isinstance(mapped, _NotSupported):
                    return None
                raise mapped from err

        def number(what: str, value: Any) -> float | None:
            """One value of a batched field read, mapped like a call of its own."""
            return call(what, _field_number, nvml, value)

        energy_j = util_pct = None
        by_pid: dict[int, int] | None = None
        mj: float | None = None
        mw: float | None = None
        if device.batched is not None:
            values = call("reading energy and power", nvml.nvmlDeviceGetFieldValues, handle, device.batched)
            if values is not None:
                mj = number("reading the energy counter", values[0])
                mw = number("reading instant power", values[1])
        else:
            if device.supports["energy_counter"]:
                mj = call("reading the energy counter", nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
            if device.power_field is not None:
                mw = call("reading instant power", _read_field, nvml, handle, *device.power_field)
        energy_j = mj / 1e3 if mj is not None else None
        if mw is None and device.power_usage:
            mw = call("reading power usage", nvml.nvmlDeviceGetPowerUsage, handle)
        power_w = mw / 1e3 if mw is not None else None
        if device.memory_v2:
            memory = call("reading memory", nvml.nvmlDeviceGetMemoryInfo, handle, version=nvml.nvmlMemory_v2)
        else:
            memory = call("reading memory", nvml.nvmlDeviceGetMemoryInfo, handle)
        mem_used = int(memory.used) if memory is not None else None
        if slow:
            if device.supports["utilization"]:
                util = call("reading utilization", nvml.nvmlDeviceGetUtilizationRates, handle)
                util_pct = float(util.gpu) if util is not None else None
            if pids is not None and device.supports["processes"]:
                procs = call("listing processes", nvml.nvmlDeviceGetComputeRunningProcesses, handle)
                by_pid = _process_memory(procs, pids) if procs is not None else None
                if procs is not None and by_pid is not None and len(procs) > len(by_pid):
                    _note_other_processes(device, procs, pids)
        sm_mhz, mem_mhz, temp_c = self._read_clocks(device, call) if slow else (None, None, None)
        return GpuReading(energy_j=energy_j, power_w=power_w, mem_used_bytes=mem_used,
                          proc_mem_bytes=sum(by_pid.values()) if by_pid is not None else None,
                          util_pct=util_pct, proc_mem_bytes_by_pid=by_pid, sm_clock_mhz=sm_mhz,
                          mem_clock_mhz=mem_mhz, temp_c=temp_c)

    def _read_clocks(self, device: _Device, call: Callable[..., Any]) -> tuple[float | None, ...]:
        """(SM clock MHz, memory clock MHz, temperature C), each None where its query is unsupported."""
        nvml, handle = self._nvml, device.handle
        assert nvml is not None
        sm_mhz = mem_mhz = temp_c = None
        if device.supports.get("clocks"):
            clock = nvml.nvmlDeviceGetClockInfo
            sm_mhz = call("reading the SM clock", clock, handle, nvml.NVML_CLOCK_SM)
            mem_mhz = call("reading the memory clock", clock, handle, nvml.NVML_CLOCK_MEM)
        if device.supports.get("temperature"):
            temp_c = call("reading the temperature", nvml.nvmlDeviceGetTemperature, handle,
                          nvml.NVML_TEMPERATURE_GPU)
        return tuple(float(v) if v is not None else None for v in (sm_mhz, mem_mhz, temp_c))

    def read_counter(self, index: int) -> GpuReading:
        """Read only the energy counter and power, for the sampler's startup check of the counter
        (`profiler.gpu.counter_probe`), which reads every 10 ms for a second: one driver call where both
        answer one field query (a third of a full `read`'s cost), else a full `read`.

        Raises:
            GpuUnavailableError: the device is lost or the backend is closed.
            GpuReadError: any other failure, a field that did not answer this time included.
            IndexError: `index` was not returned by `open`.
        """
        nvml, device = self._nvml, self._devices.get(index)
        if nvml is None or device is None or device.batched is None:
            return self.read(index)  # which raises the right error for a closed backend or a bad index
        try:
            values = nvml.nvmlDeviceGetFieldValues(device.handle, device.batched)
            energy_mj, power_mw = (_field_number(nvml, value) for value in values)
        except (nvml.NVMLError, nvml.NVMLLibraryMismatchError) as err:
            mapped = _map_nvml_error(nvml, err, f"reading energy and power on GPU {index}")
            raise (GpuReadError(str(mapped)) if isinstance(mapped, _NotSupported) else mapped) from err
        return GpuReading(energy_j=energy_mj / 1e3, power_w=power_mw / 1e3)

    def process_visibility(self) -> dict[int, dict[str, int]]:
        """Per device index, how many processes NVML listed that are not this run's
        (`other_processes`) and how many of those this PID namespace does not have
        (`not_in_this_pid_namespace`: inside a container NVML reports host PIDs, which match none
        of the run's, so its own memory cannot be told apart)."""
        return {index: {"other_processes": len(device.other_pids),
                        "not_in_this_pid_namespace": len(device.unseen_pids)}
                for index, device in self._devices.items()}

    # ---- close ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Shut NVML down. Idempotent, and never raises: it runs on every exit path."""
        nvml, self._nvml = self._nvml, None
        self._devices = {}
        if nvml is None:
            return
        try:
            nvml.nvmlShutdown()
        except Exception as err:  # noqa: BLE001 - a failed shutdown at exit must not mask the run's own outcome
            logger.debug("nvmlShutdown failed: %s", err)


def probe_gpus() -> tuple[list[GpuInfo], str | None]:
    """Probe the visible NVIDIA GPUs for `sessionprof gpus`.

    Returns:
        (devices, None) when at least one GPU answers, else ([], a one-line reason such as
        "NVIDIA driver not loaded: ..."). Never raises for "no GPU".
    """
    backend = NvmlBackend()
    try:
        return backend.open(), None
    except GpuUnavailableError as err:
        return [], str(err)
    finally:
        backend.close()
