"""The exceptions callers branch on; everything else is a plain ValueError or RuntimeError."""

from __future__ import annotations


class ProfilerError(Exception):
    """Base class of every error this package raises on purpose."""


class GpuUnavailableError(ProfilerError):
    """No usable NVIDIA GPU: no driver, no library, or no device."""


class GpuReadError(ProfilerError):
    """A transient failure reading one device; the sampler counts it and goes on."""


class TraceFormatError(ProfilerError):
    """A trace or samples file that cannot be read; the message names the file and the place."""


class ConfigError(ProfilerError, ValueError):
    """A bad price, factor or option given by flag, environment or config file."""


class ReceiverError(ProfilerError):
    """The OTLP receiver cannot listen where it was asked to (the port is taken, the address is not ours)."""
