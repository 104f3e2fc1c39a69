"""Shared helpers for the reliability tests: reading back what a run directory holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def raw_spans(run_dir: Path) -> list[dict[str, Any]]:
    """Every span in spans.jsonl as raw OTLP JSON (a partial last line is ignored)."""
    spans = []
    for line in (run_dir / "spans.jsonl").read_text().splitlines():
        try:
            document = json.loads(line)
        except json.JSONDecodeError:
            continue
        for resource_spans in document["resourceSpans"]:
            for scope_spans in resource_spans["scopeSpans"]:
                spans.extend(scope_spans["spans"])
    return spans
