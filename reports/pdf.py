"""The PDF edition of the report: the same HTML laid out by WeasyPrint with the print rules.

WeasyPrint is a dependency of the suite, but a machine that runs the suite from its source
tree (a GPU box with its own Python) may lack it: then the PDF is "not available" and the HTML
report is still written."""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

from dissect.infra.atomic import atomic_path

__all__ = ["write_pdf", "pdf_available", "NOT_AVAILABLE"]

NOT_AVAILABLE = "report.pdf not available: WeasyPrint is not installed (pip install weasyprint)"


def pdf_available() -> bool:
    return importlib.util.find_spec("weasyprint") is not None


def write_pdf(html: str, target: Path, base_url: Path, quiet: bool = False) -> bool:
    """Write ``target``; False (and one line on stderr) where WeasyPrint is missing."""
    if not pdf_available():
        if not quiet:
            print(NOT_AVAILABLE, file=sys.stderr)
        return False
    from weasyprint import HTML

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    with atomic_path(target) as tmp:
        HTML(string=html, base_url=str(base_url)).write_pdf(str(tmp))
    return True
