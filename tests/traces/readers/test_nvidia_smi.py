"""nvidia-smi query CSVs as GPU telemetry: formats, `[N/A]`, time zones, errors, and the issue's
"done when": a trace plus an nvidia-smi CSV gives per-step energy that adds up to the CSV's integral."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from profiler import attribute, load
from profiler.errors import ConfigError, TraceFormatError
from profiler.traces.readers.nvidia_smi import looks_like_nvidia_smi, read_nvidia_smi
from tests.builders import BASE_NS, S, ns, otlp_document, otlp_span

HEADER = "timestamp, uuid, power.draw [W], memory.used [MiB], utilization.gpu [%]"
UUID = "GPU-1d2c3b4a-0000-1111-2222-333344445555"


def stamp(t_s: float, zone: str = "UTC") -> str:
    """nvidia-smi's timestamp (local time of `zone`, milliseconds) for `BASE_NS + t_s`."""
    moment = datetime.fromtimestamp((BASE_NS + round(t_s * S)) / 1e9, ZoneInfo(zone))
    return moment.strftime("%Y/%m/%d %H:%M:%S.%f")[:-3]


def csv_text(
    times: list[float],
    power: list[float | str],
    *,
    zone: str = "UTC",
    header: bool = True,
    units: bool = True,
    mem_mib: float = 1024.0,
    util: float = 35.0,
) -> str:
    lines = [HEADER] if header else []
    for t, p in zip(times, power, strict=True):
        p_cell = p if isinstance(p, str) else (f"{p:.2f} W" if units else f"{p:.2f}")
        m_cell = f"{mem_mib:.0f} MiB" if units else f"{mem_mib:.0f}"
        u_cell = f"{util:.0f} %" if units else f"{util:.0f}"
        lines.append(f"{stamp(t, zone)}, {UUID}, {p_cell}, {m_cell}, {u_cell}")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str, name: str = "gpu.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(("header", "units"), [(True, True), (True, False), (False, True), (False, False)])
def test_with_or_without_header_and_units(tmp_path: Path, header: bool, units: bool) -> None:
    path = write(tmp_path, csv_text([0.0, 0.1], [70.5, 300.25], header=header, units=units))
    assert looks_like_nvidia_smi(path)
    warnings: list[str] = []
    frame = read_nvidia_smi(path, warnings, tz="UTC")
    assert warnings == []
    assert frame["t_ns"].tolist() == [ns(0.0), ns(0.1)]
    assert frame["gpu"].tolist() == [UUID, UUID]
    assert frame["power_w"].tolist() == [70.5, 300.25]
    assert frame["mem_used_bytes"].tolist() == [1024.0 * 2**20] * 2
    assert frame["util_pct"].tolist() == [35.0, 35.0]
    assert frame["energy_j"].isna().all() and frame["proc_mem_bytes"].isna().all()


def test_not_available_cells_are_missing_values(tmp_path: Path) -> None:
    text = HEADER + f"\n{stamp(0)}, {UUID}, [N/A], [N/A], [N/A]\n{stamp(1)}, {UUID}, 80.00 W, 10 MiB, 3 %\n"
    frame = read_nvidia_smi(write(tmp_path, text), [], tz="UTC")
    assert frame[["power_w", "mem_used_bytes", "util_pct"]].iloc[0].isna().all()
    assert frame["power_w"].iloc[1] == 80.0


def test_columns_in_any_order_and_an_index_instead_of_a_uuid(tmp_path: Path) -> None:
    text = f"timestamp, index, memory.used [MiB], power.draw.instant [W]\n{stamp(0)}, 1, 2048 MiB, 99.50 W\n"
    frame = read_nvidia_smi(write(tmp_path, text), [], tz="UTC")
    assert frame["gpu"].tolist() == ["gpu1"]
    assert frame["power_w"].tolist() == [99.5]
    assert frame["mem_used_bytes"].tolist() == [2048.0 * 2**20]


@pytest.mark.parametrize(
    ("zone", "offset_h"),
    [("UTC", 0.0), ("Europe/Paris", 1.0), ("Asia/Kolkata", 5.5), ("America/New_York", -5.0)],
)
def test_timestamps_are_read_in_the_given_zone(tmp_path: Path, zone: str, offset_h: float) -> None:
    # 2024-01-15 12:00:00.250 local time: winter, so no daylight saving anywhere above.
    path = write(tmp_path, f"{HEADER}\n2024/01/15 12:00:00.250, {UUID}, 70 W, 1 MiB, 1 %\n")
    frame = read_nvidia_smi(path, [], tz=zone)
    utc_noon_ns = 1_705_320_000 * S
    assert frame["t_ns"].iloc[0] == utc_noon_ns + 250_000_000 - round(offset_h * 3600) * S


def test_an_unknown_time_zone_is_a_config_error(tmp_path: Path) -> None:
    path = write(tmp_path, csv_text([0.0], [70.0]))
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        read_nvidia_smi(path, [], tz="Mars/Olympus")


def test_a_bad_timestamp_is_a_one_line_error_with_the_line_number(tmp_path: Path) -> None:
    text = csv_text([0.0, 0.1], [70.0, 71.0]) + f"yesterday at noon, {UUID}, 70 W, 1 MiB, 1 %\n"
    text += csv_text([0.3], [70.0], header=False)
    with pytest.raises(TraceFormatError) as caught:
        read_nvidia_smi(write(tmp_path, text), [], tz="UTC")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'gpu.csv'}:4: cannot read timestamp 'yesterday at noon'")
    assert "\n" not in message


def test_a_short_row_mid_file_is_an_error_but_a_short_last_row_is_skipped(tmp_path: Path) -> None:
    good = csv_text([0.0, 0.1], [70.0, 71.0])
    cut = f"{stamp(0.2)}, {UUID}, 72"
    warnings: list[str] = []
    frame = read_nvidia_smi(write(tmp_path, good + cut), warnings, tz="UTC")
    assert len(frame) == 2 and "incomplete" in warnings[0]
    with pytest.raises(TraceFormatError, match=r"gpu.csv:4: expected 5 columns, found 3"):
        read_nvidia_smi(
            write(tmp_path, good + cut + "\n" + csv_text([0.3], [70.0], header=False)), [], tz="UTC"
        )


def test_an_empty_csv_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TraceFormatError, match="empty nvidia-smi CSV"):
        read_nvidia_smi(write(tmp_path, "\n\n"), [], tz="UTC")


def test_our_own_samples_file_is_not_taken_for_nvidia_smi(tmp_path: Path) -> None:
    from profiler.gpu.samples_file import HEADER as SAMPLES_HEADER

    assert not looks_like_nvidia_smi(write(tmp_path, SAMPLES_HEADER + f"{BASE_NS},GPU-0,1,1,1,,1\n"))


# ----------------------------------------------------------------------------------------------
# Done when: a trace plus an nvidia-smi CSV gives per-step energy that adds up


def test_a_trace_and_an_nvidia_smi_csv_give_per_step_energy_that_adds_up(tmp_path: Path) -> None:
    times = np.round(np.arange(0.0, 12.0001, 0.1), 6)
    rng = np.random.default_rng(7)
    power = np.round(80.0 + 350.0 * rng.random(len(times)), 2)
    zone = "Europe/Paris"  # nvidia-smi writes local time; the trace is in UTC epoch nanoseconds
    csv = write(tmp_path, csv_text(times.tolist(), power.tolist(), zone=zone))

    session = {"gen_ai.conversation.id": "conv-42"}
    spans = [
        otlp_span(
            "a000000000000001",
            start=1.0,
            end=9.0,
            name="invoke_agent planner",
            attributes={"gen_ai.operation.name": "invoke_agent", **session},
        ),
        otlp_span(
            "a000000000000002",
            "a000000000000001",
            start=1.5,
            end=4.0,
            name="chat llama",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "vllm",
                "gen_ai.request.model": "llama",
                "gen_ai.usage.input_tokens": 900,
                "gen_ai.usage.output_tokens": 40,
                **session,
            },
        ),
        otlp_span(
            "a000000000000003",
            "a000000000000001",
            start=4.0,
            end=7.2,
            name="execute_tool search",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", **session},
        ),
    ]
    trace = tmp_path / "trace.jsonl"
    trace.write_text(json.dumps(otlp_document(spans)) + "\n")

    run = load(trace, gpu_samples=csv, tz=zone)
    assert run.gpus == [UUID]
    ledger = attribute(run)
    steps = ledger.steps.set_index("span_id")

    def trapezoid(a: float, b: float) -> float:
        inside = (times >= a - 1e-9) & (times <= b + 1e-9)
        return float(np.trapezoid(power[inside], times[inside]))

    # Each step's own energy is the CSV's integral over the time it was the innermost open step...
    assert steps.loc["a000000000000002", "self_energy_j"] == pytest.approx(trapezoid(1.5, 4.0), rel=1e-9)
    assert steps.loc["a000000000000003", "self_energy_j"] == pytest.approx(trapezoid(4.0, 7.2), rel=1e-9)
    assert steps.loc["a000000000000001", "self_energy_j"] == pytest.approx(
        trapezoid(1.0, 1.5) + trapezoid(7.2, 9.0), rel=1e-9
    )
    # ... the parts add up to the integral over the session ...
    session_parts = ledger.steps.loc[ledger.steps["session_id"] == "conv-42", "self_energy_j"].sum()
    assert session_parts == pytest.approx(trapezoid(1.0, 9.0), rel=1e-12)
    assert steps.loc["session:conv-42", "energy_j"] == pytest.approx(trapezoid(1.0, 9.0), rel=1e-12)
    # ... and with the time outside the session, to the whole CSV.
    assert ledger.steps["self_energy_j"].sum() == pytest.approx(trapezoid(0.0, 12.0), rel=1e-12)
    assert steps.loc["unattributed", "self_energy_j"] == pytest.approx(
        trapezoid(0.0, 1.0) + trapezoid(9.0, 12.0), rel=1e-9
    )
    assert ledger.checks["conservation_held"] is True
    assert steps.loc["a000000000000002", "energy_source"] == "measured:integrated-power"
    assert run.meta["gpu_samples_source"] == str(csv)


def _stepping_average_csv(tmp_path: Path, power_header: str) -> tuple[Path, Path]:
    """Power stepping 80 -> 450 W at 5 s, logged at 10 Hz as its trailing one-second average (what
    `power.draw.average` is), under `power_header`; and a trace with a span either side of the step."""
    times = np.round(np.arange(0.0, 10.0001, 0.1), 6)
    fine = np.arange(-1.0, 10.0001, 0.001)
    watts = np.where(fine < 5.0, 80.0, 450.0)
    average = [float(watts[(fine > t - 1.0) & (fine <= t + 1e-9)].mean()) for t in times]
    lines = [f"timestamp, uuid, {power_header} [W], memory.used [MiB]"]
    lines += [f"{stamp(t)}, {UUID}, {p:.2f} W, 1024 MiB" for t, p in zip(times, average, strict=True)]
    csv = write(tmp_path, "\n".join(lines) + "\n", name=f"{power_header}.csv")
    spans = [otlp_span("b000000000000001", start=3.0, end=5.0, name="before",
                       attributes={"gen_ai.operation.name": "execute_tool"}),
             otlp_span("b000000000000002", start=5.0, end=7.0, name="after",
                       attributes={"gen_ai.operation.name": "execute_tool"})]
    trace = tmp_path / "stepping.jsonl"
    trace.write_text(json.dumps(otlp_document(spans)) + "\n")
    return trace, csv


def test_a_power_draw_average_column_is_integrated_where_its_window_is_centred(tmp_path: Path) -> None:
    truth = {"before": 80.0 * 2.0, "after": 450.0 * 2.0}
    trace, csv = _stepping_average_csv(tmp_path, "power.draw.average")
    run = load(trace, gpu_samples=csv, tz="UTC")
    assert run.meta["power_readings"] == {UUID: "average"}
    steps = attribute(run).steps.set_index("name")
    # Shifted half a second back (and half a read interval more, for the unseen update behind each
    # reading), a span ending on the step is off by at most step x (window / 8 + interval / 2): 65 J.
    for name, joules in truth.items():
        assert abs(steps.loc[name, "self_energy_j"] - joules) <= 370.0 * (1.0 / 8 + 0.1 / 2), name
        assert abs(steps.loc[name, "self_energy_j"] - joules) <= steps.loc[name, "energy_uncertainty_j"]
    # `power.draw` alone says nothing of its window: integrated where read, the same readings put
    # 185 J of the step's second after it (the report flags such figures as estimated).
    trace, csv = _stepping_average_csv(tmp_path, "power.draw")
    run = load(trace, gpu_samples=csv, tz="UTC")
    assert "power_readings" not in run.meta
    steps = attribute(run).steps.set_index("name")
    assert steps.loc["after", "self_energy_j"] == pytest.approx(truth["after"] - 185.0, abs=2.0)
    assert bool(steps.loc["after", "energy_estimated"])


def test_a_cell_too_long_for_any_reading_is_a_one_line_error(tmp_path: Path) -> None:
    path = write(tmp_path, HEADER + "\n" + f"{stamp(0)}, {UUID}, {'9' * 200_000} W, 10 MiB, 5 %\n")
    with pytest.raises(TraceFormatError) as err:
        read_nvidia_smi(path, [], "UTC")
    assert str(err.value).startswith(f"{path}:2: not an nvidia-smi CSV (field larger than field limit")
