"""Sessions of a run: list them with their totals, and narrow a ledger to some sessions or a window.

Selection happens on the attributed `Ledger`, not on the raw spans: the whole run is attributed
first, so that a step keeps the share of a GPU that it had beside the steps left out (two sessions
sharing one GPU keep their own shares). The selection's totals are the sums over the steps kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from profiler.attribution.ledger import INCLUSIVE_COLUMNS, KWH_PER_J, Ledger
from profiler.model import SESSION_KIND, UNATTRIBUTED_KIND

#: Columns of `session_summaries()`, in order.
SUMMARY_COLUMNS = ("session_id", "start_ns", "end_ns", "wall_s", "steps", "model_calls", "tool_calls",
                   "errors",
                   "input_tokens", "output_tokens", "cache_read_tokens", "api_cost_usd", "gpu_cost_usd",
                   "energy_j", "gpu_mem_gib_s", "total_cost_usd", "unpriced_calls", "models")
_EPOCH = re.compile(r"^\s*[+-]?\d+(\.\d*)?\s*$")


def parse_time(text: str | float | int, *, option: str = "time") -> int:
    """Parse a point in time to unix nanoseconds: epoch seconds, or ISO-8601.

    An ISO time without an offset is UTC (the reports print UTC). Accepts `2026-03-01T20:47:18Z`,
    `2026-03-01 20:47:18.5+01:00`, `2026-03-01` and `1772398038.7`.

    Raises:
        ValueError: unreadable, with the option's name in the message.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(round(float(text) * 1e9))
    value = str(text).strip()
    if _EPOCH.match(value):
        return int(Decimal(value) * 1_000_000_000)  # exact: a float would lose the nanoseconds
    iso = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    fraction = ""
    match = re.match(r"^(.*?[T ]\d{2}:\d{2}:\d{2})\.(\d+)(.*)$", iso)
    if match:  # keep nanoseconds: datetime stops at microseconds
        iso, fraction = match.group(1) + match.group(3), match.group(2)
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"{option}: {text!r} is neither ISO-8601 (2026-03-01T20:47:18Z) nor epoch "
                         "seconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    nanos = round(moment.timestamp()) * 1_000_000_000  # whole seconds: the fraction was set aside
    return nanos + (int(fraction[:9].ljust(9, "0")) if fraction else 0)


def resolve_sessions(available: Sequence[str], wanted: Sequence[str], source: str = "the run") -> list[str]:
    """Match each wanted id to a session: exactly, else by a unique prefix.

    Raises:
        ValueError: an id that matches no session, or several; the message lists the choices.
    """
    known = list(dict.fromkeys(s for s in available if s is not None))
    chosen: list[str] = []
    for want in wanted:
        if want in known:
            chosen.append(want)
            continue
        matches = [s for s in known if str(s).startswith(want)]
        if len(matches) == 1:
            chosen.append(matches[0])
            continue
        if matches:
            listed = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
            raise ValueError(f"session {want!r} is ambiguous in {source}: it starts {len(matches)} sessions "
                             f"({listed})")
        listed = ", ".join(map(str, known[:5])) + (f" and {len(known) - 5} more" if len(known) > 5 else "")
        raise ValueError(f"no session {want!r} in {source} (its sessions: {listed or 'none'}; "
                         "`sessionprof sessions FILE` lists them)")
    return list(dict.fromkeys(chosen))


def select(ledger: Ledger, *, sessions: Sequence[str] | None = None, since_ns: int | None = None,
           until_ns: int | None = None) -> Ledger:
    """Return a ledger of only some sessions' steps and/or the steps that overlap [since, until].

    Each kept step keeps the figures it had in the whole run; totals are re-summed over the kept
    steps. The `unattributed` row (GPU time outside every session) is left out of any selection.
    """
    if not sessions and since_ns is None and until_ns is None:
        return ledger
    if since_ns is not None and until_ns is not None and since_ns > until_ns:
        raise ValueError("--since is after --until: the window is empty")
    steps = ledger.steps
    keep = (steps["kind"] != UNATTRIBUTED_KIND).to_numpy()
    selection: dict[str, Any] = {}
    if sessions:
        ids = resolve_sessions(steps.loc[keep, "session_id"].tolist(), sessions,
                               str(ledger.run.get("source") or "the run"))
        keep = keep & steps["session_id"].isin(ids).to_numpy()
        selection["sessions"] = ids
    if since_ns is not None:
        keep = keep & (steps["end_ns"].to_numpy() >= since_ns)
        selection["since_ns"] = int(since_ns)
    if until_ns is not None:
        keep = keep & (steps["start_ns"].to_numpy() <= until_ns)
        selection["until_ns"] = int(until_ns)
    kept = steps[keep].reset_index(drop=True)
    checks = dict(ledger.checks)
    unpriced = kept.loc[kept["api_cost_source"] == "unpriced", "model"].fillna("(no model name)")
    checks["unpriced_models"] = sorted(set(unpriced))
    checks["unpriced_calls"] = int(len(unpriced))
    if "energy_estimated" in kept:
        checks["estimated_energy_steps"] = int(kept["energy_estimated"].sum())
    warnings = list(checks.get("warnings", []))
    if not len(kept):
        warnings.append("no step matches the selection")
    checks["warnings"] = warnings
    selection["steps_kept"] = int(len(kept))
    selection["steps_in_run"] = int((steps["kind"] != UNATTRIBUTED_KIND).sum())
    return replace(ledger, steps=kept, totals=_totals(kept, ledger.totals), checks=checks,
                   run={**ledger.run, "selection": selection})


def _totals(steps: pd.DataFrame, whole: dict[str, Any]) -> dict[str, Any]:
    """The whole run's totals, with every summable figure re-summed over `steps`."""
    totals = dict(whole)
    for name in INCLUSIVE_COLUMNS:
        if name == "wall_s" or f"self_{name}" not in steps:
            continue
        column = steps[f"self_{name}"]
        totals[name] = float(column.sum()) if column.notna().any() else None
    totals["wall_s"] = float((steps["end_ns"].max() - steps["start_ns"].min()) / 1e9) if len(steps) else 0.0
    totals["energy_kwh"] = totals["energy_j"] * KWH_PER_J if totals.get("energy_j") is not None else None
    kinds = steps["kind"]
    totals["model_calls"] = int(steps["bills_usage"].sum()) if "bills_usage" in steps else 0
    totals["tool_calls"] = int((kinds == "execute_tool").sum())
    totals["steps"] = int((~kinds.isin([SESSION_KIND, UNATTRIBUTED_KIND])).sum())
    totals["sessions"] = int((kinds == SESSION_KIND).sum())
    totals["errors"] = int((steps["status"] == "error").sum())
    return totals


def session_summaries(ledger: Ledger) -> pd.DataFrame:
    """One row per session (in order of start) with its totals; see `SUMMARY_COLUMNS`.

    Sums are of the steps' own (`self_`) figures, the session's overhead included, so they add up
    to the run's totals less the `unattributed` row. Each session is a code of one factorisation,
    and every figure one pass over the steps: linear in the steps, whatever the number of sessions.
    """
    steps = ledger.steps[ledger.steps["kind"] != UNATTRIBUTED_KIND]
    if not len(steps):
        return pd.DataFrame({name: pd.Series(dtype=object) for name in SUMMARY_COLUMNS})
    codes, ids = pd.factorize(steps["session_id"].fillna("(none)"), sort=False)
    n = len(ids)
    kinds = steps["kind"].to_numpy(dtype=object)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(codes, weights=mask, minlength=n).astype(np.int64)

    frame = pd.DataFrame({
        "start_ns": steps["start_ns"].groupby(codes).min().to_numpy(dtype=np.int64),
        "end_ns": steps["end_ns"].groupby(codes).max().to_numpy(dtype=np.int64),
        "steps": count(kinds != SESSION_KIND),
        "model_calls": count(steps["bills_usage"].to_numpy(dtype=bool)),
        "tool_calls": count(kinds == "execute_tool"),
        "errors": count(steps["status"].to_numpy(dtype=object) == "error"),
    }, index=pd.Index(ids, dtype=object))
    for name in ("input_tokens", "output_tokens", "cache_read_tokens", "api_cost_usd", "gpu_cost_usd",
                 "energy_j", "gpu_mem_gib_s", "total_cost_usd", "unpriced_calls"):
        column = f"self_{name}"
        frame[name] = _sum_of_known(codes, n, steps[column].to_numpy(dtype=float)) if column in steps else np.nan
    frame["models"] = _models(codes, n, steps)
    frame["wall_s"] = (frame["end_ns"] - frame["start_ns"]) / 1e9
    frame = frame.sort_values("start_ns", kind="stable").reset_index(names="session_id")
    return frame[list(SUMMARY_COLUMNS)]


def _sum_of_known(codes: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
    """Each session's sum of `values`; NaN where none of its values is known (as pandas' min_count=1)."""
    known = ~np.isnan(values)
    sums = np.bincount(codes, weights=np.where(known, values, 0.0), minlength=n)
    return np.where(np.bincount(codes, weights=known, minlength=n) > 0, sums, np.nan)


def _models(codes: np.ndarray, n: int, steps: pd.DataFrame) -> list[str]:
    """Each session's billed models, sorted and joined with ", " ("" for none)."""
    billing = steps["bills_usage"].to_numpy(dtype=bool) & steps["model"].notna().to_numpy()
    pairs = sorted(set(zip(codes[billing].tolist(), map(str, steps["model"].to_numpy(dtype=object)[billing]),
                           strict=True)))
    names: list[list[str]] = [[] for _ in range(n)]
    for code, model in pairs:
        names[code].append(model)
    return [", ".join(models) for models in names]
