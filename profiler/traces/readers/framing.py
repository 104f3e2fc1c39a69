"""Split a file into JSON values, however it is framed: JSON Lines, concatenated or pretty-printed
objects, or one document. Gzip is opened transparently.

Errors name the file, the line and what was expected. A last line cut short (a writer killed
mid-write) is skipped with a warning instead of failing the whole file, and so is the end of a
gzip stream cut short. The file is read line by line: only the value being decoded is in memory
(a file whose lines end in a lone CR, as old Mac OS wrote them, is one line to read, and so whole).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from profiler.errors import TraceFormatError

_decoder = json.JSONDecoder()
#: Lines a fast decoder may decline, before it has taken any, until it is no longer tried.
_FAST_TRIES = 8
_loads = json.loads
#: After a CR that no LF follows: where such a file's lines end.
_LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


def open_text(path: Path) -> IO[str]:
    """Open a text file, decompressing `.gz` (by magic number, not only by name). Closing the
    returned stream closes the file."""
    stream, _ = _open_bytes(path)
    # utf-8-sig: a byte-order mark at the start, as Windows tools write one, is not text.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="replace", newline="")


def _open_bytes(path: Path) -> tuple[IO[bytes], IO[bytes]]:
    """Return (byte stream, decompressed where the file is gzip; raw file, whose position is the
    bytes read from disk). Closing the byte stream closes the file."""
    try:
        raw = path.open("rb")
    except OSError as err:
        raise TraceFormatError(f"{path}: cannot open ({err.strerror or err})") from None
    magic = raw.read(2)
    raw.seek(0)
    if magic != b"\x1f\x8b":
        return raw, raw
    decompressed = gzip.GzipFile(fileobj=raw)
    decompressed.myfileobj = raw  # type: ignore[attr-defined]  # GzipFile does not close a file it was handed
    return decompressed, raw


def iter_json_values(
    path: Path, warn: Callable[[str], None], progress: Callable[[int], None] | None = None,
    fast: Callable[[bytes], Any] | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for every JSON value in the file, in order.

    Lines end at LF, CRLF or a lone CR; a UTF-8 byte-order mark before the first is skipped, and a
    line that is not UTF-8 is read with its bad bytes replaced. `progress` is called now and then
    with the number of bytes read from disk so far. `fast`, when given, is tried first on every line
    that could hold a whole value, as the file's bytes (its line ending included, no text made of
    them): what it returns (unless None) is yielded in place of the decoded line. A file whose first
    lines with anything on them it never takes stops trying it.

    Raises:
        TraceFormatError: invalid JSON, or text that is not JSON at all; the message names the line.
    """
    stream, raw = _open_bytes(path)
    where = [0]  # the line being read, for a message about a stream cut short
    with raw, stream:
        try:
            read_so_far = progress and (lambda: progress(raw.tell()))
            yield from _iter_values(path, stream, warn, read_so_far, where, fast)
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
    for data in _lines(stream):
        line_no += 1
        where[0] = line_no
        if progress is not None and line_no % 1024 == 0:
            progress()
        declined = False
        if fast is not None and not pending and not data.isspace():
            taken = fast(data)
            if taken is not None:
                yield line_no, taken
                fast_misses = -1  # it takes this file's lines: keep trying it
                continue
            declined = fast_misses >= 0
        line = data.decode("utf-8", "replace")
        if not pending:
            stripped = line.strip()
            if not stripped:
                continue
            if declined:  # a line with something on it that the fast decoder did not take
                fast_misses += 1
                if fast_misses >= _FAST_TRIES:
                    fast = None
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
        cut_short = not text.endswith(("\n", "\r"))
        text = text.strip()
        values = _decode_all(text)
        if values is None:
            _raise_if_broken(path, pending_start, text, strict_last_line=not cut_short)
            what = "last value" if _line_breaks(text, 0, len(text)) else "last line"
            warn(f"{path}:{pending_start}: {what} is incomplete (writer stopped mid-write?); skipped")
            return
        for value in values:
            yield pending_start, value


def _lines(stream: IO[bytes]) -> Iterator[bytes]:
    """The file's lines as its line breaks cut them, each with its break: LF, CRLF, or a CR that no
    LF follows (old Mac OS files; JSON cannot hold a raw CR inside a string, so a cut there never
    splits a value). A UTF-8 byte-order mark before the first is dropped: Windows editors and
    PowerShell write one."""
    first = True
    for data in stream:
        if first:
            first = False
            data = data.removeprefix(codecs.BOM_UTF8)
        cr = data.find(b"\r")
        if cr < 0 or (cr == len(data) - 2 and data[-1:] == b"\n"):
            yield data
        else:
            yield from filter(None, _LONE_CR.split(data))


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
            if not _line_breaks(text, err.pos, end) and (err.pos >= end or not strict_last_line):
                return  # the error is in the last line: unfinished, not broken
            # json counts lines by LF alone; count them as the file breaks them (a lone CR too).
            line = first_line + _line_breaks(text, 0, err.pos)
            column = err.pos - max(text.rfind("\n", 0, err.pos), text.rfind("\r", 0, err.pos))
            message = err.msg.removesuffix(" at")
            raise TraceFormatError(f"{path}:{line}: invalid JSON ({message} at column {column})") from None


def _line_breaks(text: str, start: int, end: int) -> int:
    """How many line breaks (LF, CRLF or a lone CR) text[start:end] holds."""
    return text.count("\n", start, end) + text.count("\r", start, end) - text.count("\r\n", start, end)


def _preview(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))
