"""Split a file into JSON values, however it is framed: JSON Lines, concatenated or pretty-printed
objects, or one document. Gzip is opened transparently.

Errors name the file, the line and what was expected. A last line cut short (a writer killed
mid-write) is skipped with a warning instead of failing the whole file, and so is the end of a
gzip stream cut short. Given a `Skip` callback, text that is not JSON (a program's own output
between the spans it prints) is handed to it instead of failing, and reading goes on. The file is
read line by line: only the value being decoded is in memory (a file whose lines end in a lone CR,
as old Mac OS wrote them, is one line to read, and so whole).
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import re
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from profiler.errors import TraceFormatError

_decoder = json.JSONDecoder()
Skip = Callable[[int, int, str, str], None]
"""Called with (first line, line count, one-line reason naming the file and line, the text) for
each stretch of the file that is not JSON, where `iter_json_values` is to go on past it."""
#: Lines a fast decoder may decline, before it has taken any, until it is no longer tried.
_FAST_TRIES = 8
_loads = json.loads
#: The first bytes of the lines that may start a value in column 0 (a line is never empty).
_OPENERS = frozenset(b"{[")
#: Bytes read from the file at a time. A JSON Lines trace's lines run to hundreds of kB; cutting
#: them out of io's default 8 kB reads took 3.6x the CPU time (`benchmarks/techniques.py`).
_READ_BUFFER_BYTES = 1 << 20
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


def iter_json_values(
    path: Path, warn: Callable[[str], None], progress: Callable[[int], None] | None = None,
    fast: Callable[[bytes], Any] | None = None, skip: Skip | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for every JSON value in the file, in order.

    Lines end at LF, CRLF or a lone CR; a UTF-8 byte-order mark before the first is skipped, and a
    line that is not UTF-8 is read with its bad bytes replaced. `progress` is called now and then
    with the number of bytes read from disk so far. `fast`, when given, is tried first on every line
    that could hold a whole value, as the file's bytes (its line ending included, no text made of
    them): what it returns (unless None) is yielded in place of the decoded line. A file whose first
    lines with anything on them it never takes stops trying it.

    With `skip`, a line that is not JSON, or a value broken before its last line, goes to `skip`
    and the next line is read afresh: a line that starts a value must itself be JSON up to its end
    (a print such as `[INFO] ...` or `{'a': 1}` is not), so a stray line never swallows the
    values after it.

    Raises:
        TraceFormatError: invalid JSON, or text that is not JSON at all (without `skip`); the
            message names the line.
    """
    stream, raw = _open_bytes(path)
    where = [0]  # the line being read, for a message about a stream cut short
    with raw, stream:
        try:
            read_so_far = progress and (lambda: progress(raw.tell()))
            yield from _iter_values(path, stream, warn, read_so_far, where, fast, skip)
        except (EOFError, zlib.error) as err:
            warn(f"{path}:{where[0]}: compressed stream ends early or is damaged ({err}); read up to here")
        except (OSError, gzip.BadGzipFile) as err:
            raise TraceFormatError(f"{path}: cannot read ({err})") from None


def _iter_values(
    path: Path, stream: IO[bytes], warn: Callable[[str], None], progress: Callable[[], None] | None,
    where: list[int], fast: Callable[[bytes], Any] | None = None, skip: Skip | None = None,
) -> Iterator[tuple[int, Any]]:
    fast_misses = 0
    pending: list[str] = []  # lines of a value that spans several lines
    pending_start = 0
    replay: deque[tuple[int, bytes]] = deque()  # lines to read again, before the file's next
    for line_no, data in _numbered(_lines(stream), replay):
        where[0] = line_no
        if progress is not None and line_no % 1024 == 0:
            progress()
        declined = False
        if data[0] in _OPENERS and skip is not None and len(pending) > 1:
            # A value starts in column 0 while another is open: the open one must take that
            # bracket (after `[`, `,` or a key) to go on; else it was not JSON.
            broken = _broken(path, pending_start, "".join(pending) + data[:1].decode(), strict_last_line=True)
            if broken is not None:
                if pending[0].strip() in ("[", "{") and pending[1][:1] in "{[":
                    # A stray opener (a lone `[` printed) took in the values after it, which a
                    # pretty-printer would have indented: leave it, and read them again.
                    skip(pending_start, 1, f"{path}:{pending_start}: {_preview(pending[0].strip())} opens a value "
                         "that the lines after it do not continue", pending[0])
                    replay.extend(zip(range(pending_start + 1, line_no), (p.encode() for p in pending[1:]),
                                      strict=True))
                    replay.append((line_no, data))
                    pending = []
                    continue
                skip(pending_start, len(pending), broken, "".join(pending))
                pending = []
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
                    reason = f"{path}:{line_no}: expected a JSON object or array (a trace), found {_preview(stripped)}"
                    if skip is None:
                        raise TraceFormatError(reason) from None
                    skip(line_no, 1, reason, stripped)
                    continue
                # A line with its line break must be a value's start, at least (a lone bracket, as
                # pretty-printers start, is); one without is the file's last, which may be cut short.
                whole_line = skip is not None and len(stripped) > 1 and data.endswith((b"\n", b"\r"))
                broken = _broken(path, line_no, stripped, strict_last_line=True) if whole_line else None
                if broken is not None:  # not even the start of a value: `[INFO] ...`, `{'a': 1}`
                    skip(line_no, 1, broken, stripped)
                    continue
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
        broken = _broken(path, pending_start, text, strict_last_line=not cut_short) if values is None else None
        if broken is not None and skip is not None:
            skip(pending_start, _line_breaks(text, 0, len(text)) + 1, broken, text)
            return
        if values is None:
            _raise_if_broken(path, pending_start, text, strict_last_line=not cut_short)
            what = "last value" if _line_breaks(text, 0, len(text)) else "last line"
            warn(f"{path}:{pending_start}: {what} is incomplete (writer stopped mid-write?); skipped")
            return
        for value in values:
            yield pending_start, value


def _numbered(lines: Iterator[bytes], replay: deque[tuple[int, bytes]]) -> Iterator[tuple[int, bytes]]:
    """Each line with its number, and after each the lines put in `replay` meanwhile, in order."""
    for line_no, data in enumerate(lines, start=1):
        yield line_no, data
        while replay:
            yield replay.popleft()


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
    message = _broken(path, first_line, text, strict_last_line=strict_last_line)
    if message is not None:
        raise TraceFormatError(message)


def _broken(path: Path, first_line: int, text: str, *, strict_last_line: bool = False) -> str | None:
    """Where `text` is broken (`_raise_if_broken`), as a one-line message naming the file and line;
    None where it is whole or only unfinished."""
    index, end = 0, len(text.rstrip())
    while index < end:
        while index < end and text[index] in " \t\r\n,":
            index += 1
        if index >= end:
            return None
        try:
            _, index = _decoder.raw_decode(text, index)
        except json.JSONDecodeError as err:
            if not _line_breaks(text, err.pos, end) and (err.pos >= end or not strict_last_line):
                return None  # the error is in the last line: unfinished, not broken
            # json counts lines by LF alone; count them as the file breaks them (a lone CR too).
            line = first_line + _line_breaks(text, 0, err.pos)
            column = err.pos - max(text.rfind("\n", 0, err.pos), text.rfind("\r", 0, err.pos))
            message = err.msg.removesuffix(" at")
            return f"{path}:{line}: invalid JSON ({message} at column {column})"
    return None


def _line_breaks(text: str, start: int, end: int) -> int:
    """How many line breaks (LF, CRLF or a lone CR) text[start:end] holds."""
    return text.count("\n", start, end) + text.count("\r", start, end) - text.count("\r\n", start, end)


def _preview(text: str) -> str:
    return repr(text[:40] + ("..." if len(text) > 40 else ""))
