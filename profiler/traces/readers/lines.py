"""Open a trace or telemetry file (gzip transparently) and cut it into lines, none longer than a
bound: a gzip bomb or a file without line breaks is refused before it fills memory."""

from __future__ import annotations

import codecs
import gzip
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from profiler.errors import TraceFormatError

#: Bytes read from the file at a time. A JSON Lines trace's lines run to hundreds of kB; cutting
#: them out of io's default 8 kB reads took 3.6x the CPU time (`benchmarks/techniques.py`).
_READ_BUFFER_BYTES = 1 << 20
#: The default bound on one line or value, and the variable that sets another (in MiB).
DEFAULT_MAX_VALUE_MIB = 256
MAX_VALUE_ENV = "SESSIONPROF_MAX_VALUE_MB"


def max_value_bytes() -> int:
    """The most one line, or one value over several lines, may hold: `$SESSIONPROF_MAX_VALUE_MB`
    MiB, else 256 MiB (a 100 MB single-document trace reads; a gzip bomb does not inflate).

    Raises:
        TraceFormatError: the variable is set to something other than a positive number.
    """
    text = os.environ.get(MAX_VALUE_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_VALUE_MIB << 20
    try:
        mib = float(text)
    except ValueError:
        mib = -1.0
    if not 0 < mib < 1 << 30:
        raise TraceFormatError(f"{MAX_VALUE_ENV}={text!r}: expected a positive number of MiB")
    return int(mib * (1 << 20))


def open_text(path: Path) -> IO[str]:
    """Open a text file, decompressing `.gz` (by magic number, not only by name). Closing the
    returned stream closes the file."""
    stream, _ = open_bytes(path)
    # utf-8-sig: a byte-order mark at the start, as Windows tools write one, is not text.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")


def open_bytes(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """Return (byte stream, decompressed where the file is gzip; raw file, whose position is the
    bytes read from disk). Closing the byte stream closes the file."""
    try:
        raw = path.open("rb", buffering=_READ_BUFFER_BYTES)
    except OSError as err:
        raise TraceFormatError(f"{path}: cannot open ({err.strerror or err})") from None
    magic = raw.read(2)
    raw.seek(0)
    if magic != b"\x1f\x8b":
        return raw, raw
    decompressed = gzip.GzipFile(fileobj=raw)
    decompressed.myfileobj = raw  # type: ignore[attr-defined]  # GzipFile does not close a file it was handed
    return decompressed, raw


class LineTooLong(Exception):
    """A line over the bound (raised by `lines`; the reader knows which line it was)."""



def lines(stream: IO[bytes], limit: int) -> Iterator[bytes]:
    """The file's lines as its line breaks cut them, each with its break: LF, CRLF, or a CR that no
    LF follows (old Mac OS files; JSON cannot hold a raw CR inside a string, so a cut there never
    splits a value). A UTF-8 byte-order mark before the first is dropped: Windows editors and
    PowerShell write one. No line of more than `limit` bytes is held (`LineTooLong`)."""
    # read1: no more than one read below it, so that what came before a damaged end is kept.
    read = getattr(stream, "read1", stream.read)
    parts: list[bytes] = []  # the start of a line that goes on in the next piece read
    held = 0
    first = True
    while chunk := read(_READ_BUFFER_BYTES):
        if first:
            first = False
            while len(chunk) < len(codecs.BOM_UTF8) and (more := read(_READ_BUFFER_BYTES)):
                chunk += more
            chunk = chunk.removeprefix(codecs.BOM_UTF8)
            if not chunk:
                continue
        if parts and parts[-1].endswith(b"\r"):  # a CR at the end of the last piece: CRLF, or a lone CR
            if chunk.startswith(b"\n"):
                parts.append(b"\n")
                chunk = chunk[1:]
            yield b"".join(parts)
            parts, held = [], 0
            if not chunk:
                continue
        lines = chunk.splitlines(keepends=True)  # at LF, CRLF and a lone CR, as bytes split
        last = lines.pop()
        if parts and lines:
            lines[0] = b"".join([*parts, lines[0]])
            parts, held = [], 0
        if lines:
            if limit < _READ_BUFFER_BYTES or len(lines[0]) > limit:
                _check_lengths(lines, limit)
            yield from lines
        # The last line is whole only if it ends in LF: one ending in CR may be the CR of a CRLF.
        if last.endswith(b"\n"):
            if parts:
                last = b"".join([*parts, last])
                parts, held = [], 0
            if len(last) > limit:
                raise LineTooLong
            yield last
        else:
            parts.append(last)
            held += len(last)
            if held > limit:
                raise LineTooLong
    if parts:
        yield b"".join(parts)


def _check_lengths(lines: list[bytes], limit: int) -> None:
    if max(map(len, lines)) > limit:
        raise LineTooLong
