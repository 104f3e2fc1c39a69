"""The energy counter's startup check: about a second of fast reads that times the counter's updates
and weighs its joules against power (docs/gpus.md#the-counters-startup-check).

`NvmlBackend.open()` asks each device every question once and times each call, but whether its
counter can be trusted takes longer to learn: the counter changes about every 100 ms, and a fair
comparison with power needs several updates. So once the sampler's thread is running it also reads
each GPU that has a counter, between its own ticks, for `PROBE_S`: every `PROBE_INTERVAL_S` until
each counter has changed `PROBE_DENSE_CHANGES` times (narrow brackets around the updates, to time
them), then every `PROBE_SPARSE_INTERVAL_S` (enough to see every update and a stuck counter, with a
fifth of the wake-ups: each takes the GIL from the agent for a moment). The agent never waits for
it, and these reads go to no samples file. `profiler.energy.sensor_checks.judge_counter` gives the
verdict, which run.json records per GPU (`counter_probe`) and every report warns about.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import numpy as np

from profiler.energy.sensor_checks import MAX_UPDATE_PERIOD_S, judge_counter
from profiler.errors import GpuUnavailableError
from profiler.gpu.backend import GpuBackend, GpuInfo

logger = logging.getLogger(__name__)

#: How long the check reads: longer than NVML's slowest update period, so that a counter that does
#: not move is stuck, not slow.
PROBE_S = MAX_UPDATE_PERIOD_S + 0.1
#: How often it reads at first: each update is bracketed to 10 ms. (Zeus saw failed readings when
#: sampling below 50 ms; this is half a second of it, and a failed or 0 W reading only drops out.)
PROBE_INTERVAL_S = 0.01
#: Changes of every counter seen at that rate before it slows down: five intervals between narrow
#: brackets time a 100 ms period to about a millisecond.
PROBE_DENSE_CHANGES = 6
#: How often it reads after that: more often than any update (NVML's fastest refresh is 100 ms).
PROBE_SPARSE_INTERVAL_S = 0.05


class CounterProbe:
    """Reads each GPU's counter and power in a burst, then judges each counter once.

    Not thread-safe: the sampler calls `step` from its thread and `finish` under its lock.
    """

    def __init__(self, backend: GpuBackend, gpus: list[GpuInfo], *, duration_s: float = PROBE_S,
                 interval_s: float = PROBE_INTERVAL_S) -> None:
        """Start the check now; GPUs without a counter get the verdict `absent` at once."""
        self.backend = backend
        self.interval_s = interval_s
        self.results: dict[str, dict[str, Any]] = {
            info.uuid: {"verdict": "absent"} for info in gpus if not info.supports.get("energy_counter")}
        self._targets = [info for info in gpus if info.supports.get("energy_counter")]
        self._reads: dict[str, list[tuple[float, float, float, float]]] = {g.uuid: [] for g in self._targets}
        self._errors = dict.fromkeys(self._reads, 0)
        self._changes = dict.fromkeys(self._reads, 0)
        self._lost: set[str] = set()
        self.next_read_s = time.monotonic()
        """When the next burst of reads is due, on `time.monotonic()`."""
        self._until_s = self.next_read_s + duration_s
        self.cpu_s = 0.0
        """CPU time the check's reads and verdicts took, in seconds."""
        self.done = not self._targets

    def step(self) -> None:
        """Read every probed GPU once; once the check's time is up, judge them."""
        cpu = time.thread_time()
        for info in self._targets:
            if info.uuid not in self._lost:
                self._read(info)
        now = time.monotonic()
        timed = all(seen >= PROBE_DENSE_CHANGES or gpu in self._lost for gpu, seen in self._changes.items())
        interval = max(self.interval_s, PROBE_SPARSE_INTERVAL_S) if timed else self.interval_s
        self.next_read_s = max(self.next_read_s + interval, now)
        self.cpu_s += time.thread_time() - cpu
        if now >= self._until_s:
            self.finish()

    def _read(self, info: GpuInfo) -> None:
        # Energy and power only where the backend can (`NvmlBackend.read_counter`): one driver call.
        read = getattr(self.backend, "read_counter", None) or self.backend.read
        started = time.perf_counter()
        try:
            reading = read(info.index)
        except GpuUnavailableError:
            self._lost.add(info.uuid)  # the sampler's own tick notes the loss
            return
        except Exception:  # noqa: BLE001 - a failed read drops out of the check, as from a tick
            self._errors[info.uuid] += 1
            return
        took = time.perf_counter() - started
        energy = reading.energy_j if reading.energy_j is not None else math.nan
        power = reading.power_w if reading.power_w is not None else math.nan
        reads = self._reads[info.uuid]
        if reads and math.isfinite(energy) and energy != reads[-1][1]:
            self._changes[info.uuid] += 1  # (a read after a failed one counts as a change: harmless)
        reads.append((started, energy, power, took))

    def finish(self) -> None:
        """Judge each probed GPU on the reads so far (a run may end before the check does). Idempotent."""
        if self.done:
            return
        self.done = True
        cpu = time.thread_time()
        for info in self._targets:
            reads = np.array(self._reads[info.uuid], dtype=np.float64).reshape(-1, 4)
            result = judge_counter(reads[:, 0], reads[:, 1], reads[:, 2])
            took_us = reads[:, 3] * 1e6
            result.update(read_us_median=float(np.median(took_us)) if len(took_us) else None,
                          read_us_max=float(took_us.max()) if len(took_us) else None,
                          read_errors=self._errors[info.uuid])
            self.results[info.uuid] = result
            if result.get("problem"):
                logger.warning("sessionprof: GPU %s: %s", info.uuid, result["problem"])
        self.cpu_s += time.thread_time() - cpu
