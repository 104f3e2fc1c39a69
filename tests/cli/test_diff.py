"""`sessionprof diff A B`: steps aligned by path and ordinal; deltas in tokens, $, J and GiB*s."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import profiler
from profiler.analysis.diff import diff_ledgers, only_changed, top_changes
from tests.cli.helpers import agent_session, invoke, write_samples, write_trace


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    a = write_trace(tmp_path / "a.jsonl", agent_session(conversation="run-1"))
    b = write_trace(tmp_path / "b.jsonl", agent_session(conversation="run-2", second_chat_tokens=4500,
                                                        extra_tool=True, drop_search=True))
    return a, b


def _rows(result: dict) -> dict[str, dict]:
    return {row["key"]: row for row in result["steps"]}


def test_steps_are_aligned_by_path_and_ordinal(pair: tuple[Path, Path]) -> None:
    result = invoke("diff", *pair, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = _rows(json.loads(result.stdout))
    agent = "session#0 / invoke_agent planner#0"
    assert set(rows) == {"session#0", agent, f"{agent} / chat gpt-4o#0", f"{agent} / chat gpt-4o#1",
                         f"{agent} / execute_tool search#0", f"{agent} / execute_tool calculator#0"}
    assert rows[f"{agent} / chat gpt-4o#0"]["status"] == "same"
    second = rows[f"{agent} / chat gpt-4o#1"]
    assert second["status"] == "changed"
    assert second["input_tokens_a"] == 500 and second["input_tokens_b"] == 4500
    assert second["tokens_delta"] == 4000
    assert second["total_cost_usd_delta"] > 0
    assert rows[f"{agent} / execute_tool search#0"]["status"] == "removed"
    assert rows[f"{agent} / execute_tool calculator#0"]["status"] == "added"
    assert rows["session#0"]["tokens_delta"] == 4000  # inclusive: the change shows all the way up


def test_totals_and_counts(pair: tuple[Path, Path]) -> None:
    document = json.loads(invoke("diff", *pair, "-f", "json").stdout)
    totals = document["totals"]
    assert totals["tokens"] == {"a": 1650.0, "b": 5650.0, "delta": 4000.0, "pct": pytest.approx(4000 / 1650 * 100)}
    assert totals["api_cost_usd"]["delta"] > 0
    assert totals["energy_j"]["delta"] is None  # no GPU samples on either side: not measured, not 0
    assert totals["counts"] == {"changed": 3, "same": 1, "added": 1, "removed": 1, "model_calls_a": 2,
                                "steps_a": 4, "model_calls_b": 2, "steps_b": 4}
    assert document["a"]["source"].endswith("a.jsonl") and document["b"]["source"].endswith("b.jsonl")


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_text_formats_show_the_tree_and_totals(pair: tuple[Path, Path], fmt: str) -> None:
    result = invoke("diff", *pair, "-f", fmt)
    assert result.exit_code == 0, result.stderr
    for text in ("invoke_agent planner", "execute_tool calculator", "added", "removed", "+4,000", "Total"):
        assert text in result.stdout


def test_top_and_changed_select_rows(pair: tuple[Path, Path]) -> None:
    top = json.loads(invoke("diff", *pair, "-f", "json", "--top", "1").stdout)["steps"]
    # Ranked by the step's own change: the chat that grew, not the session and agent above it.
    assert [row["key"] for row in top] == ["session#0 / invoke_agent planner#0 / chat gpt-4o#1"]
    changed = json.loads(invoke("diff", *pair, "-f", "json", "--changed").stdout)["steps"]
    assert all(row["status"] != "same" for row in changed) and len(changed) == 5


def test_sessions_of_one_file_can_be_compared(tmp_path: Path) -> None:
    both = write_trace(tmp_path / "both.jsonl",
                       agent_session(conversation="s1", trace="1" * 32)
                       + agent_session(conversation="s2", trace="2" * 32, second_chat_tokens=900, offset=50))
    result = invoke("diff", both, both, "--session-a", "s1", "--session-b", "s2", "-f", "json")
    assert result.exit_code == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["totals"]["tokens"]["delta"] == 400
    assert document["a"]["selection"]["sessions"] == ["s1"]


def test_gpu_figures_are_compared_when_measured(tmp_path: Path) -> None:
    runs = []
    for name, watts in (("a", 100.0), ("b", 300.0)):
        run_dir = tmp_path / name
        run_dir.mkdir()
        write_trace(run_dir / "spans.jsonl", agent_session(conversation=name))
        write_samples(run_dir / "samples.csv", 0.0, 10.0, watts=watts)
        runs.append(profiler.attribute(profiler.load(run_dir), prices=profiler.load_prices(gpu_usd_per_hour=2.0)))
    diff = diff_ledgers(*runs)
    assert diff.totals["energy_j"]["a"] == pytest.approx(1000.0)
    assert diff.totals["energy_j"]["delta"] == pytest.approx(2000.0)
    steps = diff.steps.set_index("key")
    assert steps.loc["session#0", "energy_j_delta"] == pytest.approx(2000.0)
    assert steps.loc["session#0", "gpu_mem_gib_s_delta"] == pytest.approx(0.0)
    assert len(top_changes(diff, 2)) == 2 and len(only_changed(diff)) >= 1


def test_a_missing_side_is_a_one_line_error(pair: tuple[Path, Path], tmp_path: Path) -> None:
    result = invoke("diff", pair[0], tmp_path / "missing.jsonl")
    assert result.exit_code == 1 and result.stderr.startswith("sessionprof: error:")
    assert "missing.jsonl" in result.stderr
