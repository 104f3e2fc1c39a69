"""Renderers: they take a `Ledger` and format it; they compute nothing."""

from reports.render import FORMATS, render, render_encoded, render_parts

__all__ = ["FORMATS", "render", "render_encoded", "render_parts"]
