"""Renderers: they take a `Ledger` and format it; they compute nothing. `registry` lists the formats."""

from reports.registry import RENDERERS, Renderer
from reports.render import FORMATS, render, render_encoded, render_parts

__all__ = ["FORMATS", "RENDERERS", "Renderer", "render", "render_encoded", "render_parts"]
