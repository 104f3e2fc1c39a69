"""Split a file into JSON values, however it is framed: JSON Lines, concatenated or pretty-printed
objects, or one document. Gzip is opened transparently.

Errors name the file, the line and what was expected. A line cut short mid-write (a writer killed,
or a full disk) is skipped with a warning that counts such lines, wherever it is in the file, and
so is the end of a gzip stream cut short. Given a `Skip` callback, text that is not JSON (a
program's own output between the spans it prints) is handed to it instead of failing, and reading
goes on. The file is read a line at a time (`lines`), and time is linear in its size whatever its
layout: a value over several lines is decoded when a line in column 0 could close it, and after a
failed try not before its lines have doubled. No line or value may hold more than
`max_value_bytes()` (a gzip bomb is refused, not inflated).
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from profiler.errors import TraceFormatError
from profiler.traces.readers.json_text import (
    FIRST_KEY,
    after_cut_short,
    broken,
    broken_before_last_line,
    content_end,
    cut_short,
    decode_all,
    decode_prefix,
    first_error,
    line_breaks,
    preview,
    raise_if_broken,
)
from profiler.traces.readers.lines import MAX_VALUE_ENV, LineTooLong, lines, max_value_bytes, open_bytes

Skip = Callable[[int, int, str, str], None]
"""Called with (first line, line count, one-line reason naming the file and line, the text) for
each stretch of the file that is not JSON, where `iter_json_values` is to go on past it."""
#: Lines a fast decoder may decline, before it has taken any, until it is no longer tried.
_FAST_TRIES = 8
_loads = json.loads
#: The first bytes of the lines where a value over several lines may end, or a new one start.
_VALUE_EDGES = frozenset((b"{", b"[", b"}", b"]"))
#: How many times a value open over several lines is checked for being a line cut short instead:
#: at most two such lines can follow a cut-short line before the two cannot be one value.
_TORN_CHECKS = 2
def iter_json_values(
    path: Path, warn: Callable[[str], None], progress: Callable[[int], None] | None = None,
    fast: Callable[[bytes], Any] | None = None, torn: list[int] | None = None, skip: Skip | None = None,
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for every JSON value in the file, in order.

    Lines end at LF, CRLF or a lone CR; a UTF-8 byte-order mark before the first is skipped, and a
    line that is not UTF-8 is read with its bad bytes replaced. `progress` is called now and then
    with the number of bytes read from disk so far. `fast`, when given, is tried first on every line
    that could hold a whole value, as the file's bytes (its line ending included, no text made of
    them): what it returns (unless None) is yielded in place of the decoded line. A file whose first
    lines with anything on them it never takes stops trying it. The numbers of the lines skipped
    as cut short mid-write are appended to `torn`, when given (one warning names them).

    With `skip`, a line that is not JSON, or a value broken before its last line, goes to `skip`
    and the next line is read afresh: a line that starts a value must itself be JSON up to its end
    (a print such as `[INFO] ...` or `{'a': 1}` is not), so a stray line never swallows the
    values after it.

    Raises:
        TraceFormatError: invalid JSON or text that is not JSON at all (without `skip`), JSON nested
            too deeply, or a line or value over `max_value_bytes()`; the message names the line.
    """
    limit = max_value_bytes()
    stream, raw = open_bytes(path)
    reader = _ValueReader(path, warn, fast, limit, skip)
    with raw, stream:
        try:
            report = progress and (lambda: progress(raw.tell()))
            yield from reader.values(enumerate(lines(stream, limit), 1), report)
        except (EOFError, zlib.error) as err:
            warn(f"{path}:{reader.line_no}: compressed stream ends early or is damaged ({err}); read up to here")
        except (OSError, gzip.BadGzipFile) as err:
            raise TraceFormatError(f"{path}: cannot read ({err})") from None
        except LineTooLong:
            raise TraceFormatError(_too_long(path, reader.line_no + 1, limit)) from None
        except RecursionError:
            raise TraceFormatError(f"{path}:{reader.value_line}: JSON nested too deeply to read") from None
        finally:
            if reader.torn:
                _warn_torn(path, reader.torn, warn)
                if torn is not None:
                    torn.extend(reader.torn)


def _warn_torn(path: Path, lines: list[int], warn: Callable[[str], None]) -> None:
    named = ", ".join(map(str, lines[:5])) + (f" and {len(lines) - 5} more" if len(lines) > 5 else "")
    warn(f"{path}: {len(lines)} line(s) cut short mid-write skipped (line {named}); what they held is lost")


def _too_long(path: Path, line_no: int, limit: int) -> str:
    return (f"{path}:{line_no}: a line or value of more than {limit >> 20} MiB; refused (set "
            f"{MAX_VALUE_ENV} to read larger ones)")


@dataclass
class _ValueReader:
    """The state of `iter_json_values`: the value open over several lines, and the lines skipped."""

    path: Path
    warn: Callable[[str], None]
    fast: Callable[[bytes], Any] | None
    limit: int
    skip: Skip | None = None
    line_no: int = 0
    value_line: int = 0
    """The line where the value being decoded starts."""
    torn: list[int] = field(default_factory=list)
    fast_misses: int = 0
    pending: list[bytes] = field(default_factory=list)
    """The lines of a value that spans several, as read (line ends included)."""
    pending_start: int = 0
    pending_bytes: int = 0
    next_try_bytes: int = 0
    """How much the open value must hold before it is decoded again, having failed (see `_continue`)."""
    torn_checks: int = 0
    last_whole: bytes = b""
    """The last line that held a whole value (where a line cut short mid-write is looked for)."""

    def values(self, lines: Iterator[tuple[int, bytes]], progress: Callable[[], None] | None
               ) -> Iterator[tuple[int, Any]]:
        """Yield (line number, value) of every value of `lines`, numbered from 1."""
        queue: deque[tuple[int, bytes]] = deque()  # lines to read again after a line cut short
        while True:
            item = queue.popleft() if queue else next(lines, None)
            if item is None:
                break
            self.line_no, data = item
            if progress is not None and self.line_no % 1024 == 0:
                progress()
            if not self.pending:
                yield from self._start(data)
            elif data[:1] in _VALUE_EDGES or self.pending_bytes + len(data) > self.limit or queue:
                yield from self._continue(data, queue)
            else:  # a line inside a value (most lines of a pretty-printed one): it only joins it
                self.pending.append(data)
                self.pending_bytes += len(data)
        if progress is not None:
            progress()
        while self.pending:
            yield from self._finish(queue)
            while queue:
                self.line_no, data = queue.popleft()
                yield from (self._continue(data, queue) if self.pending else self._start(data))

    def _start(self, data: bytes) -> Iterator[tuple[int, Any]]:
        """A line outside any value: a whole value, the first line of one, or a line cut short."""
        fast = self.fast
        declined = False
        self.value_line = self.line_no
        if fast is not None and not data.isspace():
            taken = fast(data)
            if taken is not None:
                self.fast_misses = -1  # it takes this file's lines: keep trying it
                self.last_whole = data
                yield self.line_no, taken
                return
            declined = self.fast_misses >= 0
        stripped = data.decode("utf-8", "replace").strip()
        if not stripped:
            return
        if declined:  # a line with something on it that the fast decoder did not take
            self.fast_misses += 1
            if self.fast_misses >= _FAST_TRIES:
                self.fast = None
        try:
            value = _loads(stripped)
        except json.JSONDecodeError:
            if stripped[0] not in "{[":
                self._not_json(self.line_no, 1, f"{self.path}:{self.line_no}: expected a JSON object or array "
                               f"(a trace), found {preview(stripped)}", stripped)
                return
        else:
            self.last_whole = data
            yield self.line_no, value
            return
        glued = after_cut_short(stripped, self.last_whole)
        if glued is not None:  # a line cut short mid-write, and the next write went on in the same line
            self.torn.append(self.line_no)
            for value in glued:
                yield self.line_no, value
            return
        # A whole line (a last line without its break may be cut short) that fails before its end is
        # not even a value's start (`[INFO] ...`, `{'a': 1}`); a lone bracket, as pretty-printers
        # start, is one.
        if data.endswith((b"\n", b"\r")) and not cut_short(stripped + "\n", ""):
            self._not_json(self.line_no, 1, broken(self.path, self.line_no, stripped, strict_last_line=True) or "",
                           stripped)
            return
        self.pending, self.pending_start, self.pending_bytes = [data], self.line_no, len(data)
        self.next_try_bytes, self.torn_checks = 0, 0

    def _continue(self, data: bytes, queue: deque[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
        """A line of the value open over several lines.

        The value is decoded when a line in column 0 closes a bracket, as pretty-printers end a
        value; where that fails (`indent=0` closes every bracket in column 0), not again until the
        lines have doubled, so that the time stays linear in the file's size.
        """
        if (self.torn_checks < _TORN_CHECKS and data[:1] in (b"{", b"[")
                and data.rstrip().endswith((b"}", b"]")) and self._cut_short_before(data)):
            self._skip_cut_short(data, queue)
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes > self.limit:
            raise_if_broken(self.path, self.pending_start, self._pending_text())  # what is wrong, if anything
            raise TraceFormatError(_too_long(self.path, self.pending_start, self.limit))
        if data[:1] not in (b"}", b"]") or self.pending_bytes < self.next_try_bytes:
            return
        self.value_line = self.pending_start
        text = self._pending_text()
        values, index, error = decode_prefix(text)
        if error is not None and not values and self._fails_where_first_line_ends(text, error.pos):
            self._skip_cut_short(None, queue)
            return
        message = broken_before_last_line(self.path, self.pending_start, text, error) if error else None
        start = self.pending_start
        if values:
            rest = text[index:]
            self.pending_start += line_breaks(text, 0, index)
            self.pending = [rest.encode("utf-8")] if rest.strip() else []
            self.pending_bytes = len(self.pending[0]) if self.pending else 0
        self.next_try_bytes = 2 * self.pending_bytes
        for value in values:
            yield start, value
        if message is not None:  # broken, not merely unfinished
            self._set_aside(message, queue)

    def _cut_short_before(self, data: bytes) -> bool:
        """Whether `data`, a whole value on its line, shows the open value's first line to be a line cut
        short: the open lines and this one cannot be one value, and fail no earlier than where the open
        lines end, or than where the first of them ends."""
        line = data.decode("utf-8", "replace")
        try:
            alone = _loads(line)
        except json.JSONDecodeError:
            return False
        if not alone:
            return False
        self.torn_checks += 1
        before = self._pending_text()
        return cut_short(before, line) or self._fails_where_first_line_ends(before + line, first_error(before + line))

    def _fails_where_first_line_ends(self, text: str, error: int) -> bool:
        """Whether decoding `text` (the open lines, and more) fails between the end of the first line's
        content and the start of the second's: the first is a line cut short, which the second cannot
        go on from."""
        if len(self.pending) < 2:
            return False
        first = len(self.pending[0].decode("utf-8", "replace"))
        second = text[first:first + 256]
        return content_end(text[:first]) <= error <= first + len(second) - len(second.lstrip())

    def _skip_cut_short(self, data: bytes | None, queue: deque[tuple[int, bytes]]) -> None:
        """Skip the open value's first line (cut short); read the lines after it again, and `data`."""
        self.torn.append(self.pending_start)
        again = [(self.pending_start + i, line) for i, line in enumerate(self.pending[1:], 1)]
        if data is not None:
            again.append((self.line_no, data))
        queue.extendleft(reversed(again))
        self.pending = []

    def _finish(self, queue: deque[tuple[int, bytes]]) -> Iterator[tuple[int, Any]]:
        """The file ended inside a value: cut short at the end, or a line cut short earlier."""
        text = self._pending_text()
        if self._whole_line_follows() or self._fails_where_first_line_ends(text, first_error(text)):
            # A line, then lines that cannot go on from it: the first was cut short.
            self._skip_cut_short(None, queue)
            return
        # A writer killed mid-write leaves a last line without its newline; a last line that does
        # end in one is cut short only if it fails no earlier than its end (else it is broken).
        ended = text.endswith(("\n", "\r"))
        text = text.strip()
        unfinished = not ended or cut_short(text + "\n", "")
        self.value_line = self.pending_start
        values = decode_all(text)
        if values is None:
            message = broken(self.path, self.pending_start, text, strict_last_line=not unfinished)
            if message is not None:
                self._set_aside(message, queue)
                return
            self.pending = []
            what = "last value" if line_breaks(text, 0, len(text)) else "last line"
            self.warn(f"{self.path}:{self.pending_start}: {what} is incomplete (writer stopped mid-write?); skipped")
            return
        self.pending = []
        for value in values:
            yield self.pending_start, value

    def _whole_line_follows(self) -> bool:
        """Whether, at the end of the file, the open value's first line is a JSON Lines line cut short
        (a key on it, failing no earlier than its end) with a whole value on the next line."""
        if len(self.pending) < 2 or not FIRST_KEY.match(self.pending[0]):
            return False
        first, second = (line.decode("utf-8", "replace") for line in self.pending[:2])
        try:
            alone = _loads(second)
        except json.JSONDecodeError:
            return False
        return bool(alone) and cut_short(first.rstrip() + "\n", "")

    def _set_aside(self, message: str, queue: deque[tuple[int, bytes]]) -> None:
        """The open value is broken (`message`): an error, or, with `skip`, text to go past. A lone
        bracket that took in the values after it (a pretty-printer would have indented them) is
        left alone, and they are read again."""
        lines, start = self.pending, self.pending_start
        self.pending = []
        if (self.skip is not None and len(lines) > 1 and lines[0].strip() in (b"[", b"{")
                and lines[1][:1] in (b"{", b"[")):
            self.skip(start, 1, f"{self.path}:{start}: {preview(lines[0].decode('utf-8', 'replace').strip())} "
                      "opens a value that the lines after it do not continue", lines[0].decode("utf-8", "replace"))
            queue.extendleft(reversed([(start + i, line) for i, line in enumerate(lines[1:], 1)]))
            return
        text = b"".join(lines).decode("utf-8", "replace")
        self._not_json(start, line_breaks(text, 0, len(text.rstrip())) + 1, message, text)

    def _not_json(self, first_line: int, count: int, message: str, text: str) -> None:
        """Text that is not JSON: an error, or, with `skip`, handed to it."""
        if self.skip is None:
            raise TraceFormatError(message)
        self.skip(first_line, count, message, text)

    def _pending_text(self) -> str:
        return b"".join(self.pending).decode("utf-8", "replace")
