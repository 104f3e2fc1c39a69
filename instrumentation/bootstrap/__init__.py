"""The folder `sessionprof run` puts first on a Python child's PYTHONPATH: it holds only the
`sitecustomize` that sets up span capture as the child starts (`DIRECTORY`)."""

from __future__ import annotations

from pathlib import Path

DIRECTORY = Path(__file__).resolve().parent
