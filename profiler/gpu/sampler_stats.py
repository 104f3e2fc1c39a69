"""`SamplerStats`: what the GPU sampler did and what it cost, as recorded in run.json."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    slow_ticks: int = 0
    """Ticks that also read the slow fields (utilization, process lists)."""
    slow_tick_max_s: float = 0.0
    slow_tick_total_s: float = 0.0
    """Wall time of the slow ticks, longest and summed."""
    slow_every: int = 0
    """Ticks between slow reads as the run ended (more than configured after slow ticks)."""
    slow_every_max: int = 0
    slow_backoffs: int = 0
    """How often a slow tick over `SLOW_TICK_BUDGET_S` made the slow reads rarer."""
    samples_failed_write: int = 0
    """Readings taken but not written (a full disk, an unwritable or deleted run directory)."""
    last_write_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the stats with the derived CPU share of one core."""
        share = self.thread_cpu_s / self.wall_s if self.wall_s > 0 else None
        return {"ticks": self.ticks, "samples": self.samples, "read_errors": self.read_errors,
                "lost_gpus": self.lost_gpus, "thread_cpu_s": self.thread_cpu_s, "wall_s": self.wall_s,
                "cpu_share_of_one_core": share, "last_error": self.last_error, "slow_ticks": self.slow_ticks,
                "slow_tick_max_s": self.slow_tick_max_s,
                "slow_tick_mean_s": self.slow_tick_total_s / self.slow_ticks if self.slow_ticks else None,
                "slow_every": self.slow_every, "slow_every_max": self.slow_every_max,
                "slow_backoffs": self.slow_backoffs, "samples_failed_write": self.samples_failed_write,
                "last_write_error": self.last_write_error}
