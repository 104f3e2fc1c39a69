"""The run directory: where a run's spans, samples and metadata live, and how it is named."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

SPANS_FILE = "spans.jsonl"
META_FILE = "run.json"
FORMAT = "sessionprof-run/1"

#: The run's own directory; `sessionprof run` sets it for the agent it starts.
ENV_RUN_DIR = "SESSIONPROF_RUN_DIR"
#: The folder under which new run directories are made (default `./.sessionprof/runs`).
ENV_HOME = "SESSIONPROF_HOME"
#: `off` when another process (the `sessionprof run` parent) samples the GPUs.
ENV_SAMPLER = "SESSIONPROF_SAMPLER"
#: The session a child process's steps belong to, and the W3C traceparent of the span they hang under.
ENV_SESSION_ID = "SESSIONPROF_SESSION_ID"
ENV_TRACEPARENT = "SESSIONPROF_TRACEPARENT"
#: The process that set these variables: it does not join its own run as a child would.
ENV_PARENT_PID = "SESSIONPROF_PARENT_PID"
#: Which installed OpenTelemetry instrumentors a Python child activates: `auto`, `none` or a comma list.
ENV_INSTRUMENT = "SESSIONPROF_INSTRUMENT"
DEFAULT_HOME = Path(".sessionprof") / "runs"


def new_run_id() -> str:
    """A sortable, unique run id: local date and time plus random hex."""
    return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(3).hex()  # not `secrets`: it loads hashlib


def resolve_run_dir(run_dir: str | Path | None = None,
                    environ: dict[str, str] | os._Environ[str] | None = None) -> Path:
    """The directory for a new run: the argument, else $SESSIONPROF_RUN_DIR, else a new one under
    $SESSIONPROF_HOME (default `./.sessionprof/runs`)."""
    environ = os.environ if environ is None else environ
    if run_dir is not None:
        return Path(run_dir)
    if environ.get(ENV_RUN_DIR):
        return Path(environ[ENV_RUN_DIR])
    home = Path(environ.get(ENV_HOME) or DEFAULT_HOME)
    return home / new_run_id()


def create_run_dir(path: Path) -> Path:
    """Create the run directory (and parents) readable by its owner only."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A directory we do not own (an existing shared folder) keeps its mode.
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)
    return path


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Write run.json atomically (write a temporary file, then rename), mode 0600."""
    target = path / META_FILE
    temporary = path / f".{META_FILE}.{os.getpid()}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        json.dump({"format": FORMAT, **meta}, stream, indent=2, default=str)
        stream.write("\n")
    os.replace(temporary, target)


def read_meta(path: Path) -> dict[str, Any]:
    """Read run.json; an absent or unreadable file gives an empty dict."""
    try:
        return json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}

