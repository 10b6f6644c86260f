"""The pipeline that produces every artefact, and the HTML/PDF report built from them."""

from reports.config import RunConfig

__all__ = ["RunConfig"]
