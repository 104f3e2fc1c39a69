"""run.json as the reader takes it: each field it relies on checked for its shape, and what the
file says of how the run ended."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

#: The shape of each field of run.json that the reader relies on.
_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "gpus": list, "dropped": dict, "sessions": list, "status": str, "prices": dict, "clock": dict,
    "sampler": dict, "host": dict, "run_id": str, "power_readings": dict, "unfinished_spans": int,
}


def read_meta(meta_path: Path, warnings: list[str]) -> dict[str, Any]:
    """run.json as a dict; fields of the wrong shape are left out, each named in one warning."""
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        warnings.append(f"{meta_path}: unreadable ({reason}); run metadata ignored")
        return {}
    if not isinstance(meta, dict):
        warnings.append(f"{meta_path}: not a JSON object; run metadata ignored")
        return {}
    wrong = [key for key, shape in _META_TYPES.items() if key in meta and meta[key] is not None
             and not isinstance(meta[key], shape)]
    if isinstance(meta.get("gpus"), list) and not all(isinstance(g, dict) for g in meta["gpus"]):
        wrong.append("gpus")
    if wrong:
        warnings.append(f"{meta_path}: {', '.join(sorted(set(wrong)))} not as a run writes them; ignored")
        for key in wrong:
            meta.pop(key, None)
    return meta


def killed_warning(meta: dict[str, Any]) -> str:
    """What run.json says of an agent that a signal ended: which, when, and what may be missing."""
    ended = meta.get("ended_ns")
    try:
        when = (datetime.fromtimestamp(ended / 1e9, tz=timezone.utc).strftime(" at %Y-%m-%d %H:%M:%S UTC")
                if isinstance(ended, int) else "")
    except (OverflowError, ValueError, OSError):  # a time no calendar holds: said without it
        when = ""
    code = f" (exit code {meta['exit_code']})" if meta.get("exit_code") is not None else ""
    return (f"the agent was killed by {meta['signal']}{when}{code}: steps still running then never ended, "
            "and spans that ended in its last flush interval (up to 0.5 s) may be missing")
