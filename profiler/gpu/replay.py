"""`ReplayBackend`: a recorded samples file played back in real time, so a run can be rehearsed
without its GPU (`gpu="replay:<samples.csv>"`)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from profiler.errors import GpuUnavailableError
from profiler.gpu.backend import CAPABILITIES, GpuInfo, GpuReading
from profiler.gpu.samples_file import read_samples


class ReplayBackend:
    """Replays a recorded samples file in real time, so a run can be rehearsed without its GPU."""

    name = "replay"

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic) -> None:
        """Read the recording now (errors surface here, not in the sampler thread)."""
        warnings: list[str] = []
        self.samples = read_samples(Path(path), warnings)
        if self.samples.empty:
            raise GpuUnavailableError(f"{path}: no samples to replay")
        self.clock = clock
        self._t0 = 0.0
        self._gpus = list(dict.fromkeys(self.samples["gpu"]))
        self._series = {
            gpu: group.sort_values("t_ns").reset_index(drop=True) for gpu, group in self.samples.groupby("gpu")
        }
        self._origin_ns = int(self.samples["t_ns"].min())

    def open(self) -> list[GpuInfo]:
        """One device per GPU in the recording."""
        self._t0 = self.clock()
        infos = []
        for index, gpu in enumerate(self._gpus):
            series = self._series[gpu]
            supports = dict.fromkeys(CAPABILITIES, False)
            supports["energy_counter"] = bool(series["energy_j"].notna().any())
            supports["power_instant"] = bool(series["power_w"].notna().any())
            supports["memory_v2"] = bool(series["mem_used_bytes"].notna().any())
            supports["utilization"] = bool(series["util_pct"].notna().any())
            supports["clocks"] = bool(series[["sm_clock_mhz", "mem_clock_mhz"]].notna().any(axis=None))
            supports["temperature"] = bool(series["temp_c"].notna().any())
            infos.append(GpuInfo(index=index, uuid=str(gpu), name=f"replay of {gpu}", supports=supports))
        return infos

    def read(self, index: int, pids: frozenset[int] | None = None, slow: bool = False) -> GpuReading:
        """The last recorded reading at or before the elapsed time."""
        series = self._series[self._gpus[index]]
        elapsed_ns = (self.clock() - self._t0) * 1e9
        position = int(np.searchsorted(series["t_ns"].to_numpy() - self._origin_ns, elapsed_ns, side="right")) - 1
        row = series.iloc[max(position, 0)]
        return GpuReading(
            energy_j=_optional(row["energy_j"]),
            power_w=_optional(row["power_w"]),
            mem_used_bytes=None if pd.isna(row["mem_used_bytes"]) else int(row["mem_used_bytes"]),
            util_pct=_optional(row["util_pct"]) if slow else None,
            sm_clock_mhz=_optional(row["sm_clock_mhz"]) if slow else None,
            mem_clock_mhz=_optional(row["mem_clock_mhz"]) if slow else None,
            temp_c=_optional(row["temp_c"]) if slow else None,
        )

    def close(self) -> None:
        """Nothing to release."""


def _optional(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
