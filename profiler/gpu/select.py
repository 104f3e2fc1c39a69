"""Choosing a GPU backend from a setting: `auto`, `nvml`, `none`, `replay:<samples file>` or an object."""

from __future__ import annotations

from pathlib import Path

from profiler.gpu.backend import GpuBackend, NullBackend

GPU_CHOICES = ("auto", "nvml", "none")


def select_backend(gpu: str | GpuBackend) -> GpuBackend:
    """Return the backend a `gpu=` setting names.

    Raises:
        ValueError: an unknown setting.
    """
    if not isinstance(gpu, str):
        return gpu
    if gpu == "none":
        return NullBackend()
    if gpu in ("auto", "nvml"):
        from profiler.gpu.nvml import NvmlBackend

        return NvmlBackend()
    if gpu.startswith("replay:"):
        from profiler.gpu.replay import ReplayBackend

        return ReplayBackend(Path(gpu.removeprefix("replay:")))
    raise ValueError(f"unknown gpu setting {gpu!r} (choose from {', '.join(GPU_CHOICES)} or replay:<samples.csv>)")
