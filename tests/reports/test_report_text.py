"""What a reader sees in the terminal table and the Markdown: every step, the totals, where figures came from."""

from __future__ import annotations

import pytest

from profiler.attribution.ledger import Ledger
from reports import render
from reports._cells import notes

#: The golden run's totals row, as printed: wall s, in/out tokens, API $, GPU J, GiB·s, idle GiB·s, peak, total $.
GOLDEN_TOTALS = ("13", "12,100", "1,550", "$0.003353", "2,274", "510.20", "328.41", "42", "$0.0124")
GOLDEN_NOTES = (
    "tokens: provider-reported usage on model-call spans",
    "conservation check: held (steps + session overhead + unattributed = measured, per GPU)",
    "unpriced: 1 model call(s) of acme-llm-1 (not in genai-prices; totals exclude them)",
    "GPU $: computed: GPU-seconds x $/GPU-hour (default rate for H100)",
)


def _table_rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def _markdown_rows(text: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("|")]


def test_the_table_shows_every_step_in_tree_order_with_its_figures(golden_ledger: Ledger) -> None:
    text = str(render(golden_ledger, "table", width=250))  # wide: one line per row and per note
    lines = text.splitlines()
    assert lines[0] == "Run golden   1 session(s), 12 steps, 5 model calls, 5 tool calls, 13 s"
    labels = [line[: line.index("  ", len(line) - len(line.lstrip()))] for line in lines[2:16]]
    assert [label.strip() for label in labels] == [
        "session golden", "invoke_agent planner", "chat meta-llama/Llama-3.1-8B-Instruct",
        "execute_tool cache_lookup", "execute_tool web_search", "chat meta-llama/Llama-3.1-8B-Instruct",
        "execute_tool read_page", "execute_tool calculator", "chat o4-mini", "chat acme-llm-1", "summarise",
        "chat meta-llama/Llama-3.1-8B-Instruct", "execute_tool flaky_api [error: TimeoutError]",
        "(unattributed: GPU time outside every session)"]
    assert labels[1].startswith("  invoke_agent") and labels[11].startswith("      chat")  # indented by depth
    rows = {" ".join(row[:2]): row for row in _table_rows(text)}
    assert rows["chat o4-mini"][-9:] == ["1", "2,600", "400", "$0.003353", "72.5", "42.00", "42.00", "42",
                                         "$0.004047"]
    assert "unpriced" in rows["chat acme-llm-1"] and "self-hosted" in rows["chat meta-llama/Llama-3.1-8B-Instruct"]
    assert rows["Total (measured)"][2:] == list(GOLDEN_TOTALS)
    for note in (*GOLDEN_NOTES, *notes(golden_ledger)):
        assert note in lines, note


def test_the_markdown_shows_every_step_the_totals_and_the_notes(golden_ledger: Ledger) -> None:
    text = str(render(golden_ledger, "markdown"))
    rows = _markdown_rows(text)
    assert text.startswith("### Run golden\n")
    assert rows[0] == ["Step", "Kind", "Wall s", "In tok", "Out tok", "API $", "GPU J", "GiB·s", "Idle GiB·s",
                       "Peak GiB", "Total $"]
    steps = [row[0] for row in rows[2:-1]]
    assert steps[0] == "session golden" and steps[1] == "&nbsp;&nbsp;invoke_agent planner"
    assert "&nbsp;" * 6 + "chat meta-llama/Llama-3.1-8B-Instruct" in steps
    assert "&nbsp;" * 4 + "execute_tool flaky_api [error: TimeoutError]" in steps
    assert steps[-1] == "(unattributed: GPU time outside every session)" and len(steps) == 14
    o4 = next(row for row in rows if row[0].endswith("chat o4-mini"))
    assert o4[1:] == ["chat", "1", "2,600", "400", "$0.003353", "72.5", "42.00", "42.00", "42", "$0.004047"]
    assert rows[-1] == ["**Total (measured)**", "", *GOLDEN_TOTALS]
    for note in (*GOLDEN_NOTES, *notes(golden_ledger)):
        assert f"- {note}" in text.splitlines(), note


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_a_run_without_gpu_samples_says_so_and_prints_no_zero_joules(fmt: str, cpu_only_ledger: Ledger) -> None:
    text = str(render(cpu_only_ledger, fmt, width=250))
    assert "GPU: — not measured (no GPU samples in this run)" in text
    total = next(line for line in text.splitlines() if "Total (measured)" in line)
    cells = total.replace("|", " ").split()
    assert cells[-6:] == ["$0.003353", "—", "—", "—", "—", "$0.003353"]  # GPU figures missing, not 0
    assert "conservation check" not in text


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_the_empty_run_prints_its_totals_row_and_notes(fmt: str, empty_ledger: Ledger) -> None:
    text = str(render(empty_ledger, fmt))
    total = next(line for line in text.splitlines() if "Total (measured)" in line)
    assert total.replace("|", " ").split()[-7:] == ["0", "—", "—", "—", "—", "—", "—"]
    assert "GPU: — not measured (no GPU samples in this run)" in text
    assert "tokens: provider-reported usage on model-call spans" in text


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_a_grouped_report_lists_each_group_with_its_count(fmt: str, golden_ledger: Ledger) -> None:
    text = str(render(golden_ledger, fmt, by="tool", width=250))
    names = [row[0] for row in (_markdown_rows(text)[2:-1] if fmt == "markdown" else _table_rows(text)[2:7])]
    assert sorted(names) == ["cache_lookup", "calculator", "flaky_api", "read_page", "web_search"]
    if fmt == "table":
        assert "by tool: each step's own share (children excluded), summed" in text
    assert "conservation check: held (steps + session overhead + unattributed = measured, per GPU)" in text


def test_brackets_in_a_step_name_are_printed_not_taken_for_styles(golden_ledger: Ledger) -> None:
    import copy

    from profiler.analysis.diff import diff_ledgers
    from profiler.analysis.sessions import session_summaries
    from reports.diff_report import render_diff
    from reports.sessions_report import render_sessions

    ledger = copy.deepcopy(golden_ledger)
    ledger.steps.loc[ledger.steps["name"] == "summarise", "name"] = "[bold]summarise[/bold] [draft]"
    assert "[bold]summarise[/bold] [draft]" in str(render(ledger, "table", width=250))
    assert "[bold]summarise[/bold] [draft]" in render_diff(diff_ledgers(golden_ledger, ledger), "table", width=250)
    ledger.steps["session_id"] = "[red]conv[/red]"
    assert "[red]conv[/red]" in render_sessions(session_summaries(ledger), "table")
