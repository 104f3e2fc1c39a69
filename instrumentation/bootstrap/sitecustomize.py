"""Run by Python as any process that `sessionprof run` started begins: first the user's own
`sitecustomize` (the next one on the path), then span capture (`instrumentation.auto.bootstrap`).

Loaded before the program's first line, so it imports nothing heavy until it knows it is wanted,
and no exception of ours leaves it: a process that cannot be instrumented runs uninstrumented.
"""

from __future__ import annotations

import os
import sys


def _run_users_sitecustomize() -> None:
    """Import the `sitecustomize` this one shadows, as `site` would have, with its errors reported
    the way `site` reports them (a `SystemExit` it raises still ends the process, as it would)."""
    import importlib.machinery
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # noqa: BLE001 - reported as `site` reports it, then on with the program
        sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(err).__name__}: {err}\n")


def _start_capture() -> None:
    if not os.environ.get("SESSIONPROF_RUN_DIR"):
        return
    try:
        from instrumentation.auto import bootstrap
    except Exception as err:  # noqa: BLE001 - e.g. another interpreter, without OpenTelemetry
        sys.stderr.write(f"sessionprof: spans of this Python process are not recorded: cannot import the "
                         f"profiler here ({type(err).__name__}: {err}); install agent-session-profiler in the "
                         f"environment of {sys.executable}\n")
        return
    bootstrap()


try:
    _run_users_sitecustomize()
except Exception as error:  # noqa: BLE001 - a broken path entry must not stop the program
    sys.stderr.write(f"sessionprof: could not look for another sitecustomize: {type(error).__name__}\n")
try:
    _start_capture()
except Exception as error:  # noqa: BLE001 - the program runs on, uninstrumented
    sys.stderr.write(f"sessionprof: spans of this process are not recorded: {type(error).__name__}: {error}\n")
