"""The HTML report: self-contained, escaped, "—" for missing figures, numbers equal to the JSON
ledger's; and in a real headless Chromium: no errors, no network, a screenshot."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from profiler.attribution.ledger import Ledger
from reports import render
from reports._cells import api_cell, number, tokens, usd
from reports._html_assets import CONTENT_SECURITY_POLICY, JS_HEAD

HOSTILE = "<script>alert(1)</script>"
VOID = {"meta", "br", "img", "input", "link", "hr", "wbr", "source", "area", "base", "col", "embed", "track"}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--hide-scrollbars", "--enable-logging=stderr", "--v=0")


# --- a small DOM, enough to read figures back -----------------------------------------------------------

@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(default_factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):  # noqa: ANN201
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.walk()

    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse(page: str) -> Node:
    builder = _Builder()
    builder.feed(page)
    builder.close()
    return builder.root


# --- what the page must show, computed from the JSON ledger ---------------------------------------------

def _kwh(value: float | None) -> str:
    return "—" if value is None else (f"{value:.6f}" if value < 0.01 else f"{value:,.3f}")


CARD_TEXT = {
    "api_cost_usd": usd, "gpu_cost_usd": usd, "energy_cost_usd": usd,
    "input_tokens": lambda v: number(v, 0), "output_tokens": lambda v: number(v, 0), "energy_kwh": _kwh,
    "co2_g": lambda v: number(v, 2), "gpu_mem_gib_s": lambda v: number(v, 1),
    "idle_hold_gib_s": lambda v: number(v, 1), "gpu_mem_peak_gib": lambda v: number(v, 2),
    "wall_s": lambda v: number(v, 2),
}
CELL_TEXT = {
    "wall_s": lambda v: number(v, 2), "self_wall_s": lambda v: number(v, 2), "input_tokens": tokens,
    "output_tokens": tokens, "energy_j": lambda v: number(v, 1), "self_energy_j": lambda v: number(v, 1),
    "gpu_mem_gib_s": lambda v: number(v, 2), "self_gpu_mem_gib_s": lambda v: number(v, 2),
    "idle_hold_gib_s": lambda v: number(v, 2), "gpu_mem_peak_gib": lambda v: number(v, 2),
    "total_cost_usd": usd, "self_total_cost_usd": usd,
}


def assert_figures_match_json(dom: Node, ledger: Ledger) -> int:
    """Every headline card and every tree cell shows the JSON ledger's figure; returns cells checked."""
    document = json.loads(render(ledger, "json"))
    totals = document["totals"]
    cards = {n.attrs["data-figure"]: n for n in dom.walk() if "data-figure" in n.attrs}
    assert set(CARD_TEXT) | {"total_cost_usd"} == set(cards)
    for figure, fmt in CARD_TEXT.items():
        value_node = next(n for n in cards[figure].walk() if "value" in n.classes())
        assert value_node.text() == fmt(totals[figure]), figure
        assert cards[figure].attrs["data-value"] == ("" if totals[figure] is None else repr(float(totals[figure])))
    total_text = next(n for n in cards["total_cost_usd"].walk() if "value" in n.classes()).text()
    assert total_text == usd(totals["total_cost_usd"]) + ("+?" if document["checks"]["unpriced_calls"] else "")

    steps = {(s["trace_id"] or "", s["span_id"]): s for s in document["steps"]}
    checked = 0
    rows = [n for n in dom.walk() if "data-span-id" in n.attrs and "row" in n.classes()]
    shown = {(r.attrs["data-trace-id"], r.attrs["data-span-id"]) for r in rows}
    assert len(shown) == len(rows)
    expected = {(s["trace_id"] or "", s["span_id"]) for s in document["steps"]
                if s["kind"] != "unattributed" or document["totals"]["gpus"]}
    assert shown == expected
    for row in rows:
        step = steps[(row.attrs["data-trace-id"], row.attrs["data-span-id"])]
        for cell in (n for n in row.walk() if "data-col" in n.attrs):
            column = cell.attrs["data-col"]
            value = step[column]
            assert cell.attrs["data-value"] == ("" if value is None else repr(float(value))), (step["name"], column)
            text = api_cell(pd.Series(step)) if column == "api_cost_usd" else CELL_TEXT[column](value)
            assert cell.text() == text, (step["name"], column)
            checked += 1
    return checked


# --- static checks --------------------------------------------------------------------------------------

def test_page_is_self_contained(golden_ledger: Ledger) -> None:
    page = render(golden_ledger, "html")
    dom = parse(page)
    csp = [n for n in dom.walk() if n.tag == "meta" and n.attrs.get("http-equiv") == "Content-Security-Policy"]
    assert csp and csp[0].attrs["content"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    for node in dom.walk():
        assert node.tag not in ("link", "iframe", "object", "embed", "img"), node.tag
        for name in ("src", "href", "action", "srcset", "poster"):
            assert name not in node.attrs or node.attrs[name].startswith(("#", "data:")), (node.tag, name)
    assert [n.attrs for n in dom.walk() if n.tag == "script"] == [{}]  # one inline script, no src
    assert not re.search(r"url\((?!#)", page), "no CSS url() other than in-page references"
    assert "@import" not in page
    assert len(page) < 400_000


def test_only_the_pages_own_script_may_run_named_by_its_hash(golden_ledger: Ledger) -> None:
    page = render(golden_ledger, "html")
    directives = dict(part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";"))
    [script] = re.findall(r"<script>(.*?)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    assert directives["script-src"] == f"'sha256-{digest}'"  # no 'unsafe-inline': an injected script is refused
    assert "unsafe-inline" not in directives["script-src"] and "unsafe-eval" not in CONTENT_SECURITY_POLICY


def test_the_header_says_where_the_gpu_figures_come_from(golden_ledger: Ledger, cpu_only_ledger: Ledger) -> None:
    def header(ledger: Ledger) -> str:
        return re.search(r'<div class="sub">(.*?)</div>', render(ledger, "html")).group(1)

    assert "· GPU: none sampled" in header(cpu_only_ledger)
    smi = copy.deepcopy(golden_ledger)
    smi.run.update(gpus=[], gpu_samples_kind="nvidia-smi CSV", gpu_samples_source="gpu.csv")
    gpus = ", ".join(g["gpu"] for g in smi.totals["gpus"])
    assert f"· GPU: {gpus} (from nvidia-smi CSV gpu.csv)" in header(smi)
    nvml = copy.deepcopy(golden_ledger)
    nvml.run.update(gpus=[{"uuid": "GPU-1", "name": "NVIDIA H100 80GB HBM3"}], gpu_backend="nvml")
    assert "· GPU: NVIDIA H100 80GB HBM3 (from NVML samples)" in header(nvml)
    nvml.run["gpu_backend"] = "replay"
    assert "· GPU: NVIDIA H100 80GB HBM3 (from a replay of recorded samples)" in header(nvml)


def test_trace_strings_are_escaped(hostile_ledger: Ledger) -> None:
    page = render(hostile_ledger, "html")
    assert HOSTILE not in page and "<img src=x" not in page and "<b>acme</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    dom = parse(page)
    assert sum(1 for n in dom.walk() if n.tag == "script") == 1
    assert not [n for n in dom.walk() if n.tag == "img"]
    assert not [n for n in dom.walk() if n.tag == "b" and "acme" in n.text() and n.text() != "<b>acme</b>"]
    unpriced = next(n for n in dom.walk() if n.attrs.get("data-insight") == "unpriced")
    assert "<b>acme</b>" in unpriced.text()  # the model name shows as text
    names = [n.text() for n in dom.walk() if "name" in n.classes()]
    assert HOSTILE in names  # shown as text, in the tree
    svg_labels = [n.text() for n in dom.walk() if n.tag in ("text", "title")]
    assert any(HOSTILE in label for label in svg_labels)  # and in the timeline


@pytest.mark.parametrize("which", ["cpu_only_ledger", "empty_ledger"])
def test_missing_figures_show_a_dash_never_zero(which: str, request: pytest.FixtureRequest) -> None:
    ledger = request.getfixturevalue(which)
    dom = parse(render(ledger, "html"))
    cards = {n.attrs["data-figure"]: n for n in dom.walk() if "data-figure" in n.attrs}
    for figure in ("gpu_cost_usd", "energy_cost_usd", "energy_kwh", "co2_g", "gpu_mem_gib_s", "idle_hold_gib_s"):
        value = next(n for n in cards[figure].walk() if "value" in n.classes()).text()
        assert value == "—", figure
        assert cards[figure].attrs["data-value"] == ""
        assert "not measured" in cards[figure].text()
    for cell in (n for n in dom.walk() if n.attrs.get("data-col") in ("energy_j", "gpu_mem_gib_s", "self_energy_j")):
        assert cell.text() == "—"
    insights = {n.attrs["data-insight"]: n.text() for n in dom.walk() if "data-insight" in n.attrs}
    assert insights["idle_hold"].startswith("Idle hold: —")
    lanes = [n.text() for n in dom.walk() if n.tag == "text" and "not measured" in n.text()]
    assert len(lanes) == 2  # the power and memory lanes say so instead of drawing a flat 0
    assert_figures_match_json(dom, ledger)


def test_numbers_match_the_json_ledger(golden_ledger: Ledger) -> None:
    dom = parse(render(golden_ledger, "html"))
    assert assert_figures_match_json(dom, golden_ledger) == 14 * 13  # rows (13 steps + unattributed) x columns
    cards = {n.attrs["data-figure"]: n for n in dom.walk() if "data-figure" in n.attrs}
    assert next(n for n in cards["total_cost_usd"].walk() if "value" in n.classes()).text() == "$0.0124+?"
    assert next(n for n in cards["input_tokens"].walk() if "value" in n.classes()).text() == "12,100"


def test_insights_are_there_with_their_sources(golden_ledger: Ledger) -> None:
    dom = parse(render(golden_ledger, "html"))
    insights = {n.attrs["data-insight"]: n.text() for n in dom.walk() if "data-insight" in n.attrs}
    expected = {"idle_hold", "context", "cache", "reasoning", "unpriced", "estimated", "break_even", "errors"}
    assert expected <= set(insights)
    assert "176.6 GiB·s" in insights["idle_hold"] and "5 tool call(s)" in insights["idle_hold"]
    assert "9,750 (81%)" in insights["context"]
    assert "45%" in insights["cache"] and "16%" in insights["reasoning"]
    assert "acme-llm-1" in insights["unpriced"]
    assert "3 self-hosted call(s)" in insights["break_even"]
    for text in insights.values():
        assert text.rstrip().endswith(")"), text  # each ends with its source in parentheses
    sections = [n.attrs["id"] for n in dom.walk() if n.tag == "section"]
    assert sections == ["headline", "insights", "timeline", "turns", "tree", "breakdowns", "top", "notes"]
    groups = {n.attrs["data-group"] for n in dom.walk() if "data-group" in n.attrs}
    assert groups == {"tool", "model", "kind"}
    tops = {n.attrs["data-top"] for n in dom.walk() if "data-top" in n.attrs}
    assert tops == {"self_total_cost_usd", "self_energy_j", "self_gpu_mem_gib_s"}
    notes = " ".join(n.text() for n in dom.walk() if n.tag == "section" and n.attrs["id"] == "notes")
    assert "conservation check: held" in notes and "measured:nvml-counter" in notes


def test_tree_folds_without_javascript(golden_ledger: Ledger) -> None:
    dom = parse(render(golden_ledger, "html"))
    details = [n for n in dom.walk() if n.tag == "details"]
    parents = {"session golden", "invoke_agent planner", "summarise"}
    assert len(details) == len(parents)
    for node in details:
        summary = next(c for c in node.children if isinstance(c, Node))
        assert summary.tag == "summary" and "open" in node.attrs
    nested = [n for n in details[0].walk() if n.tag == "details"]
    assert len(nested) == 3  # session > agent > summarise


# --- headless Chromium ----------------------------------------------------------------------------------

def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _launch(binary: str, profile: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.skipif(_chromium() is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_page_in_headless_chromium(hostile_ledger: Ledger, tmp_path: Path) -> None:
    binary = _chromium()
    assert binary
    page = tmp_path / "report.html"
    page.write_text(render(hostile_ledger, "html"), encoding="utf-8")
    control = tmp_path / "control.html"  # proves the checks below can fail
    control.write_text(
        f'<!DOCTYPE html><html><head><meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        f'<script>{JS_HEAD}</script></head><body><img src="http://127.0.0.1:9/x.png">'
        '<script>console.error("boom"); missing_function();</script>'
        '<pre id="page-errors" data-count="0" hidden></pre></body></html>', encoding="utf-8")
    screenshot = tmp_path / "report.png"
    runs = {
        "dom": _launch(binary, tmp_path / "profile-dom", "--dump-dom", page.as_uri()),
        "shot": _launch(binary, tmp_path / "profile-shot", "--window-size=1280,2400", f"--screenshot={screenshot}",
                        page.as_uri()),
        "control": _launch(binary, tmp_path / "profile-control", "--dump-dom", control.as_uri()),
    }
    results = {}
    try:
        for name, process in runs.items():
            results[name] = process.communicate(timeout=60)
    finally:
        for process in runs.values():
            if process.poll() is None:
                process.kill()
                process.wait()

    control_dom = parse(results["control"][0])
    control_errors = next(n for n in control_dom.walk() if n.attrs.get("id") == "page-errors")
    assert int(control_errors.attrs["data-count"]) >= 2, control_errors.text()
    # The page's own script runs (it records the errors); the injected one is refused by its hash.
    assert "blocked: img-src" in control_errors.text() and "blocked: script-src" in control_errors.text()
    assert "boom" not in control_errors.text()
    assert re.search(r":CONSOLE[:(]\d+", results["control"][1]), "chromium logs console messages to stderr"

    out, err = results["dom"]
    assert runs["dom"].returncode == 0, err[-2000:]
    dom = parse(out)
    body = next(n for n in dom.walk() if n.tag == "body")
    assert body.attrs.get("data-js") == "ok", "the page's script did not run"
    assert body.attrs.get("data-resources") == "0", "the page loaded a resource"
    errors = next(n for n in dom.walk() if n.attrs.get("id") == "page-errors")
    assert errors.attrs["data-count"] == "0", errors.text()
    assert not re.findall(r".*:CONSOLE[:(]\d+.*", err), "console messages: " + err[-2000:]
    assert sum(1 for n in dom.walk() if n.tag == "script") == 1
    assert HOSTILE in [n.text() for n in dom.walk() if "name" in n.classes()]
    assert_figures_match_json(dom, hostile_ledger)
    buttons = [n for n in dom.walk() if "data-tree-toggle" in n.attrs]
    assert buttons and all("hidden" not in b.attrs for b in buttons), "the script revealed the tree buttons"

    assert runs["shot"].returncode == 0, results["shot"][1][-2000:]
    data = screenshot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 50_000
    print(f"screenshot: {screenshot}")


def test_two_sessions_add_a_session_breakdown(two_session_ledger: Ledger) -> None:
    dom = parse(render(two_session_ledger, "html"))
    groups = {n.attrs["data-group"] for n in dom.walk() if "data-group" in n.attrs}
    assert groups == {"tool", "model", "kind", "session"}
    assert_figures_match_json(dom, two_session_ledger)
    turns = [n for n in dom.walk() if n.tag == "circle"]
    assert len(turns) == 10 + 1  # five calls per session, then the run's total
