"""JSON text that may be cut short or broken: decoding what is whole, and saying where the rest
fails, whether it is unfinished (cut short) or broken, in a message naming the file and line."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from profiler.errors import TraceFormatError

_decoder = json.JSONDecoder()
#: A JSON Lines value's start up to its first key (`{"resourceSpans":`): met again inside one line,
#: it marks where a whole value follows a line cut short mid-write.
FIRST_KEY = re.compile(rb'\s*[{\[]\s*"[^"\\\r\n]{1,64}"\s*:')
#: Backslashes at the end of a text, and the start of a `\uXXXX` escape after them, if any.
_OPEN_ESCAPE = re.compile(r"(\\+)(u[0-9a-fA-F]{0,3})?$")


def after_cut_short(line: str, last_whole: bytes) -> list[Any] | None:
    """The values after a line cut short mid-write, when the next write went on in the same line:
    a whole value from where the first key of this line (or of the part after its start, where
    the cut left less than a key), or of the last whole line, appears again. None if there are
    none."""
    data = line.encode("utf-8", "replace")
    found = [FIRST_KEY.match(data) or FIRST_KEY.search(data, 1), FIRST_KEY.match(last_whole)]
    for marker in dict.fromkeys(match.group(0).lstrip() for match in found if match):
        at = data.find(marker, 1)
        while at > 0:
            values = decode_all(data[at:].decode("utf-8", "replace"))
            if values:
                return values
            at = data.find(marker, at + 1)
    return None


def decode_all(text: str) -> list[Any] | None:
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


def cut_short(before: str, line: str) -> bool:
    """Whether `before` (the lines of an open value) is cut short, given the `line` after it: the two
    fail to decode as one where `before` ends, no earlier (a line broken inside itself fails before
    its end) and no later (a value that `line` goes on from fails, if at all, further on)."""
    error = first_error(before + line)
    return content_end(before) <= error <= len(before) + len(line) - len(line.lstrip())


def content_end(text: str) -> int:
    """Where a decoder fails at the latest on `text` that was cut short: the end of what is on its
    lines, or the backslash of an escape it was cut inside (`\\`, `\\u20`)."""
    content = text.rstrip()
    escape = _OPEN_ESCAPE.search(content)
    if escape is not None and len(escape.group(1)) % 2:  # an odd run: its last backslash escapes
        return escape.start() + len(escape.group(1)) - 1
    return len(content)


class Failure(NamedTuple):
    """Where and why decoding failed: the decoder's error without its traceback, whose frames would
    hold the text being decoded (and, while the garbage collector is paused, keep it alive)."""

    pos: int
    msg: str


def decode_prefix(text: str) -> tuple[list[Any], int, Failure | None]:
    """Decode the concatenated JSON values at the start of `text`: (the values, where the first
    that does not decode starts (else the text's length), why it does not)."""
    values, index, end = [], 0, len(text)
    while True:
        while index < end and text[index] in " \t\r\n,":
            index += 1
        if index >= end:
            return values, end, None
        try:
            value, after = _decoder.raw_decode(text, index)
        except json.JSONDecodeError as err:
            return values, index, Failure(err.pos, err.msg)
        values.append(value)
        index = after


def first_error(text: str) -> int:
    """Where decoding `text` as concatenated JSON values first fails (its length if it never does)."""
    index, end = 0, len(text)
    while True:
        while index < end and text[index] in " \t\r\n,":
            index += 1
        if index >= end:
            return end
        try:
            _, index = _decoder.raw_decode(text, index)
        except json.JSONDecodeError as err:
            return err.pos


def raise_if_broken(path: Path, first_line: int, text: str, *, strict_last_line: bool = False) -> None:
    """Raise if `text` has an error before its last line; an error in the last line means the text
    is unfinished (cut short), not broken."""
    message = broken(path, first_line, text, strict_last_line=strict_last_line)
    if message is not None:
        raise TraceFormatError(message)


def broken(path: Path, first_line: int, text: str, *, strict_last_line: bool = False) -> str | None:
    """Where `text` is broken (`raise_if_broken`), as a one-line message naming the file and line;
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
            if not line_breaks(text, err.pos, end) and (err.pos >= end or not strict_last_line):
                return None  # the error is in the last line: unfinished, not broken
            return invalid_message(path, first_line, text, Failure(err.pos, err.msg))
    return None


def broken_before_last_line(path: Path, first_line: int, text: str, err: Failure) -> str | None:
    """The message for `err` (found decoding `text`), unless it is in the text's last line (unfinished)."""
    if line_breaks(text, err.pos, len(text.rstrip())):
        return invalid_message(path, first_line, text, err)
    return None


def invalid_message(path: Path, first_line: int, text: str, err: Failure) -> str:
    """The one-line message for invalid JSON at `err.pos` of `text`, which starts at `first_line`."""
    # json counts lines by LF alone; count them as the file breaks them (a lone CR too).
    line = first_line + line_breaks(text, 0, err.pos)
    column = err.pos - max(text.rfind("\n", 0, err.pos), text.rfind("\r", 0, err.pos))
    message = err.msg.removesuffix(" at")
    return f"{path}:{line}: invalid JSON ({message} at column {column})"


def line_breaks(text: str, start: int, end: int) -> int:
    """How many line breaks (LF, CRLF or a lone CR) text[start:end] holds."""
    return text.count("\n", start, end) + text.count("\r", start, end) - text.count("\r\n", start, end)


def preview(text: str) -> str:
    """The start of `text`, quoted, for a message."""
    return repr(text[:40] + ("..." if len(text) > 40 else ""))
