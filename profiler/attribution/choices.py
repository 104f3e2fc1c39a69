"""The named choices of attribution (sharing policies, grouping keys), light enough for the CLI to list."""

from __future__ import annotations

from typing import Literal

Policy = Literal["equal", "tokens", "memory"]
#: How concurrent steps on one GPU share a slice (`profiler.attribute(policy=...)`).
POLICIES: tuple[str, ...] = ("equal", "tokens", "memory")
#: What `Ledger.group_by` sums a ledger by; `step` keeps the steps as they are.
GROUP_KEYS: tuple[str, ...] = ("step", "tool", "model", "session", "kind")
