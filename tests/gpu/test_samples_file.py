"""Our GPU samples file: append-only CSV written by the sampler, read back after a clean stop or a kill."""

from __future__ import annotations

import math
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler.errors import TraceFormatError
from profiler.gpu.samples_file import HEADER, SamplesWriter, read_samples
from profiler.model import SAMPLE_COLUMNS, format_pid_memory, parse_pid_memory
from tests.builders import BASE_NS

ROWS = [
    (BASE_NS, "GPU-5f0c1a2b", 123456.789, 301.25, 40 * 2**30, None, 87.0),
    (BASE_NS + 100_000_123, "GPU-5f0c1a2b", 123486.9, 299.5, 40 * 2**30, 12 * 2**30, None),
    (BASE_NS + 100_000_124, "GPU-77aa", None, None, None, None, None),
    (BASE_NS + 200_000_000, "GPU-77aa", 0.1 + 0.2, 1e-3, 0, 0, 0.0),
]


def write(path: Path, rows=ROWS) -> Path:
    writer = SamplesWriter(path)
    writer.write(rows)
    writer.close()
    writer.close()  # idempotent
    return path


def test_rows_round_trip_exactly(tmp_path: Path) -> None:
    warnings: list[str] = []
    frame = read_samples(write(tmp_path / "samples.csv"), warnings)
    assert warnings == []
    assert list(frame.columns) == list(SAMPLE_COLUMNS)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        "t_ns": "int64",
        "gpu": "object",
        "energy_j": "float64",
        "power_w": "float64",
        "mem_used_bytes": "float64",
        "proc_mem_bytes": "float64",
        "util_pct": "float64",
        "sm_clock_mhz": "float64",
        "mem_clock_mhz": "float64",
        "temp_c": "float64",
        "proc_mem_bytes_by_pid": "object",
    }
    assert frame["t_ns"].tolist() == [r[0] for r in ROWS]  # nanoseconds survive: no float detour
    assert frame["gpu"].tolist() == [r[1] for r in ROWS]
    for column, position in (
        ("energy_j", 2),
        ("power_w", 3),
        ("mem_used_bytes", 4),
        ("proc_mem_bytes", 5),
        ("util_pct", 6),
    ):
        for got, row in zip(frame[column], ROWS, strict=True):
            expected = row[position]
            assert math.isnan(got) if expected is None else got == expected, (column, got, expected)


SLOW_ROWS = [
    (BASE_NS, "GPU-5f0c1a2b", 1.5, 300.0, 40 * 2**30, 12 * 2**30, 87.0, 1980.0, 2619.0, 61.0,
     format_pid_memory({4242: 9 * 2**30, 17: 3 * 2**30})),
    (BASE_NS + 1, "GPU-5f0c1a2b", 1.6, 300.0, 40 * 2**30, None, None, None, None, None, None),
    (BASE_NS + 2, "GPU-5f0c1a2b", 1.7, 300.0, 40 * 2**30, 0, 80.0, 1410.0, None, 62.5, None),
]


def test_clocks_temperature_and_per_process_memory_round_trip(tmp_path: Path) -> None:
    frame = read_samples(write(tmp_path / "samples.csv", SLOW_ROWS), [])
    assert frame["sm_clock_mhz"].tolist()[::2] == [1980.0, 1410.0]
    assert frame["temp_c"].tolist()[::2] == [61.0, 62.5]
    assert math.isnan(frame["mem_clock_mhz"].iat[2])  # not supported on its own: the other fields stay
    cells = frame["proc_mem_bytes_by_pid"].tolist()
    assert cells == ["17:3221225472;4242:9663676416", None, None]
    assert parse_pid_memory(cells[0]) == {17: 3 * 2**30, 4242: 9 * 2**30}
    assert parse_pid_memory(cells[1], frame["proc_mem_bytes"].iat[1]) is None  # not read
    assert parse_pid_memory(cells[2], frame["proc_mem_bytes"].iat[2]) == {}  # read: none of ours held any


def test_a_file_from_an_older_writer_reads_the_new_columns_as_unknown(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text("t_ns,gpu,energy_j,power_w,mem_used_bytes,proc_mem_bytes,util_pct\n"
                    f"{BASE_NS},GPU-0,1.0,100.0,5,4,50\n")
    frame = read_samples(path, [])
    assert list(frame.columns) == list(SAMPLE_COLUMNS)
    assert frame[["sm_clock_mhz", "mem_clock_mhz", "temp_c"]].isna().all(axis=None)
    assert frame["proc_mem_bytes_by_pid"].tolist() == [None]


def test_an_older_reader_reads_a_new_file(tmp_path: Path) -> None:
    """A reader that knows only the first seven columns picks them by name and ignores the rest."""
    path = write(tmp_path / "samples.csv", SLOW_ROWS)
    older = pd.read_csv(path, dtype={"gpu": str})
    old_columns = ["t_ns", "gpu", "energy_j", "power_w", "mem_used_bytes", "proc_mem_bytes", "util_pct"]
    assert all(pd.api.types.is_numeric_dtype(older[c]) for c in old_columns if c != "gpu")
    assert older["energy_j"].tolist() == [1.5, 1.6, 1.7]


def test_the_header_is_written_once_and_rows_append_across_writers(tmp_path: Path) -> None:
    path = write(tmp_path / "samples.csv", ROWS[:2])
    write(path, ROWS[2:])
    text = path.read_text()
    assert text.startswith(HEADER) and text.count("t_ns") == 1
    assert len(read_samples(path, [])) == len(ROWS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_empty_batch_writes_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "samples.csv", [])
    assert path.read_text() == HEADER
    frame = read_samples(path, [])
    assert frame.empty and list(frame.columns) == list(SAMPLE_COLUMNS)


def test_an_empty_file_reads_as_no_samples(tmp_path: Path) -> None:
    path = tmp_path / "samples.csv"
    path.write_text("")
    assert read_samples(path, []).empty


def test_a_truncated_last_line_is_skipped_with_a_warning(tmp_path: Path) -> None:
    path = write(tmp_path / "samples.csv")
    with path.open("a") as stream:
        stream.write(f"{BASE_NS + 300_000_000},GPU-77aa,12")  # the writer was killed mid-line
    warnings: list[str] = []
    frame = read_samples(path, warnings)
    assert len(frame) == len(ROWS)
    assert len(warnings) == 1 and "incomplete" in warnings[0] and str(path) in warnings[0]


@pytest.mark.parametrize(
    ("body", "line", "what"),
    [
        ("this is garbage\n", 3, "t_ns"),
        ("\x00\x01\xff\xfe\n", 3, "t_ns"),
        ("1700000000200000000,GPU-0,abc,1,1,1,1\n", 3, "energy_j"),
        ("1700000000200000000,GPU-0,1,1,1,1,high\n", 3, "util_pct"),
        ("\n\n1700000000200000000,GPU-0,1,1,1,1,high\n", 5, "util_pct"),  # blank lines still count
        ("1.5e18,GPU-0,1,1,1,1,1\n", 3, "t_ns"),
        (",GPU-0,1,1,1,1,1\n", 3, "t_ns"),
    ],
)
def test_garbage_names_the_line_and_the_column(tmp_path: Path, body: str, line: int, what: str) -> None:
    path = write(tmp_path / "samples.csv", ROWS[:1])
    with path.open("a") as stream:
        stream.write(body)
        stream.write(f"{BASE_NS + 900_000_000},GPU-0,1,1,1,1,1\n")
    with pytest.raises(TraceFormatError) as caught:
        read_samples(path, [])
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert what in message and "\n" not in message


def test_a_row_with_too_many_cells_is_an_error_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "samples.csv", ROWS[:2])
    with path.open("a") as stream:
        stream.write("1,GPU-0,1,2,3,4,5,6,7,8,9,10,11\n2,GPU-0,1,1,1,1,1\n")
    with pytest.raises(TraceFormatError, match="line 4"):
        read_samples(path, [])


def test_a_file_that_is_not_a_samples_file_says_so(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("name,value\na,1\n")
    with pytest.raises(TraceFormatError, match=r"other.csv:1: not a samples file \(header lacks t_ns, gpu\)"):
        read_samples(path, [])


def test_a_missing_file_is_a_trace_format_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="cannot read"):
        read_samples(tmp_path / "absent.csv", [])


def test_gpu_ids_stay_text(tmp_path: Path) -> None:
    rows = [(BASE_NS, "0", 1.0, 1.0, 1.0, None, 1.0), (BASE_NS + 1, "1e3", 1.0, 1.0, 1.0, None, 1.0)]
    frame = read_samples(write(tmp_path / "samples.csv", rows), [])
    assert frame["gpu"].tolist() == ["0", "1e3"]


def test_a_large_file_reads_back_in_order(tmp_path: Path) -> None:
    t = BASE_NS + np.arange(5000, dtype=np.int64) * 100_000_000
    rows = [(int(v), f"GPU-{i % 2}", float(i), 100.0, 1.0, None, 50.0) for i, v in enumerate(t)]
    frame = read_samples(write(tmp_path / "samples.csv", rows), [])
    pd.testing.assert_series_equal(frame["t_ns"], pd.Series(t, name="t_ns"))


FULL_ROWS = [(BASE_NS + i * 100_000_000, "GPU-5f0c1a2b", 1000.0 + i, 300.0, 40 * 2**30, None, 87.0, 1410, 1593, 41,
              None) for i in range(6)]


@pytest.mark.parametrize("glued", [False, True], ids=["next write on a new line", "next write on the same line"])
def test_a_row_cut_short_mid_file_is_skipped_and_counted_at_every_cut(tmp_path: Path, glued: bool) -> None:
    # A failed append (a full disk) leaves part of a row, and the next batch follows it.
    whole = write(tmp_path / "whole.csv", FULL_ROWS).read_text().splitlines(keepends=True)
    torn_row = whole[3]
    for cut in range(1, len(torn_row) - 1):
        path = tmp_path / "samples.csv"
        path.write_text("".join(whole[:3]) + torn_row[:cut] + ("" if glued else "\n") + "".join(whole[4:]))
        warnings: list[str] = []
        torn: list[int] = []
        frame = read_samples(path, warnings, torn)
        assert frame["energy_j"].tolist() == [1000.0, 1001.0] + ([1004.0, 1005.0] if glued else [1003.0, 1004.0,
                                                                                                  1005.0]), cut
        assert torn == [4]
        assert warnings == [f"{path}: 1 line(s) cut short mid-write skipped (line 4); what they held is lost"]


def test_rows_a_writer_wrote_without_trailing_columns_are_not_cut_short(tmp_path: Path) -> None:
    warnings: list[str] = []
    frame = read_samples(write(tmp_path / "samples.csv", [row[:7] for row in FULL_ROWS]), warnings)
    assert len(frame) == 6 and warnings == []
