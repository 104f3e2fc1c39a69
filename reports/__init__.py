"""Renderers: they take a `Ledger` and format it; they compute nothing."""

from reports.render import FORMATS, render

__all__ = ["FORMATS", "render"]
