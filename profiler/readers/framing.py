"""Split a file into JSON values, however it is framed: JSON Lines, concatenated or pretty-printed
objects, or one document. Gzip is opened transparently.

Errors name the file, the line and what was expected. A last line cut short (a writer killed
mid-write) is skipped with a warning instead of failing the whole file.
"""

from __future__ import annotations

import gzip
import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from profiler.errors import TraceFormatError

_decoder = json.JSONDecoder()


def open_text(path: Path) -> IO[str]:
    """Open a text file, decompressing `.gz` (by magic number, not only by name)."""
    try:
        raw = path.open("rb")
    except OSError as err:
        raise TraceFormatError(f"{path}: cannot open ({err.strerror or err})") from None
    magic = raw.read(2)
    raw.seek(0)
    stream: IO[bytes] = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", errors="replace", newline="")


def iter_json_values(
    path: Path, warn: Callable[[str], None], progress: Callable[[int], None] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield (line number, value) for every JSON value in the file, in order.

    `progress` is called with the number of characters consumed so far, now and then.
    """
    with open_text(path) as stream:
        try:
            yield from _iter_values(path, stream, warn, progress)
        except (OSError, EOFError, gzip.BadGzipFile) as err:
            raise TraceFormatError(f"{path}: cannot read ({err})") from None


def _iter_values(
    path: Path, stream: IO[str], warn: Callable[[str], None], progress: Callable[[int], None] | None
) -> Iterator[tuple[int, Any]]:
    line_no, consumed = 0, 0
    pending: list[str] = []  # lines of a value that spans several lines
    pending_start = 0
    for line in stream:
        line_no += 1
        consumed += len(line)
        if progress is not None and line_no % 4096 == 0:
            progress(consumed)
        if not pending:
            stripped = line.strip()
            if not stripped:
                continue
            try:
                yield line_no, json.loads(stripped)
                continue
            except json.JSONDecodeError:
                pending_start = line_no
        pending.append(line)
        # A multi-line value: decode what has accumulated only when this line could close it
        # (a one-line value, or a closing brace in column 0 as pretty-printers write it).
        if (len(pending) == 1 or line[:1] in "}]") and line.rstrip().endswith(("}", "]")):
            text = "".join(pending)
            values = _decode_all(text)
            if values is not None:
                for value in values:
                    yield pending_start, value
                pending = []
    if progress is not None:
        progress(consumed)
    if pending:
        text = "".join(pending).strip()
        if "\n" not in text or pending_start == line_no:
            warn(f"{path}:{pending_start}: last line is incomplete (writer stopped mid-line?); skipped")
            return
        values = _decode_all(text)
        if values is None:
            position = _error_position(text)
            raise TraceFormatError(f"{path}:{pending_start + position[0]}: invalid JSON ({position[1]})")
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


def _error_position(text: str) -> tuple[int, str]:
    try:
        _decode_all_strict(text)
    except json.JSONDecodeError as err:
        return err.lineno - 1, f"{err.msg} at line offset {err.colno}"
    return 0, "unexpected content"


def _decode_all_strict(text: str) -> None:
    index, end = 0, len(text)
    while index < end:
        while index < end and text[index] in " \t\r\n,":
            index += 1
        if index < end:
            _, index = _decoder.raw_decode(text, index)
