"""SVG drawn in Python for the HTML report: the timeline waterfall with GPU lanes, and turn charts.

Geometry only; every figure comes from the ledger or `profiler.analysis.insights`. Every string from a trace
goes through `esc`.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

import numpy as np
import pandas as pd

from reports._cells import missing, number, usd

WIDTH = 1180
LABEL_W = 300
ROW_H = 17
LANE_H = 84
MAX_WATERFALL_ROWS = 300
#: The cost ramp, cheap to dear; a step without a dollar figure is grey.
RAMP = ("#fdf0c4", "#f7c46c", "#ec8a3a", "#d4522a", "#9e1f1a")
NO_COST = "#d0d5dd"
GPU_COLOURS = ("#3b6fd8", "#d9822b", "#2e9e6a", "#7a4cc2", "#c2417a", "#3a9fb0", "#8a8f2e", "#555")
TOOL_SHADE = "#2e9e6a"
_KIND_LABEL = {"chat": "model", "execute_tool": "tool", "invoke_agent": "agent", "session": "session"}


def esc(value: Any) -> str:
    """Text from a trace, safe inside HTML and SVG text and attributes."""
    return escape(str(value), quote=True)


def cost_colour(value: float, top: float) -> str:
    """The ramp colour of `value` dollars on a log scale whose dearest step is `top` (four decades)."""
    if missing(value) or missing(top):
        return NO_COST
    if value <= 0 or top <= 0:
        return RAMP[0]
    position = min(max((math.log10(value / top) + 4.0) / 4.0, 0.0), 1.0) * (len(RAMP) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(RAMP) - 1)
    return _mix(RAMP[low], RAMP[high], position - low)


def _mix(a: str, b: str, t: float) -> str:
    ca = [int(a[i:i + 2], 16) for i in (1, 3, 5)]
    cb = [int(b[i:i + 2], 16) for i in (1, 3, 5)]
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb, strict=True))


def nice_step(span: float, target: int = 8) -> float:
    """A round tick interval (1, 2, 5 x 10^k) giving about `target` ticks over `span`."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _seconds_label(value: float, step: float) -> str:
    if step >= 60 and value % 60 == 0:
        return f"{value / 60:g} min"
    return f"{value:.{max(0, -math.floor(math.log10(step)))}f} s" if step < 1 else f"{value:g} s"


class _Axis:
    """Maps epoch nanoseconds to x pixels over the plot area."""

    def __init__(self, t0_ns: int, t1_ns: int, left: float, right: float) -> None:
        self.t0, self.span = t0_ns, max(t1_ns - t0_ns, 1)
        self.left, self.right = left, right

    def x(self, t_ns: float) -> float:
        return self.left + (t_ns - self.t0) / self.span * (self.right - self.left)

    def ticks(self) -> list[tuple[float, str]]:
        span_s = self.span / 1e9
        step = nice_step(span_s)
        count = int(span_s / step + 1e-9)
        return [(self.x(self.t0 + i * step * 1e9), _seconds_label(round(i * step, 9), step)) for i in range(count + 1)]


def timeline(steps: pd.DataFrame, series: pd.DataFrame, window: tuple[int, int], tool_spans: pd.DataFrame,
             gpu_names: dict[str, str]) -> str:
    """The waterfall of `steps` (already in tree order) over `window`, with power and memory lanes.

    Bars are coloured by each step's own total dollars; the lanes share the time axis.
    """
    t0, t1 = window
    if t1 <= t0:
        t1 = t0 + 1_000_000_000
    shown = steps.head(MAX_WATERFALL_ROWS)
    axis = _Axis(t0, t1, LABEL_W + 10, WIDTH - 16)
    top_cost = float(np.nanmax(shown["self_total_cost_usd"].to_numpy(dtype=float))) \
        if shown["self_total_cost_usd"].notna().any() else math.nan
    rows_h = max(len(shown), 1) * ROW_H
    y_lanes = 26 + rows_h + 12
    height = y_lanes + 2 * (LANE_H + 22) + 40
    out = [f'<svg id="timeline-svg" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="Timeline of steps with GPU power and memory">']
    for x, label in axis.ticks():
        out.append(f'<line class="grid" x1="{x:.1f}" y1="18" x2="{x:.1f}" y2="{height - 34}"/>')
        out.append(f'<text x="{x:.1f}" y="12" text-anchor="middle" class="muted">{esc(label)}</text>')
    if shown.empty:
        out.append(f'<text x="{axis.left}" y="40" class="muted">— no steps recorded in this run</text>')
    for i, row in enumerate(shown.to_dict("records")):
        y = 22 + i * ROW_H
        x0, x1 = axis.x(row["start_ns"]), axis.x(row["end_ns"])
        fill = cost_colour(row["self_total_cost_usd"], top_cost)
        label = str(row["name"])
        label = label if len(label) <= 44 else label[:43] + "…"
        kind = str(row["kind"])
        indent = 6 + 12 * min(int(row["depth"]), 12)
        stroke = ' stroke="#9e1f1a" stroke-width="1.5"' if row["status"] == "error" else ""
        out.append(f'<g class="step" data-span-id="{esc(row["span_id"])}"><title>{esc(_tooltip(row))}</title>')
        out.append(f'<text x="{indent}" y="{y + 12}" class="k-{esc(kind)}">{esc(label)}</text>')
        out.append(f'<rect x="{x0:.1f}" y="{y + 2}" width="{max(x1 - x0, 1.5):.1f}" height="{ROW_H - 4}" rx="2" '
                   f'fill="{fill}"{stroke}/></g>')
    if len(steps) > len(shown):
        out.append(f'<text x="6" y="{22 + rows_h + 8}" class="muted">… {len(steps) - len(shown)} more steps '
                   "(see the tree below)</text>")
    out.extend(_lanes(series, tool_spans, axis, y_lanes, gpu_names))
    out.extend(_legend(top_cost, height - 22))
    out.append("</svg>")
    return "".join(out)


def _tooltip(row: dict[str, Any]) -> str:
    parts = [str(row["name"]), f"kind {row['kind']}", f"wall {number(row['wall_s'], 3)} s",
             f"own $ {usd(row['self_total_cost_usd'])} (incl. children {usd(row['total_cost_usd'])})",
             f"own GPU J {number(row['self_energy_j'], 1)}", f"own GiB·s {number(row['self_gpu_mem_gib_s'], 2)}"]
    if row["status"] == "error":
        parts.append(f"error {row['error_type'] or ''}")
    return "\n".join(parts)


def _lanes(series: pd.DataFrame, tool_spans: pd.DataFrame, axis: _Axis, y: float,
           gpu_names: dict[str, str]) -> list[str]:
    out: list[str] = []
    lanes = (("power_w", "GPU power", "W"), ("mem_used_gib", "GPU memory used", "GiB"))
    for index, (column, title, unit) in enumerate(lanes):
        top = y + index * (LANE_H + 22)
        out.append(f'<text x="6" y="{top + 14}" font-weight="600">{title} ({unit})</text>')
        out.append(f'<rect x="{axis.left}" y="{top}" width="{axis.right - axis.left}" height="{LANE_H}" '
                   'fill="none" class="axis"/>')
        for span in tool_spans[["name", "start_ns", "end_ns"]].to_dict("records"):
            x0, x1 = axis.x(span["start_ns"]), axis.x(span["end_ns"])
            out.append(f'<rect x="{x0:.1f}" y="{top}" width="{max(x1 - x0, 1):.1f}" height="{LANE_H}" '
                       f'fill="{TOOL_SHADE}" fill-opacity="0.10"><title>tool: {esc(span["name"])}</title></rect>')
        values = series[column].to_numpy(dtype=float) if len(series) else np.zeros(0)
        if not np.isfinite(values).any():
            out.append(f'<text x="{axis.left + 8}" y="{top + LANE_H / 2 + 4}" class="muted">— not measured '
                       f'(no GPU {"power" if column == "power_w" else "memory"} samples in this run)</text>')
            continue
        peak = float(np.nanmax(values)) or 1.0
        out.append(f'<text x="{LABEL_W}" y="{top + 10}" text-anchor="end" class="muted">{number(peak, 1)}</text>')
        out.append(f'<text x="{LABEL_W}" y="{top + LANE_H}" text-anchor="end" class="muted">0</text>')
        for g, (gpu, group) in enumerate(series.groupby("gpu", sort=False)):
            colour = GPU_COLOURS[g % len(GPU_COLOURS)]
            good = group[np.isfinite(group[column].to_numpy(dtype=float))]
            points = " ".join(f"{axis.x(t):.1f},{top + LANE_H - v / peak * (LANE_H - 6):.1f}"
                              for t, v in zip(good["t_ns"], good[column], strict=True))
            name = gpu_names.get(str(gpu)) or str(gpu)
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}">'
                       f"<title>{esc(name)}</title></polyline>")
            out.append(f'<text x="6" y="{top + 30 + 13 * g}" fill="{colour}">■ {esc(name[:40])}</text>')
    return out


def _legend(top_cost: float, y: float) -> list[str]:
    out = ['<defs><linearGradient id="cost-ramp">']
    for i, colour in enumerate(RAMP):
        out.append(f'<stop offset="{i / (len(RAMP) - 1):.2f}" stop-color="{colour}"/>')
    out.append("</linearGradient></defs>")
    out.append(f'<text x="6" y="{y + 10}" class="muted">bar colour: the step\'s own $ (log scale)</text>')
    out.append(f'<rect x="{LABEL_W + 10}" y="{y}" width="160" height="10" fill="url(#cost-ramp)"/>')
    out.append(f'<text x="{LABEL_W + 176}" y="{y + 9}" class="muted">right: {usd(top_cost)} (dearest step); '
               "left: 1/10,000 of it or less</text>")
    out.append(f'<rect x="{LABEL_W + 540}" y="{y}" width="14" height="10" fill="{NO_COST}"/>')
    out.append(f'<text x="{LABEL_W + 558}" y="{y + 9}" class="muted">no $ figure</text>')
    out.append(f'<rect x="{LABEL_W + 650}" y="{y}" width="14" height="10" fill="{TOOL_SHADE}" fill-opacity="0.25"/>')
    out.append(f'<text x="{LABEL_W + 668}" y="{y + 9}" class="muted">tool call running (GPU lanes)</text>')
    return out


def turns_cost_chart(turns: pd.DataFrame, final_usd: float | None) -> str:
    """Cumulative dollars after each model call, with the run's total as the last point."""
    w, h, left, bottom = 560, 230, 78, 34
    if turns.empty:
        return _empty_chart(w, h, "— no model calls in this run")
    values = list(turns["cumulative_cost_usd"].astype(float))
    labels = [f"{i + 1}" for i in range(len(values))]
    if final_usd is not None:
        values.append(final_usd)
        labels.append("end")
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return _empty_chart(w, h, "— no priced step: cumulative $ not available")
    peak = max(finite) or 1.0
    step_x = (w - left - 16) / max(len(values), 1)
    out = [_chart_open("cost-chart", w, h, "Cumulative dollars over the turns")]
    out.extend(_y_axis(left, 12, h - bottom, peak, usd))
    points = []
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        x = left + step_x * (i + 0.5)
        out.append(f'<text x="{x:.1f}" y="{h - bottom + 14}" text-anchor="middle" class="muted">{label}</text>')
        if math.isfinite(value):
            yv = h - bottom - value / peak * (h - bottom - 12)
            points.append(f"{x:.1f},{yv:.1f}")
            out.append(f'<circle cx="{x:.1f}" cy="{yv:.1f}" r="3.5" fill="#b3261e"><title>after '
                       f'{"turn " + label if label != "end" else "the run"}: {usd(value)}</title></circle>')
    out.append(f'<polyline fill="none" stroke="#b3261e" stroke-width="2" points="{" ".join(points)}"/>')
    out.append(f'<text x="{left}" y="{h - 4}" class="muted">model call (turn) → ; "end" = the whole run</text>')
    out.append("</svg>")
    return "".join(out)


def turns_context_chart(turns: pd.DataFrame) -> str:
    """Input tokens of each model call, split into cache reads and the rest, with the re-sent part."""
    w, h, left, bottom = 560, 230, 78, 34
    if turns.empty:
        return _empty_chart(w, h, "— no model calls in this run")
    inputs = turns["input_tokens"].to_numpy(dtype=float)
    cached = np.nan_to_num(turns["cache_read_tokens"].to_numpy(dtype=float))
    resent = turns["resent_tokens"].to_numpy(dtype=float)
    peak = float(np.nanmax(inputs)) if np.isfinite(inputs).any() else 0.0
    if peak <= 0:
        return _empty_chart(w, h, "— no input tokens reported")
    step_x = (w - left - 16) / len(inputs)
    bar_w = max(min(step_x * 0.7, 40), 2)
    scale = (h - bottom - 12) / peak
    out = [_chart_open("context-chart", w, h, "Context size per model call")]
    out.extend(_y_axis(left, 12, h - bottom, peak, lambda v: number(v, 0)))
    base = h - bottom
    for i, (inp, hit, again) in enumerate(zip(inputs, cached, resent, strict=True)):
        x = left + step_x * (i + 0.5) - bar_w / 2
        tip = f"turn {i + 1}: {number(inp, 0)} input tokens, {number(hit, 0)} from the prompt cache, " \
              f"{number(again, 0)} re-sent from the previous turn"
        if math.isfinite(inp):
            out.append(f'<g><title>{esc(tip)}</title><rect x="{x:.1f}" y="{base - inp * scale:.1f}" '
                       f'width="{bar_w:.1f}" height="{inp * scale:.1f}" fill="#3b6fd8"/>'
                       f'<rect x="{x:.1f}" y="{base - hit * scale:.1f}" width="{bar_w:.1f}" '
                       f'height="{hit * scale:.1f}" fill="#2e9e6a"/></g>')
            if again > 0:
                out.append(f'<line x1="{x - 2:.1f}" x2="{x + bar_w + 2:.1f}" y1="{base - again * scale:.1f}" '
                           f'y2="{base - again * scale:.1f}" stroke="#1d2330" stroke-width="2" '
                           'stroke-dasharray="3 2"/>')
        if len(inputs) <= 40 or i % max(len(inputs) // 20, 1) == 0:
            out.append(f'<text x="{x + bar_w / 2:.1f}" y="{base + 14}" text-anchor="middle" class="muted">'
                       f"{i + 1}</text>")
    out.append(f'<rect x="{left}" y="{h - 12}" width="10" height="8" fill="#3b6fd8"/>'
               f'<text x="{left + 14}" y="{h - 4}" class="muted">input tokens</text>'
               f'<rect x="{left + 100}" y="{h - 12}" width="10" height="8" fill="#2e9e6a"/>'
               f'<text x="{left + 114}" y="{h - 4}" class="muted">from prompt cache</text>'
               f'<line x1="{left + 230}" x2="{left + 246}" y1="{h - 8}" y2="{h - 8}" stroke="#1d2330" '
               f'stroke-width="2" stroke-dasharray="3 2"/><text x="{left + 250}" y="{h - 4}" class="muted">'
               "re-sent from the previous turn</text>")
    out.append("</svg>")
    return "".join(out)


def _chart_open(element_id: str, w: int, h: int, label: str) -> str:
    return (f'<svg id="{element_id}" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" role="img" aria-label="{esc(label)}">')


def _y_axis(left: float, top: float, bottom: float, peak: float, fmt: Any) -> list[str]:
    out = []
    for fraction in (0.0, 0.5, 1.0):
        y = bottom - fraction * (bottom - top)
        out.append(f'<line class="grid" x1="{left}" x2="{WIDTH}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="muted">'
                   f"{fmt(peak * fraction)}</text>")
    out.append(f'<line class="axis" x1="{left}" x2="{left}" y1="{top}" y2="{bottom}"/>')
    return out


def _empty_chart(w: int, h: int, message: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h // 3}" viewBox="0 0 {w} {h // 3}">'
            f'<text x="12" y="30" class="muted">{esc(message)}</text></svg>')
