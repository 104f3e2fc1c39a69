"""Split a file into JSON values, however it is framed: JSON Lines, concatenated or pretty-printed
objects, or one document. Gzip is opened transparently.

Errors name the file, the line and what was expected. A last line cut short (a writer killed
mid-write) is skipped with a warning instead of failing the whole file, and so is the end of a
gzip stream cut short. The file is read line by line: only the value being decoded is in memory.
"""

from __future__ import annotations

import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from profiler.errors import TraceFormatError

_decoder = json.JSONDecoder()
#: Lines a fast decoder may decline, before it has taken any, until it is no longer tried.
_FAST_TRIES = 8
_loads = json.loads


def open_text(path: Path) -> IO[str]:
    """Open a text file, decompressing `.gz` (by magic number, not only by name). Closing the
    returned stream closes the file."""
    stream, raw = _open(path)
    if stream.buffer is not raw:
        # GzipFile does not close a file object it was handed; make it own the file.
        stream.buffer.myfileobj = raw  # type: ignore[attr-defined]
    return stream


def _open(path: Path) -> tuple[IO[str], IO[bytes]]:
    """Return (text stream, raw file): the raw file's position is the bytes read from disk."""
    stream, raw = _open_bytes(path)
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline=""), raw


def _open_bytes(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """Return (byte stream, decompressed where the file is gzip; raw file)."""
    try:
        raw = path.open("rb")
    except OSError as err:
        raise TraceFormatError(f"{path}: cannot open ({err.strerror or err})") from None
    magic = raw.read(2)
    raw.seek(0)
    return (gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw), raw


def iter_json_values(
    path: Path, warn: Callable[[str], None], progress: Callable[[int], None] | None = None,
    fast: Callable[[bytes], Any] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for every JSON value in the file, in order.

    Lines end at a line feed (LF or CRLF), as JSON Lines and pretty-printers write them; a line
    that is not UTF-8 is read with its bad bytes replaced. `progress` is called now and then with the
    number of bytes read from disk so far. `fast`, when given, is tried first on every line that
    could hold a whole value, as the file's bytes (no text made of them): what it returns (unless
    None) is yielded in place of the decoded line. A file whose first lines it never takes stops
    trying it.

    Raises:
        TraceFormatError: invalid JSON, or text that is not JSON at all; the message names the line.
    """
    stream, raw = _open_bytes(path)
    where = [0]  # the line being read, for a message about a stream cut short
    with raw, stream:
        try:
            yield from _iter_values(path, stream, warn, progress and (lambda: progress(raw.tell())), where, fast)
        except (EOFError, zlib.error) as err:
            warn(f"{path}:{where[0]}: compressed stream ends early or is damaged ({err}); read up to here")
        except (OSError, gzip.BadGzipFile) as err:
            raise TraceFormatError(f"{path}: cannot read ({err})") from None


def _iter_values(
    path: Path, stream: IO[bytes], warn: Callable[[str], None], progress: Callable[[], None] | None,
    where: list[int], fast: Callable[[bytes], Any] | None = None,
) -> Iterator[tuple[int, Any]]:
    line_no = 0
    fast_misses = 0
    pending: list[str] = []  # lines of a value that spans several lines
    pending_start = 0
    for data in stream:
        line_no += 1
        where[0] = line_no
        if progress is not None and line_no % 1024 == 0:
            progress()
        if fast is not None and not pending and not data.isspace():
            taken = fast(data)
            if taken is not None:
                yield line_no, taken
                fast_misses = -1  # it takes this file's lines: keep trying it
                continue
            if fast_misses >= 0:
                fast_misses += 1
                if fast_misses >= _FAST_TRIES:
                    fast = None
        line = data.decode("utf-8", "replace")
        if not pending:
            stripped = line.strip()
            if not stripped:
                continue
            try:
                yield line_no, _loads(stripped)
                continue
            except json.JSONDecodeError:
                if stripped[0] not in "{[":
                    raise TraceFormatError(
                        f"{path}:{line_no}: expected a JSON object or array (a trace), found "
                        f"{_preview(stripped)}") from None
                pending_start = line_no
        elif line[:1] in "{[" and len(pending) > 1:
            # A value starts in column 0 while another is still open: if what is open is already
            # broken (not merely unfinished), say where now rather than at the end of the file.
            _raise_if_broken(path, pending_start, "".join(pending))
        pending.append(line)
        # A multi-line value: decode what has accumulated only when this line could close it
        # (a one-line value, or a closing brace in column 0 as pretty-printers write it).
        if (len(pending) == 1 or line[:1] in "}]") and line.rstrip().endswith(("}", "]")):
            values = _decode_all("".join(pending))
            if values is not None:
                for value in values:
                    yield pending_start, value
                pending = []
    if progress is not None:
        progress()
    if pending:
        text = "".join(pending)
        # A writer killed mid-write leaves a last line without its newline; a last line that does
        # end in one but still fails to parse before its end is broken, not cut short.
        cut_short = not text.endswith("\n")
        text = text.strip()
        values = _decode_all(text)
        if values is None:
            _raise_if_broken(path, pending_start, text, strict_last_line=not cut_short)
            what = "last line" if "\n" not in text else "last value"
            warn(f"{path}:{pending_start}: {what} is incomplete (writer stopped mid-write?); skipped")
            return
        for value in values:
            yield pending_start, value


def _decode_all(text: str) -> list[Any] | None:
    """Decode one or more concatenated JSON values; None if the text is not (yet) complete."""
    values, index, end = [], 0, len(text)
    while True:
        while index < end and text[index] in " \t\r\n,":
            index += 1
        if index >= end:
            return values
        try:
            value, index = _decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            return None
        values.append(value)


def _raise_if_broken(path: Path, first_line: int, text: str, *, strict_last_line: bool = False) -> None:
    """Raise if `text` has an error before its last line; an error in the last line means the text
    is unfinished (cut short), not broken."""
    index, end = 0, len(text.rstrip())
    while index < end:
        while index < end and text[index] in " \t\r\n,":
            index += 1
        if index >= end:
            return
        try:
            _, index = _decoder.raw_decode(text, index)
        except json.JSONDecodeError as err:
            if "\n" not in text[err.pos:end] and (err.pos >= end or not strict_last_line):
                return  # the error is in the last line: unfinished, not broken
            message, line = err.msg.removesuffix(" at"), first_line + err.lineno - 1
            raise TraceFormatError(f"{path}:{line}: invalid JSON ({message} at column {err.colno})") from None


def _preview(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))
