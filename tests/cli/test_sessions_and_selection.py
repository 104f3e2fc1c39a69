"""`sessionprof sessions FILE`, and `report --session/--since/--until`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import profiler
from profiler.analysis.sessions import parse_time, resolve_sessions, select, session_summaries
from tests.cli.helpers import BASE_NS, S, agent_session, invoke, write_trace
from tests.paths import DATA, REAL


@pytest.fixture
def two_sessions(tmp_path: Path) -> Path:
    first = agent_session(conversation="conv-alpha", trace="1" * 32)
    second = agent_session(conversation="conv-beta", trace="2" * 32, offset=100.0, second_chat_tokens=2000,
                           extra_tool=True)
    return write_trace(tmp_path / "spans.jsonl", first + second)


def test_sessions_lists_each_session_with_its_totals(two_sessions: Path) -> None:
    result = invoke("sessions", two_sessions, "--format", "json")
    assert result.exit_code == 0, result.stderr
    sessions = json.loads(result.stdout)["sessions"]
    assert [s["session_id"] for s in sessions] == ["conv-alpha", "conv-beta"]
    alpha, beta = sessions
    assert (alpha["steps"], alpha["model_calls"], alpha["tool_calls"]) == (4, 2, 1)
    assert (beta["steps"], beta["model_calls"], beta["tool_calls"]) == (5, 2, 2)
    assert alpha["input_tokens"] == 1500 and beta["input_tokens"] == 3000
    assert alpha["wall_s"] == pytest.approx(10.0)
    assert alpha["api_cost_usd"] > 0 and beta["api_cost_usd"] > alpha["api_cost_usd"]
    assert alpha["models"] == "gpt-4o"


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_sessions_other_formats(two_sessions: Path, fmt: str) -> None:
    result = invoke("sessions", two_sessions, "-f", fmt)
    assert result.exit_code == 0, result.stderr
    assert "conv-alpha" in result.stdout and "conv-beta" in result.stdout


def test_session_totals_add_up_to_the_run(two_sessions: Path) -> None:
    ledger = profiler.attribute(profiler.load(two_sessions))
    sessions = session_summaries(ledger)
    assert sessions["input_tokens"].sum() == ledger.totals["input_tokens"]
    assert sessions["api_cost_usd"].sum() == pytest.approx(ledger.totals["api_cost_usd"])
    assert sessions["steps"].sum() == ledger.totals["steps"]


def test_report_session_keeps_only_that_session(two_sessions: Path) -> None:
    result = invoke("report", two_sessions, "--session", "conv-b", "--format", "json")  # a unique prefix
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert {s["session_id"] for s in report["steps"]} == {"conv-beta"}
    assert report["totals"]["input_tokens"] == 3000 and report["totals"]["sessions"] == 1
    assert report["run"]["selection"]["sessions"] == ["conv-beta"]


def test_report_since_until_keeps_the_steps_that_overlap_the_window(two_sessions: Path) -> None:
    since = (BASE_NS + 4 * S) / 1e9  # epoch seconds: inside the search tool (3-5 s) of the first session
    until = "2025-10-09T08:53:26.5Z"  # ISO: BASE_NS is 2025-10-09T08:53:20Z, so 6.5 s: the 2nd chat (5-8 s)
    result = invoke("report", two_sessions, "--since", f"{since}", "--until", until, "-f", "json")
    assert result.exit_code == 0, result.stderr
    names = sorted(s["name"] for s in json.loads(result.stdout)["steps"])
    assert names == ["chat gpt-4o", "execute_tool search", "invoke_agent planner", "session conv-alpha"]


def test_report_session_and_window_errors_are_one_line(two_sessions: Path) -> None:
    for args in (("--session", "nope"), ("--session", "conv-"), ("--since", "soon"),
                 ("--since", "2030-01-01", "--until", "2020-01-01")):
        result = invoke("report", two_sessions, *args)
        assert result.exit_code == 1, args
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("sessionprof: error:"), result.stderr
    assert "ambiguous" in invoke("report", two_sessions, "--session", "conv-").stderr
    assert "conv-alpha" in invoke("report", two_sessions, "--session", "nope").stderr


def test_a_window_with_no_step_is_an_empty_report_with_a_note(two_sessions: Path) -> None:
    result = invoke("report", two_sessions, "--since", "2030-01-01", "-f", "json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["steps"] == [] and "no step matches the selection" in report["checks"]["warnings"]


def test_selection_keeps_the_figures_each_step_had_in_the_whole_run(two_sessions: Path) -> None:
    ledger = profiler.attribute(profiler.load(two_sessions))
    chosen = select(ledger, sessions=["conv-alpha"])
    whole = ledger.steps.set_index(["trace_id", "span_id"])["total_cost_usd"]
    assert len(chosen.steps) == 5  # the session row and its four steps
    for trace_id, span_id, cost in zip(chosen.steps["trace_id"], chosen.steps["span_id"],
                                       chosen.steps["total_cost_usd"], strict=False):
        assert cost == whole.loc[(trace_id, span_id)] or (cost != cost and whole.loc[(trace_id, span_id)] != whole.loc[
            (trace_id, span_id)])
    assert select(ledger) is ledger


@pytest.mark.parametrize(("text", "expected"), [
    ("1760000000", 1_760_000_000 * S),
    ("1760000000.25", 1_760_000_000 * S + S // 4),
    ("2025-10-09T08:53:20Z", 1_760_000_000 * S),
    ("2025-10-09T10:53:20.123456789+02:00", 1_760_000_000 * S + 123_456_789),
    ("2025-10-09 08:53:20", 1_760_000_000 * S),
    ("2025-10-09", 1_759_968_000 * S),
])
def test_times_are_iso_or_epoch_seconds(text: str, expected: int) -> None:
    assert parse_time(text) == expected


def test_resolve_sessions_exact_then_unique_prefix() -> None:
    assert resolve_sessions(["abc", "abd", "x"], ["x", "abc"]) == ["x", "abc"]
    with pytest.raises(ValueError, match="ambiguous"):
        resolve_sessions(["abc", "abd"], ["ab"])


@pytest.mark.skipif(not REAL.is_dir(), reason="shared/reference/real-traces is not here")
def test_sessions_of_the_real_files() -> None:
    result = invoke("sessions", REAL / "copilot_cli_otlp_pretty.json", "-f", "json")
    assert result.exit_code == 0
    (session,) = json.loads(result.stdout)["sessions"]
    assert session["session_id"].startswith("f397d418") and session["model_calls"] == 62
    result = invoke("report", REAL / "copilot_cli_otlp_pretty.json", "--session", "f397d418", "-f", "json")
    assert json.loads(result.stdout)["totals"]["input_tokens"] == 6_225_557
    result = invoke("sessions", REAL / "maf_python_console_exporter.jsonl", "-f", "json")
    sessions = json.loads(result.stdout)["sessions"]
    assert len(sessions) == 22 and sum(s["input_tokens"] for s in sessions) == 7_309


def test_sessions_of_a_jaeger_download() -> None:
    result = invoke("sessions", DATA / "jaeger_ui_download.json", "-f", "json")
    assert result.exit_code == 0
    assert [s["session_id"] for s in json.loads(result.stdout)["sessions"]] == [
        "conv-jaeger-1", "00000000000000006e0c63257de34c92"]


def test_the_sessions_table_lines_up_wide_characters() -> None:
    from rich.cells import cell_len

    from reports.sessions_report import render_sessions
    from tests.builders import chat, make_run, span

    rows = [span("a", start=0, end=2, session="会話-一"), chat("c", "a", start=0, end=1, session="会話-一"),
            span("b", start=3, end=5, session="conv-b", trace="t2"), chat("d", "b", start=3, end=4, session="conv-b",
                                                                          trace="t2")]
    lines = render_sessions(session_summaries(profiler.attribute(make_run(rows))), "table").splitlines()[1:]
    starts = {cell_len(line[:line.index("Start" if i == 0 else "20")]) for i, line in enumerate(lines)}
    assert len(lines) == 3 and len(starts) == 1  # the Start column begins at one terminal column on every line
