"""The CSV that `nvidia-smi --query-gpu=timestamp,uuid,power.draw,memory.used,utilization.gpu
--format=csv -lms 100` writes: with or without `noheader`/`nounits`, `[N/A]` cells, local timestamps."""

from __future__ import annotations

import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from profiler.errors import ConfigError, TraceFormatError
from profiler.model import SAMPLE_COLUMNS, frame_from_rows
from profiler.traces.readers.lines import open_text

# nvidia-smi's column names (with and without units) mapped to ours.
_COLUMNS = {
    "timestamp": "timestamp",
    "uuid": "uuid",
    "gpu_uuid": "uuid",
    "index": "index",
    "power.draw": "power_w",
    "power.draw.instant": "power_w",
    "power.draw.average": "power_avg_w",
    "memory.used": "mem_used",
    "utilization.gpu": "util_pct",
}
_DEFAULT_ORDER = ["timestamp", "uuid", "power_w", "mem_used", "util_pct"]
_TIME_FORMATS = ("%Y/%m/%d %H:%M:%S.%f", "%Y/%m/%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S.%f")
_MEBIBYTE = 1024 * 1024


def looks_like_nvidia_smi(path: Path) -> bool:
    """Whether the file's first line is an nvidia-smi CSV header or data row."""
    try:
        with open_text(path) as stream:
            head = stream.readline()
    except Exception:  # noqa: BLE001 - sniffing only; the real reader reports errors
        return False
    return "power.draw" in head or head[:4].isdigit() and head.count(",") >= 2 and "/" in head[:11]


def resolve_zone(tz: str | None) -> ZoneInfo | None:
    """Return the zone nvidia-smi's local timestamps are in; None means this machine's."""
    if not tz:
        return None
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {tz!r} (use an IANA name such as Europe/Paris or UTC)") from None


def read_nvidia_smi(path: Path, warnings: list[str], tz: str | None = None,
                    meta: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read an nvidia-smi query CSV into `Run.samples` rows (no energy counter: power only).

    Where the only power column is `power.draw.average` (a trailing one-second average, as
    nvidia-smi names it since driver 535), `meta["power_readings"]` says so for each GPU, and the
    power is integrated half a second back, where each average's window is centred. `power.draw`
    alone says nothing of its window (an average on some drivers, not on others) and is integrated
    where it was read.
    """
    zone = resolve_zone(tz)
    with open_text(path) as stream:
        reader = csv.reader(stream, skipinitialspace=True)
        try:
            lines = list(reader)
        except csv.Error as err:  # a cell over csv's limit (128 KiB): no nvidia-smi value is that long
            raise TraceFormatError(f"{path}:{reader.line_num}: not an nvidia-smi CSV ({err})") from None
    lines = [line for line in lines if any(cell.strip() for cell in line)]
    if not lines:
        raise TraceFormatError(f"{path}: empty nvidia-smi CSV")
    header = [cell.strip() for cell in lines[0]]
    if header and header[0].startswith("timestamp"):
        order = [_COLUMNS.get(cell.split(" [")[0].strip(), cell) for cell in header]
        body, first_line = lines[1:], 2
    else:
        order, body, first_line = _DEFAULT_ORDER, lines, 1
    if "timestamp" not in order:
        raise TraceFormatError(f"{path}:1: nvidia-smi CSV has no timestamp column")
    rows = []
    for offset, cells in enumerate(body):
        line_no = first_line + offset
        if len(cells) != len(order):
            if offset == len(body) - 1:
                warnings.append(f"{path}:{line_no}: last line is incomplete; skipped")
                continue
            raise TraceFormatError(f"{path}:{line_no}: expected {len(order)} columns, found {len(cells)}")
        record = dict(zip(order, (cell.strip() for cell in cells), strict=False))
        rows.append(_sample(path, line_no, record, zone))
    frame = frame_from_rows(rows, SAMPLE_COLUMNS)
    if meta is not None and "power_avg_w" in order and "power_w" not in order:
        stated = meta.setdefault("power_readings", {})
        for gpu in frame["gpu"].unique():
            stated[str(gpu)] = "average"
    return frame


def _sample(path: Path, line_no: int, record: dict[str, str], zone: ZoneInfo | None) -> dict[str, object]:
    stamp = record["timestamp"]
    for fmt in _TIME_FORMATS:
        try:
            moment = datetime.strptime(stamp, fmt)
            break
        except ValueError:
            continue
    else:
        raise TraceFormatError(f"{path}:{line_no}: cannot read timestamp {stamp!r} (expected YYYY/MM/DD HH:MM:SS.mmm)")
    moment = moment.replace(tzinfo=zone) if zone is not None else moment.astimezone()
    t_ns = int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1000
    gpu = record.get("uuid") or f"gpu{record.get('index', '0')}"
    mem_mib = _number(record.get("mem_used"))
    return {
        "t_ns": t_ns,
        "gpu": gpu,
        "energy_j": math.nan,
        "power_w": _number(record.get("power_w", record.get("power_avg_w"))),
        "mem_used_bytes": mem_mib * _MEBIBYTE,
        "proc_mem_bytes": math.nan,
        "util_pct": _number(record.get("util_pct")),
    }


def _number(cell: str | None) -> float:
    """Parse `123.4 W`, `2048 MiB`, `35 %` or `123.4`; `[N/A]` and blanks are NaN."""
    if cell is None:
        return math.nan
    text = cell.split(" ")[0].strip()
    try:
        return float(text)
    except ValueError:
        return math.nan
