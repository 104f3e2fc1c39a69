"""Where the suite's files live: the repository, the test data, and the shared reference traces."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

DATA = REPO / "tests" / "data" / "traces"
GOLDEN = REPO / "tests" / "data" / "golden"
#: Real trace files written by other tools: in `shared/` inside the checkout or beside it (absent in
#: some checkouts; the tests that need them skip).
REAL = next((p for p in (REPO / "shared" / "reference" / "real-traces",
                         REPO.parent / "shared" / "reference" / "real-traces") if p.is_dir()),
            REPO.parent / "shared" / "reference" / "real-traces")
