"""Stop numpy from asking Linux for huge pages in a process that only reads and reports.

numpy marks the memory of every array of 4 MB or more with `madvise(MADV_HUGEPAGE)`. Where the
kernel's transparent-huge-page `defrag` setting honours that advice synchronously (`madvise`,
`defer+madvise` or `always`; `madvise` is the default of many distributions), a first touch of
such memory may stall in compaction to find a whole 2 MB page, instead of taking a 4 kB one
(numpy issue #31590). Attributing a big trace allocates and frees hundreds of arrays of a million
rows, each touched once: at a million spans the advice cost about 2 s of kernel time where
4 kB pages cost 0.5 s (`benchmarks/trace_reading.py`), and the larger pages saved nothing
measurable in user time.

The `sessionprof` command owns its process (an agent it runs is a child process of its own), so
it turns the advice off. A library caller's process is left as it is, and so is a process whose
user set `NUMPY_MADVISE_HUGEPAGE` to say what they want.
"""

from __future__ import annotations

import os
from collections.abc import Callable

_USER_CHOICE = "NUMPY_MADVISE_HUGEPAGE"


def skip_numpy_huge_page_advice() -> bool:
    """Turn numpy's huge-page advice off for this process, unless the user chose through
    `NUMPY_MADVISE_HUGEPAGE`. Returns whether the advice is now off because of this call."""
    if _USER_CHOICE in os.environ:
        return False
    setter = _setter()
    if setter is None:  # a numpy without the switch: nothing to turn off
        return False
    setter(False)
    return True


def _setter() -> Callable[[bool], bool] | None:
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray  # type: ignore[no-redef]
    return getattr(multiarray, "_set_madvise_hugepage", None)
