"""Render the report's HTML from the Jinja2 template, with its stylesheet and script inlined."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

__all__ = ["render_html"]

HERE = Path(__file__).parent


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f}%"


def _num(value: Any, digits: int = 0) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{float(value):,.{digits}f}"


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["pct"] = _pct
    env.filters["num"] = _num
    return env


def render_html(context: dict[str, Any], template: str = "report.html.j2") -> str:
    """The whole report as one self-contained HTML page (every user value escaped)."""
    page = _environment().get_template(template)
    return page.render(
        **context,
        css=(HERE / "static" / "report.css").read_text(),
        js=(HERE / "static" / "report.js").read_text(),
        live_js=(HERE / "static" / "live.js").read_text(),
    )
