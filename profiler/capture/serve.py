"""`sessionprof serve`: the OTLP receiver and the GPU sampler as a long-lived process, for agents and
servers that sessionprof does not start; Ctrl-C or SIGTERM ends the run."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from instrumentation.run_dir import ENV_HOME, resolve_run_dir
from profiler.capture.receiver import DEFAULT_PORT, LOOPBACK
from profiler.capture.recording import Recording, RunResult
from profiler.pricing.prices import Prices


def is_loopback(host: str) -> bool:
    """Whether `host` only takes connections from this machine."""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def serve(*, run_dir: Path | None, gpu: str, interval_s: float, prices: Prices, host: str = LOOPBACK,
          port: int = DEFAULT_PORT, stream: TextIO | None = None,
          stop: threading.Event | None = None) -> RunResult:
    """Record one run from OTLP/HTTP on `host:port` and the GPUs until SIGINT or SIGTERM (or `stop`).

    Args:
        run_dir: the run's directory; default a new one under $SESSIONPROF_HOME (./.sessionprof/runs).
        gpu: `auto`, `nvml`, `none` or `replay:<samples.csv>`, as for `sessionprof run`.
        interval_s: seconds between GPU readings.
        prices: the prices recorded in run.json.
        host: the address to listen on; anything but loopback takes spans from the network.
        port: the port (4318, OTLP/HTTP's, by default).
        stream: where notices and the live line go (stderr).
        stop: set it to end the run (tests; signals set it too).

    Raises:
        ReceiverError: the port is taken or the address is not this machine's.
    """
    stream = stream if stream is not None else sys.stderr
    home = {ENV_HOME: os.environ[ENV_HOME]} if os.environ.get(ENV_HOME) else {}
    path = resolve_run_dir(run_dir, environ=home)
    if not is_loopback(host):
        print(f"sessionprof: warning: listening on {host}, not loopback: spans then come from the network, and "
              "anyone who can reach this port can add steps to the run", file=stream)
    recording = Recording(path, command=["sessionprof", "serve", "--host", host, "--port", str(port)], gpu=gpu,
                          interval_s=interval_s, prices=prices, host=host, port=port, stream=stream)
    stop = stop if stop is not None else threading.Event()
    with _stopping_on_signals(stop):
        endpoint = recording.start()
        print(f"sessionprof: recording into {path}: OTLP/HTTP on {host}:{recording.receiver.port}; give the "
              f"agent OTEL_EXPORTER_OTLP_ENDPOINT={endpoint}. Ctrl-C ends the run.", file=stream, flush=True)
        while not stop.wait(0.5):
            pass
        return recording.finish(0)


@contextlib.contextmanager
def _stopping_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (a second one while finishing is ignored); the previous handlers
    come back afterwards. Only the main thread can take signals; elsewhere, only `stop` ends the run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handle(_signum: int, _frame: Any) -> None:
        stop.set()

    for sig in signals:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
