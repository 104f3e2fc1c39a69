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
from pathlib import Path
from typing import Any

from instrumentation import _state, forksafe
from instrumentation.safe_files import FileRemovedError
from profiler.errors import GpuReadError, GpuUnavailableError
from profiler.gpu.backend import GpuBackend, GpuInfo
from profiler.gpu.counter_probe import PROBE_S, CounterProbe
from profiler.gpu.sampler_stats import SamplerStats
from profiler.gpu.samples_file import SamplesWriter
from profiler.model import format_pid_memory

logger = logging.getLogger(__name__)
THREAD_NAME = "sessionprof-gpu-sampler"
_POWER_FIELD = 3  # positions of power_w and mem_used_bytes in a sample row (SAMPLE_COLUMNS order)
_MEM_USED_FIELD = 4
MIN_INTERVAL_S = 0.02
#: Tick phases step by this fraction of the interval: the golden ratio, the most evenly spread.
_GOLDEN = (5**0.5 - 1) / 2.0
#: Ticks per slow sweep of the schedule across one interval (and as many back).
_SWEEP_TICKS = 37
#: A slow tick (utilization, process lists) that takes longer than this backs the slow reads off.
SLOW_TICK_BUDGET_S = 0.02
#: Slow fields are read at least this often, however slow they are.
MAX_SLOW_PERIOD_S = 10.0


def tick_offset(k: int, interval_s: float) -> float:
    """When tick `k` of a dithered schedule is due, in seconds after its origin.

    Ticks are `interval_s` apart on average (exactly so over every 74 ticks), but not evenly:
    each is delayed by a golden-ratio fraction of the interval (gaps of about 0.6 and 1.6
    intervals), and the whole schedule slides across one interval and back every 74 ticks.

    Why: NVML's energy counter updates about every 100 ms. Reads at a fixed 10 Hz sit at one phase
    of that period for ever and see a change at every read, which says nothing about when in the
    previous 100 ms it happened; energy then lags by up to a read interval. Short gaps that often
    see no change, at every phase of the update period, bracket the updates from both sides and let
    `profiler.energy.update_grid.locate_updates` place them to a few milliseconds. The slide keeps the schedule
    from sitting in step with an update period equal to the interval.
    """
    sweep = k % (2 * _SWEEP_TICKS)
    slide = (sweep if sweep < _SWEEP_TICKS else 2 * _SWEEP_TICKS - sweep) / _SWEEP_TICKS
    return (k + slide + (k * _GOLDEN) % 1.0) * interval_s


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
        slow_budget_s: float = SLOW_TICK_BUDGET_S,
        counter_probe_s: float | None = None,
    ) -> None:
        """Prepare a sampler.

        Args:
            backend: where readings come from (NVML, a replay, a test double).
            samples_path: the samples file to append to; None keeps samples in memory only.
            interval_s: seconds between ticks (NVML's power and energy update about every 0.1 s).
            slow_every: read the slow fields (utilization, process memory, clocks, temperature)
                every this many ticks, or less often while they take more than `slow_budget_s`
                (see `_adapt`).
            pids: returns this run's process ids, for per-process memory.
            clock: returns epoch nanoseconds; a `Clock` by default.
            dither: spread the ticks' phase over the interval (see `_offset`); False reads at a
                fixed rate.
            slow_budget_s: the wall time a slow tick may take before slow reads back off.
            counter_probe_s: how long the energy counter's startup check reads, in the thread, besides
                the ticks (`profiler.gpu.counter_probe`); None: `PROBE_S` for a backend that reads
                hardware (its `probe_counter` is true, as NVML's), else no check; 0: no check.
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
        self.slow_budget_s = slow_budget_s
        self.dither = dither
        self.clock = clock or Clock()
        self._pids = pids or (lambda: frozenset({os.getpid()}))
        self.gpus: list[GpuInfo] = []
        self.stats = SamplerStats(slow_every=slow_every, slow_every_max=slow_every)
        self._until_slow = slow_every
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
        self.latest_rows: dict[str, tuple[Any, ...]] = {}
        """The latest reading of each device (for the live status line), by GPU uuid."""
        probe_default = PROBE_S if getattr(backend, "probe_counter", False) else 0.0
        self.counter_probe_s = probe_default if counter_probe_s is None else counter_probe_s
        self._probe: CounterProbe | None = None
        self._visibility: dict[int, dict[str, int]] | None = None  # kept from the backend at stop
        self._write_failed = False  # the samples file could not be opened: count rows, keep none
        self._forked = False
        forksafe.register(self)

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
            self._open_writer(self.samples_path)
        self._started_mono = time.monotonic()
        self.tick(slow=True)
        if self.counter_probe_s > 0:
            self._probe = CounterProbe(self.backend, self.gpus, duration_s=self.counter_probe_s)
        self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
        self._thread.start()
        return self.gpus

    def tick(self, slow: bool | None = None) -> None:
        """Read every device once and append the readings. The thread calls this; tests may too."""
        with self._lock:
            self.stats.ticks += 1
            self._until_slow -= 1
            due = self._until_slow <= 0
            slow = slow if slow is not None else due
            started = time.perf_counter()
            pids = self._safe_pids() if slow else None
            rows = []
            for info in self.gpus:
                if info.index in self._lost:
                    continue
                row = self._read(info, pids, slow)
                if row is not None:
                    rows.append(row)
            if slow:
                self._adapt(time.perf_counter() - started)
            if due:
                self._until_slow = self.stats.slow_every
            self._emit(rows)

    def _adapt(self, elapsed_s: float) -> None:
        """Account for one slow tick and set how many ticks apart they come.

        Process lists and per-process queries can take 50-100 ms a call (docs/gpus.md#slow-fields-and-backoff), and a
        slow tick delays that tick's fast readings. A slow tick over `slow_budget_s` doubles the ticks
        until the next (up to `MAX_SLOW_PERIOD_S` apart); one under a quarter of the budget halves
        them again, down to the configured `slow_every`.
        """
        stats = self.stats
        stats.slow_ticks += 1
        stats.slow_tick_total_s += elapsed_s
        stats.slow_tick_max_s = max(stats.slow_tick_max_s, elapsed_s)
        longest = max(self.slow_every, int(MAX_SLOW_PERIOD_S / self.interval_s))
        if elapsed_s > self.slow_budget_s and stats.slow_every < longest:
            stats.slow_every = min(longest, stats.slow_every * 2)
            stats.slow_backoffs += 1
        elif elapsed_s < self.slow_budget_s / 4 and stats.slow_every > self.slow_every:
            stats.slow_every = max(self.slow_every, stats.slow_every // 2)
        stats.slow_every_max = max(stats.slow_every_max, stats.slow_every)

    def _open_writer(self, path: Path) -> None:
        try:
            self._writer = SamplesWriter(path)
        except OSError as err:
            self._write_failed = True
            self._note_write_error(err, 0)

    def after_fork_in_child(self) -> None:
        """In a forked child: fresh locks, and no thread (it stayed with the parent) to stop or tick for."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._forked = True

    def stop(self, timeout_s: float = 2.0) -> SamplerStats:
        """Stop the thread, take a last reading (so the run's end is bracketed) and close. Idempotent."""
        if self._forked:  # the parent's sampler: its last reading and its backend are the parent's
            if self._writer is not None:
                self._writer.close()
                self._writer = None
            return self.stats
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stop.set()
            thread.join(timeout_s)
            self.tick(slow=True)
            self._probe_step(finish=True)  # a run shorter than the check: judged on the reads so far
            self.stats.wall_s = time.monotonic() - self._started_mono
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        self._visibility = self._process_visibility()  # the backend forgets it on close
        try:
            self.backend.close()
        except Exception:  # noqa: BLE001
            logger.debug("backend close failed", exc_info=True)
        return self.stats

    def latest_readings(self) -> list[tuple[float | None, float | None]]:
        """Each device's latest power (W) and memory in use (bytes); None where not read."""
        return [(row[_POWER_FIELD], row[_MEM_USED_FIELD]) for row in list(self.latest_rows.values())]

    def describe(self) -> dict[str, Any]:
        """The sampler's part of run.json: backend, devices (with the memory baseline each started
        from), clock anchor, settings and statistics."""
        gpus = []
        visibility = self._visibility if self._visibility is not None else self._process_visibility()
        for info in self.gpus:
            data = info.to_json()
            first = self.first_rows.get(info.uuid)
            mem_used = first[_MEM_USED_FIELD] if first is not None else None
            if mem_used is not None:
                data["mem_baseline_bytes"] = mem_used
            if self._probe is not None and info.uuid in self._probe.results:
                data["counter_probe"] = self._probe.results[info.uuid]
            if info.index in visibility:
                data["processes_seen"] = visibility[info.index]
            gpus.append(data)
        return {
            "gpu_backend": self.backend.name,
            "gpu_unavailable_reason": self.unavailable_reason,
            "gpus": gpus,
            "clock": self.clock.to_json() if hasattr(self.clock, "to_json") else None,
            "sampler": {"interval_s": self.interval_s, "slow_every": self.slow_every, **self.stats.to_json(),
                        "counter_probe_s": self.counter_probe_s,
                        "counter_probe_cpu_s": self._probe.cpu_s if self._probe is not None else None},
        }

    def _process_visibility(self) -> dict[int, dict[str, int]]:
        """What the backend saw of processes that are not this run's, where it keeps count (NVML)."""
        report = getattr(self.backend, "process_visibility", None)
        try:
            return report() if report is not None else {}
        except Exception:  # noqa: BLE001 - run.json is written whatever a backend does
            logger.debug("process visibility failed", exc_info=True)
            return {}

    def _run(self) -> None:
        cpu_start = time.thread_time()
        origin, k = time.monotonic(), 1
        next_tick = origin + self._offset(1)
        while not self._stop.wait(max(0.0, self._due(next_tick) - time.monotonic())):
            if time.monotonic() < next_tick:  # woken for the counter check, not for a tick
                self._probe_step()
                continue
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

    def _due(self, next_tick: float) -> float:
        """When the thread must next wake: the next tick, or the counter check's next read if sooner."""
        probe = self._probe
        return next_tick if probe is None or probe.done else min(next_tick, probe.next_read_s)

    def _probe_step(self, finish: bool = False) -> None:
        """One burst of the counter check's reads (or, with `finish`, its verdicts now)."""
        probe = self._probe
        if probe is None or probe.done:
            return
        with self._lock:
            try:
                if finish:
                    probe.finish()
                else:
                    probe.step()
            except Exception as err:  # noqa: BLE001 - the check must never stop the sampling or the agent
                self._note_error(err)
                probe.done = True

    def _offset(self, k: int) -> float:
        """When tick `k` is due, in seconds after the schedule's origin (see `tick_offset`)."""
        return tick_offset(k, self.interval_s) if self.dither else k * self.interval_s

    def _read(self, info: GpuInfo, pids: frozenset[int] | None, slow: bool) -> tuple[Any, ...] | None:
        # Stamped before the read: a backend reads energy and power first, microseconds later, while
        # a stamp after it would also carry every later call and each wait to get the GIL back from
        # a busy agent thread once a ctypes call returns (up to 5 ms a call).
        stamp = self.clock()
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
        return (stamp, info.uuid, reading.energy_j, reading.power_w, reading.mem_used_bytes,
                reading.proc_mem_bytes, reading.util_pct, reading.sm_clock_mhz, reading.mem_clock_mhz,
                reading.temp_c, format_pid_memory(reading.proc_mem_bytes_by_pid))

    def _emit(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self.stats.samples += len(rows)
        for row in rows:
            self.first_rows.setdefault(row[1], row)
            self.latest_rows[row[1]] = row
        if self._write_failed:
            self._note_write_error(None, len(rows))
            return
        if self._writer is None:
            self.memory.extend(rows)
            return
        try:
            self._writer.write(rows)
        except OSError as err:
            self._note_write_error(err, len(rows))

    def _safe_pids(self) -> frozenset[int] | None:
        try:
            return self._pids()
        except Exception:  # noqa: BLE001
            return None

    def _note_write_error(self, err: OSError | None, rows: int) -> None:
        """Count rows that could not be written; warn of each kind of failure once."""
        self.stats.samples_failed_write += rows
        if err is None:
            return
        if isinstance(err, FileRemovedError) and self.samples_path is not None:
            _state.warn_run_lost(self.samples_path.parent, f"the run directory {self.samples_path.parent} was "
                                 "deleted while the run was recording; its records are lost")
            return
        message = f"{type(err).__name__}: {err.strerror or err}"
        if message != self.stats.last_write_error:
            self.stats.last_write_error = message
            logger.warning("sessionprof: could not write GPU samples to %s (%s); lost samples are counted in "
                           "run.json", self.samples_path, err.strerror or err)

    def _note_error(self, err: BaseException) -> None:
        self.stats.read_errors += 1
        self.stats.last_error = f"{type(err).__name__}: {err}"
        # Rate-limited: the first error, then every hundredth.
        if self.stats.read_errors == 1 or self.stats.read_errors % 100 == 0:
            logger.warning("sessionprof: GPU read failed (%d so far): %s", self.stats.read_errors, err)
