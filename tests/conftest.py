"""Suite-wide fixtures: a guard against leaked sampler, receiver and live-line threads, and isolation
from the caller's env."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from profiler.capture.otlp_env import DESTINATION_VARIABLES

_ENV_TO_CLEAR = ("SESSIONPROF_RUN_DIR", "SESSIONPROF_HOME", "SESSIONPROF_SAMPLER", "SESSIONPROF_GPU_USD_PER_HOUR",
                 "SESSIONPROF_ENERGY_USD_PER_KWH", "SESSIONPROF_PUE", "SESSIONPROF_CARBON_G_PER_KWH",
                 "SESSIONPROF_REGION", "OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY",
                 # A developer's own OTLP settings would win over `sessionprof run`'s receiver.
                 *DESTINATION_VARIABLES)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)


_OWN_THREADS = ("sessionprof-gpu-sampler", "sessionprof-otlp-receiver", "sessionprof-live-line")


@pytest.fixture(autouse=True)
def _no_leaked_sampler() -> Iterator[None]:
    yield
    leaked = [t.name for t in threading.enumerate() if t.name in _OWN_THREADS and t.is_alive()]
    assert not leaked, f"sampler, receiver or live-line thread(s) left running: {leaked}"
