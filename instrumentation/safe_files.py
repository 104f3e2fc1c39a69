"""Files the profiler writes without following links: whole-line appends and atomic private writes.

Every file is opened with `O_NOFOLLOW`, so a symbolic link planted where a run's file belongs
(`spans.jsonl -> ~/.bashrc`) makes the write fail instead of landing in the link's target. New files
are created `0600`; files written whole go to a fresh temporary (`O_EXCL`) renamed into place, which
replaces a link rather than writing through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path

#: `O_NOFOLLOW` and `O_CLOEXEC` where the platform has them (both are POSIX; 0 elsewhere).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Opening a FIFO planted in a file's place must fail at once, not wait for a reader; on a regular
#: file `O_NONBLOCK` changes nothing.
NONBLOCK = getattr(os, "O_NONBLOCK", 0)


class FileRemovedError(FileNotFoundError):
    """The file being appended to was deleted (with its directory, perhaps) while open."""


class LineAppender:
    """Appends whole lines to one file that several processes may share.

    Each `append` is one `write(2)` on an `O_APPEND` descriptor, so lines from several processes do
    not mix. When a write fails part-way (a full disk takes what fits, then raises), the part that
    was written is cut off again, so the file always ends at a line boundary and the next append
    starts a line of its own.
    """

    def __init__(self, path: Path, header: bytes = b"") -> None:
        """Prepare to append to `path` (opened on the first append); `header` starts a new file."""
        self.path = path
        self.header = header
        self._fd = -1
        self._torn = False  # a failed append could not be cut back: start the next on a new line
        self.lock = threading.Lock()
        """Serialises appends within the process; re-created in a forked child (see `forksafe`)."""

    def append(self, data: bytes) -> None:
        """Write `data` (whole lines) at the end of the file, or nothing of it.

        Raises:
            FileRemovedError: the file was deleted while open (nothing is written to the orphan).
            OSError: the file cannot be opened (a link, a missing directory) or the write failed.
        """
        with self.lock:
            if self._fd < 0:
                self._open()
            elif os.fstat(self._fd).st_nlink == 0:
                raise FileRemovedError(errno.ENOENT, "deleted while the run was recording", str(self.path))
            if self._torn:
                data = b"\n" + data
            self._write_whole(data)
            self._torn = False

    def close(self) -> None:
        """Close the file. Idempotent."""
        with self.lock:
            if self._fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = -1

    def after_fork_in_child(self) -> None:
        """A fresh lock: a thread of the parent may have held the old one at the fork."""
        self.lock = threading.Lock()

    def _open(self) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW | CLOEXEC | NONBLOCK, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(self.path))
            if info.st_size == 0 and self.header:
                os.write(fd, self.header)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _write_whole(self, data: bytes) -> None:
        view = memoryview(data)
        start = -1
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
                if view and start < 0:
                    # A short write (the disk filling up): where this line began, to cut it back if
                    # the rest fails. Only here: a whole write needs no extra call.
                    start = os.lseek(self._fd, 0, os.SEEK_CUR) - (len(data) - len(view))
        except OSError:
            if start >= 0:
                self._cut_back(start, start + len(data) - len(view))
            raise

    def _cut_back(self, start: int, end: int) -> None:
        """Remove the part of a failed line at [start, end), if nothing was appended after it."""
        try:
            if os.fstat(self._fd).st_size == end:
                os.ftruncate(self._fd, start)
                return
        except OSError:
            pass
        # Another process appended after our fragment, or truncating failed: end the fragment with
        # the next append, so it is one bad line that readers skip, not the start of a glued one.
        self._torn = True


def write_private(path: Path, chunks: Iterable[bytes]) -> None:
    """Write a whole file, mode 0600, through a temporary renamed into place.

    A link at `path` is replaced, never written through; readers never see half a file. Where
    `path` is a terminal, a pipe or another device (`-o /dev/stdout`), it is written directly.

    Raises:
        OSError: the directory cannot be written, or `path` is a link to a file or a directory.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        info = None
    if info is not None and not stat.S_ISREG(info.st_mode) and not stat.S_ISDIR(info.st_mode):
        _write_device(path, chunks)
        return
    if os.path.islink(path):
        raise OSError(errno.ELOOP, "is a symbolic link; not followed (give the target itself)", str(path))
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(temporary)  # left by a crash; unlink never follows a link
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | CLOEXEC, 0o600)
    except OSError as err:  # named after the file asked for, not our temporary
        raise OSError(err.errno, err.strerror, str(path)) from None
    try:
        with os.fdopen(fd, "wb") as stream:
            for chunk in chunks:
                stream.write(chunk)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _write_device(path: Path, chunks: Iterable[bytes]) -> None:
    with open(path, "wb", buffering=0) as stream:
        for chunk in chunks:
            stream.write(chunk)
