"""`GpuSampler`: one named background thread that reads every GPU about ten times a second.

Readings go to the run's samples file as they are taken, so a kill loses at most the tick in
flight. Timestamps come from the monotonic clock, mapped once to the epoch clock that spans use,
so a wall-clock step mid-run cannot tear the timeline.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiler.errors import GpuReadError, GpuUnavailableError
from profiler.gpu import GpuBackend, GpuInfo
from profiler.readers.samples import SamplesWriter

logger = logging.getLogger(__name__)
THREAD_NAME = "sessionprof-gpu-sampler"
MIN_INTERVAL_S = 0.02
#: Tick phases step by this fraction of the interval: the golden ratio, the most evenly spread.
_GOLDEN = (5**0.5 - 1) / 2.0
#: Ticks per slow sweep of the schedule across one interval (and as many back).
_SWEEP_TICKS = 37


def tick_offset(k: int, interval_s: float) -> float:
    """When tick `k` of a dithered schedule is due, in seconds after its origin.

    Ticks are `interval_s` apart on average (exactly so over every 74 ticks), but not evenly:
    each is delayed by a golden-ratio fraction of the interval (gaps of about 0.6 and 1.6
    intervals), and the whole schedule slides across one interval and back every 74 ticks.

    Why: NVML's energy counter updates about every 100 ms. Reads at a fixed 10 Hz sit at one phase
    of that period for ever and see a change at every read, which says nothing about when in the
    previous 100 ms it happened; energy then lags by up to a read interval. Short gaps that often
    see no change, at every phase of the update period, bracket the updates from both sides and let
    `profiler.energy.locate_updates` place them to a few milliseconds. The slide keeps the schedule
    from sitting in step with an update period equal to the interval.
    """
    sweep = k % (2 * _SWEEP_TICKS)
    slide = (sweep if sweep < _SWEEP_TICKS else 2 * _SWEEP_TICKS - sweep) / _SWEEP_TICKS
    return (k + slide + (k * _GOLDEN) % 1.0) * interval_s


@dataclass
class SamplerStats:
    """What the sampler did, recorded in run.json."""

    ticks: int = 0
    samples: int = 0
    read_errors: int = 0
    lost_gpus: list[str] = field(default_factory=list)
    thread_cpu_s: float = 0.0
    """CPU time the sampler thread used, in seconds (its cost to the host)."""
    wall_s: float = 0.0
    last_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the stats with the derived CPU share of one core."""
        share = self.thread_cpu_s / self.wall_s if self.wall_s > 0 else None
        return {"ticks": self.ticks, "samples": self.samples, "read_errors": self.read_errors,
                "lost_gpus": self.lost_gpus, "thread_cpu_s": self.thread_cpu_s, "wall_s": self.wall_s,
                "cpu_share_of_one_core": share, "last_error": self.last_error}


class Clock:
    """Epoch nanoseconds derived from the monotonic clock, anchored once."""

    def __init__(self) -> None:
        """Take the anchor pair (epoch, monotonic) now."""
        self.anchor_epoch_ns = time.time_ns()
        self.anchor_monotonic_ns = time.monotonic_ns()

    def __call__(self) -> int:
        """The current time in epoch nanoseconds."""
        return self.anchor_epoch_ns + (time.monotonic_ns() - self.anchor_monotonic_ns)

    def to_json(self) -> dict[str, int]:
        """The anchor, for run.json."""
        return {"epoch_ns": self.anchor_epoch_ns, "monotonic_ns": self.anchor_monotonic_ns}


class GpuSampler:
    """Samples GPUs through an injected backend. No thread and no hardware call until `start()`."""

    def __init__(
        self,
        backend: GpuBackend,
        samples_path: Path | None,
        *,
        interval_s: float = 0.1,
        slow_every: int = 10,
        pids: Callable[[], frozenset[int]] | None = None,
        clock: Callable[[], int] | None = None,
        dither: bool = True,
    ) -> None:
        """Prepare a sampler.

        Args:
            backend: where readings come from (NVML, a replay, a test double).
            samples_path: the samples file to append to; None keeps samples in memory only.
            interval_s: seconds between ticks (NVML's power and energy update about every 0.1 s).
            slow_every: read the slow fields (utilization, process memory) every this many ticks.
            pids: returns this run's process ids, for per-process memory.
            clock: returns epoch nanoseconds; a `Clock` by default.
            dither: spread the ticks' phase over the interval (see `_offset`); False reads at a
                fixed rate.
        """
        # `not >=` also refuses NaN (which would spin the thread) and infinity (which Event.wait rejects).
        if not (MIN_INTERVAL_S <= interval_s < math.inf):
            raise ValueError(f"interval_s must be at least {MIN_INTERVAL_S} s (NVML updates about every 0.1 s)")
        if slow_every < 1:
            raise ValueError("slow_every must be at least 1")
        self.backend = backend
        self.samples_path = samples_path
        self.interval_s = interval_s
        self.slow_every = slow_every
        self.dither = dither
        self.clock = clock or Clock()
        self._pids = pids or (lambda: frozenset({os.getpid()}))
        self.gpus: list[GpuInfo] = []
        self.stats = SamplerStats()
        self.unavailable_reason: str | None = None
        self._lost: set[int] = set()
        self._writer: SamplesWriter | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._started_mono = 0.0
        self.memory: list[tuple[Any, ...]] = []
        self.first_rows: dict[str, tuple[Any, ...]] = {}
        """The first reading of each device: the memory baseline taken before the agent's work."""

    def start(self) -> list[GpuInfo]:
        """Probe the devices, take a first reading and start the thread. Never raises for a missing GPU:
        the run goes on without GPU data and `unavailable_reason` says why."""
        try:
            self.gpus = self.backend.open()
        except GpuUnavailableError as err:
            self.unavailable_reason = str(err)
            self.gpus = []
        except Exception as err:  # noqa: BLE001 - a broken backend must not stop the agent
            self.unavailable_reason = f"GPU probe failed: {err}"
            self.gpus = []
        if not self.gpus:
            self.unavailable_reason = self.unavailable_reason or "no GPU found"
            return []
        if self.samples_path is not None:
            self._writer = SamplesWriter(self.samples_path)
        self._started_mono = time.monotonic()
        self.tick(slow=True)
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        return self.gpus

    def tick(self, slow: bool | None = None) -> None:
        """Read every device once and append the readings. The thread calls this; tests may too."""
        with self._lock:
            self.stats.ticks += 1
            slow = slow if slow is not None else self.stats.ticks % self.slow_every == 0
            pids = self._safe_pids() if slow else None
            rows = []
            for info in self.gpus:
                if info.index in self._lost:
                    continue
                row = self._read(info, pids, slow)
                if row is not None:
                    rows.append(row)
            self._emit(rows)

    def stop(self, timeout_s: float = 2.0) -> SamplerStats:
        """Stop the thread, take a last reading (so the run's end is bracketed) and close. Idempotent."""
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout_s)
            self.tick(slow=True)
            self.stats.wall_s = time.monotonic() - self._started_mono
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        try:
            self.backend.close()
        except Exception:  # noqa: BLE001
            logger.debug("backend close failed", exc_info=True)
        return self.stats

    def _run(self) -> None:
        cpu_start = time.thread_time()
        origin, k = time.monotonic(), 1
        next_tick = origin + self._offset(1)
        while not self._stop.wait(max(0.0, next_tick - time.monotonic())):
            try:
                self.tick()
            except Exception as err:  # noqa: BLE001 - keep sampling whatever happens
                self._note_error(err)
            # Fixed-rate schedule: a slow call delays one tick, not every tick after it.
            k += 1
            next_tick = origin + self._offset(k)
            now = time.monotonic()
            if next_tick < now:
                origin, k = now, 1
                next_tick = origin + self._offset(1)
            self.stats.thread_cpu_s = time.thread_time() - cpu_start

    def _offset(self, k: int) -> float:
        """When tick `k` is due, in seconds after the schedule's origin (see `tick_offset`)."""
        return tick_offset(k, self.interval_s) if self.dither else k * self.interval_s

    def _read(self, info: GpuInfo, pids: frozenset[int] | None, slow: bool) -> tuple[Any, ...] | None:
        try:
            reading = self.backend.read(info.index, pids, slow)
        except GpuUnavailableError as err:
            self._lost.add(info.index)
            self.stats.lost_gpus.append(info.uuid)
            logger.warning("sessionprof: GPU %s lost mid-run (%s); its samples stop here", info.uuid, err)
            return None
        except (GpuReadError, Exception) as err:  # noqa: BLE001
            self._note_error(err)
            return None
        return (self.clock(), info.uuid, reading.energy_j, reading.power_w, reading.mem_used_bytes,
                reading.proc_mem_bytes, reading.util_pct)

    def _emit(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self.stats.samples += len(rows)
        for row in rows:
            self.first_rows.setdefault(row[1], row)
        if self._writer is None:
            self.memory.extend(rows)
            return
        try:
            self._writer.write(rows)
        except OSError as err:
            self._note_error(err)

    def _safe_pids(self) -> frozenset[int] | None:
        try:
            return self._pids()
        except Exception:  # noqa: BLE001
            return None

    def _note_error(self, err: BaseException) -> None:
        self.stats.read_errors += 1
        self.stats.last_error = f"{type(err).__name__}: {err}"
        # Rate-limited: the first error, then every hundredth.
        if self.stats.read_errors == 1 or self.stats.read_errors % 100 == 0:
            logger.warning("sessionprof: GPU read failed (%d so far): %s", self.stats.read_errors, err)


def process_tree(root_pid: int) -> frozenset[int]:
    """`root_pid` and all its descendants, from /proc (just the root where /proc is absent)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return frozenset({root_pid})
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = {root_pid}, [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return frozenset(found)
