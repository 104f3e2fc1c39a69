"""Cost flame graphs: speedscope JSON and folded stacks, weighted by each step's own dollars, GPU
joules or GPU memory held (GiB*s) instead of time.

    sessionprof report RUN -f speedscope --weight joules -o run.speedscope.json   # open in speedscope.app
    sessionprof report RUN -f folded --weight usd > run.folded                   # flamegraph.pl, inferno

A frame is a step, its stack is the steps above it; session rows carry their overhead and the
`unattributed` row the GPU time outside every session. Steps without the figure are left out.
"""

from __future__ import annotations

import json

from profiler.analysis import insights
from profiler.attribution.ledger import Ledger

#: Folded stacks carry integer counts, so weights are scaled to these units.
FOLDED_SCALE = {"usd": (1e6, "micro-USD"), "joules": (1e3, "mJ"), "gib_s": (1024.0, "MiB*s")}
SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"


def render_speedscope(ledger: Ledger, *, by: str = "step", top: int | None = None, weight: str = "usd") -> str:
    """Render a speedscope "sampled" profile: one sample per step, weighted by its own `weight`."""
    paths, values = insights.flame_weights(ledger, weight)
    frames: dict[str, int] = {}
    samples = []
    for path in paths:
        samples.append([frames.setdefault(name, len(frames)) for name in path])
    title = f"run {ledger.run.get('run_id') or ledger.run.get('source') or ''}".strip()
    profile = {
        "type": "sampled",
        "name": f"{title}: own {weight} ({insights.WEIGHT_UNITS[weight]})",
        "unit": "none",
        "startValue": 0,
        "endValue": float(values.sum()),
        "samples": samples,
        "weights": [float(v) for v in values],
    }
    document = {
        "$schema": SPEEDSCOPE_SCHEMA,
        "shared": {"frames": [{"name": name} for name in frames]},
        "profiles": [profile],
        "name": f"sessionprof {title} by {weight}",
        "activeProfileIndex": 0,
        "exporter": "sessionprof",
    }
    return json.dumps(document, separators=(",", ":")) + "\n"


def render_folded(ledger: Ledger, *, by: str = "step", top: int | None = None, weight: str = "usd") -> str:
    """Render folded stacks (`root;child;leaf COUNT` per line), counts in `FOLDED_SCALE` units."""
    paths, values = insights.flame_weights(ledger, weight)
    scale, _unit = FOLDED_SCALE[weight]
    lines = []
    for path, value in zip(paths, values, strict=True):
        count = round(value * scale)
        if count > 0:
            lines.append(";".join(_frame(name) for name in path) + f" {count}")
    return "\n".join(lines) + ("\n" if lines else "")


def _frame(name: str) -> str:
    """A frame name safe in a folded line: no separator, no line break."""
    return " ".join(name.replace(";", ",").split()) or "(unnamed)"
