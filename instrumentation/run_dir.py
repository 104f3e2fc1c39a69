"""The run directory: where a run's spans, samples and metadata live, how it is named, and who may use it."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from instrumentation.safe_files import CLOEXEC, NOFOLLOW, NONBLOCK

SPANS_FILE = "spans.jsonl"
SAMPLES_FILE = "samples.csv"
META_FILE = "run.json"
REPORT_FILE = "report.html"
LOCK_FILE = ".run.json.lock"
FORMAT = "sessionprof-run/1"
#: Files that mark a directory as a run: an existing directory holding one of these may be reused.
RUN_FILES = frozenset({SPANS_FILE, SAMPLES_FILE, META_FILE})

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

#: What each writing process lost, summed over the processes into run.json's `dropped`.
LOSS_KEYS = ("spans", "spans_failed_export", "samples_failed_write", "sample_read_errors",
             "profiler_internal_errors", "otlp_rejected_spans")
#: How long a writer waits for another to finish with run.json before writing anyway.
META_LOCK_TIMEOUT_S = 5.0


class UnsafeRunDirError(PermissionError):
    """A run directory that is not safe to write: a link, another user's, or a folder of other files."""


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
    """Create the run directory readable by its owner only, or check that an existing one may be used.

    An existing directory is used only when it is a real directory (not a link), belongs to this
    user, and is empty or already a run's; its mode is then set to 0700 through the opened
    directory, never through a link.

    Raises:
        UnsafeRunDirError: the path is a link, another user's, or a directory of other files.
        OSError: the directory cannot be created (a read-only file system, a missing permission).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        created = False
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | NOFOLLOW | CLOEXEC)
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.ENOTDIR):
            what = "a symbolic link" if os.path.islink(path) else "not a directory"
            raise UnsafeRunDirError(f"refusing run directory {path}: it is {what}") from None
        raise
    try:
        info = os.fstat(fd)
        if not created:
            _check_existing(path, info)
        if stat.S_IMODE(info.st_mode) != 0o700:
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o700)
    finally:
        os.close(fd)
    return path


def _check_existing(path: Path, info: os.stat_result) -> None:
    if hasattr(os, "geteuid") and info.st_uid != os.geteuid():
        raise UnsafeRunDirError(f"refusing run directory {path}: it belongs to another user (uid {info.st_uid})")
    with os.scandir(path) as entries:
        names = {entry.name for entry in entries}
    if names and not names & RUN_FILES:
        raise UnsafeRunDirError(f"refusing run directory {path}: it holds other files and no run "
                                f"(give a new or empty directory)")


def write_meta(path: Path, meta: dict[str, Any]) -> None:
    """Replace run.json with `meta` (see `update_meta`)."""
    update_meta(path, lambda _previous: meta)


def update_meta(path: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Read run.json, apply `change` and write the result, with no other writer in between.

    Writers (the session, `sessionprof run`, child processes) take an advisory lock on a file
    beside run.json, so none loses another's update; one that cannot get it within
    `META_LOCK_TIMEOUT_S` writes anyway. The new file is written to a temporary created with
    `O_EXCL` and renamed into place (atomic, mode 0600, never through a link).

    Raises:
        OSError: run.json cannot be written (the directory is gone or read-only).
    """
    with _meta_lock(path):
        meta = change(read_meta(path))
        _replace_meta(path, {"format": FORMAT, **meta})


def _replace_meta(path: Path, meta: dict[str, Any]) -> None:
    temporary = path / f".{META_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # a crashed writer's (unlink never follows a link)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            json.dump(meta, stream, indent=2, default=str)
            stream.write("\n")
        os.replace(temporary, path / META_FILE)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


@contextlib.contextmanager
def _meta_lock(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # not POSIX: one writer at a time is the caller's affair
        yield
        return
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | NOFOLLOW | CLOEXEC | NONBLOCK, 0o600)
    except OSError:
        yield  # the write that follows fails with the reason, or succeeds unlocked
        return
    locked = False
    try:
        deadline = time.monotonic() + META_LOCK_TIMEOUT_S
        while not locked:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except BlockingIOError:
                if time.monotonic() > deadline:
                    break  # a stopped writer must not hang this one
                time.sleep(0.005)
        yield
    finally:
        if locked:
            # LOCK_UN frees the lock itself, even where a forked child still holds a copy of `fd`.
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def read_meta(path: Path) -> dict[str, Any]:
    """Read run.json (never through a link); an absent or unreadable file gives an empty dict."""
    try:
        fd = os.open(path / META_FILE, os.O_RDONLY | NOFOLLOW | CLOEXEC | NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return {}
        with os.fdopen(fd, "rb") as stream:
            meta = json.loads(stream.read())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def with_losses(meta: dict[str, Any], pid: int, losses: Mapping[str, Any]) -> dict[str, Any]:
    """`meta` with what process `pid` lost (counts under `LOSS_KEYS`, and its last internal error)
    in `writers`, and `dropped` summed again over every writing process."""
    writers = dict(meta.get("writers") or {})
    writers[str(pid)] = {**writers.get(str(pid), {}), **losses}
    dropped: dict[str, Any] = {key: sum(_count(w.get(key)) for w in writers.values()) for key in LOSS_KEYS}
    last = [w.get("profiler_last_internal_error") for w in writers.values() if w.get("profiler_last_internal_error")]
    dropped["profiler_last_internal_error"] = last[-1] if last else None
    return {**meta, "writers": writers, "dropped": dropped}


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
