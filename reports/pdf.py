"""The PDF edition of the report: the same HTML laid out by WeasyPrint with the print rules."""

from __future__ import annotations

import logging
from pathlib import Path

from dissect.atomic import atomic_path

__all__ = ["write_pdf"]


def write_pdf(html: str, target: Path, base_url: Path) -> None:
    from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    with atomic_path(target) as tmp:
        HTML(string=html, base_url=str(base_url)).write_pdf(str(tmp))
