"""Our GPU samples file: CSV with a header, appended one tick at a time, readable after a kill."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from instrumentation import forksafe
from instrumentation.run_dir import SAMPLES_FILE
from instrumentation.safe_files import LineAppender
from profiler.errors import TraceFormatError
from profiler.model import SAMPLE_COLUMNS, empty_frame, frame_from_rows

__all__ = ["HEADER", "SAMPLES_FILE", "SamplesWriter", "read_samples"]
HEADER = ",".join(SAMPLE_COLUMNS) + "\n"
#: Columns read as text; the others must be numbers. A column the file lacks (an older writer's)
#: reads as unknown, and one this reader does not know is ignored.
_TEXT_COLUMNS = {name: str for name, dtype in SAMPLE_COLUMNS.items() if dtype == "object"}


class SamplesWriter:
    """Appends samples with one `write(2)` per batch, so a kill leaves at most one partial line.

    A failed write (a full disk) is cut back to the last whole line, and its rows are counted in
    `failed_rows`; the file is never opened through a link (see `LineAppender`).
    """

    def __init__(self, path: Path) -> None:
        """Open (creating with mode 0600, header first) the samples file at `path`.

        Raises:
            OSError: the file cannot be opened (an unwritable directory, a link in its place).
        """
        self.path = path
        self.failed_rows = 0
        self._file = LineAppender(path, header=HEADER.encode())
        forksafe.register(self._file)
        self._file.append(b"")  # opens the file now: a writer that cannot write says so at once

    def write(self, rows: Iterable[tuple[object, ...]]) -> None:
        """Append rows given in `SAMPLE_COLUMNS` order; None becomes an empty cell.

        Raises:
            OSError: the write failed; the rows are counted in `failed_rows` and none is on disk.
        """
        lines = [",".join("" if v is None else _cell(v) for v in row) + "\n" for row in rows]
        if not lines:
            return
        try:
            self._file.append("".join(lines).encode())
        except OSError:
            self.failed_rows += len(lines)
            raise

    def close(self) -> None:
        """Close the file. Idempotent."""
        self._file.close()


def _cell(value: object) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def read_samples(path: Path, warnings: list[str]) -> pd.DataFrame:
    """Read a samples file written by `SamplesWriter`; a partial last line is dropped with a warning."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as err:
        raise TraceFormatError(f"{path}: cannot read ({err.strerror or err})") from None
    if not text.strip():
        return empty_frame(SAMPLE_COLUMNS)
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
        warnings.append(f"{path}: last line is incomplete (writer stopped mid-line?); skipped")
    header = text.split("\n", 1)[0].strip().split(",")
    missing = [c for c in ("t_ns", "gpu") if c not in header]
    if missing:
        raise TraceFormatError(f"{path}:1: not a samples file (header lacks {', '.join(missing)})")
    try:
        frame = pd.read_csv(io.StringIO(text), dtype=_TEXT_COLUMNS)
    except (ValueError, pd.errors.ParserError) as err:
        raise TraceFormatError(f"{path}: malformed samples ({str(err).splitlines()[0]})") from None
    numeric = [c for c in SAMPLE_COLUMNS if c not in _TEXT_COLUMNS and c in frame]
    if len(frame) and (not pd.api.types.is_integer_dtype(frame["t_ns"]) or not all(
            pd.api.types.is_numeric_dtype(frame[c]) for c in numeric)):
        _raise_first_bad_cell(path, text, numeric)
    return frame_from_rows(frame.to_dict("list"), SAMPLE_COLUMNS)


def _raise_first_bad_cell(path: Path, text: str, numeric: list[str]) -> None:
    """Name the line and column of the first cell that is not a number (t_ns: not an integer)."""
    # Read again as text, blank lines kept, so that row i is line i + 2 of the file.
    cells = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, skip_blank_lines=False)
    blank = (cells == "").all(axis=1).to_numpy()
    problems = []
    for column in numeric:
        raw = cells[column].str.strip()
        if column == "t_ns":
            bad = ~raw.str.fullmatch(r"-?\d+").fillna(False).to_numpy(dtype=bool)
        else:
            bad = (pd.to_numeric(raw, errors="coerce").isna() & (raw != "")).to_numpy(dtype=bool)
        bad = bad & ~blank
        if bad.any():
            problems.append((int(bad.argmax()), column))
    if problems:
        row, column = min(problems)
        what = "an integer" if column == "t_ns" else "a number"
        raise TraceFormatError(f"{path}:{row + 2}: {column} is not {what} ({cells[column].iat[row]!r})")
    raise TraceFormatError(f"{path}: malformed samples (a numeric column holds text)")
