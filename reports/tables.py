"""Tables for the report: a person reads the top rows, and downloads the whole table from the
page itself (a CSV embedded as a ``data:`` URI, so that ``index.html`` stays one file; the PDF
carries it as an attached file)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["TOP_ROWS", "csv_table", "data_uri", "frame_table"]


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


#: How many rows of a long table the report shows; the whole table is a CSV download beside it.
TOP_ROWS = 10


def csv_table(
    path: Path, top: int | None = TOP_ROWS, digits: int = 3, hide: tuple[str, ...] = ()
) -> dict[str, Any] | None:
    """A CSV a stage wrote, for the template's table macro (see :func:`frame_table`), less the
    columns in ``hide``; a download of the whole table holds the file's own bytes."""
    if not path.is_file():
        return None
    frame, name = pd.read_csv(path), f"{path.parent.name}-{path.name}"
    return frame_table(frame, digits, top, name, path.read_bytes(), hide)


def frame_table(
    frame: pd.DataFrame,
    digits: int = 3,
    top: int | None = None,
    name: str = "table.csv",
    raw: bytes | None = None,
    hide: tuple[str, ...] = (),
) -> dict[str, Any]:
    """``{"columns", "rows"}`` of the first ``top`` rows (all where ``top`` is ``None``),
    without the columns in ``hide``. A table cut short also holds ``note`` (what was left
    out), ``csv`` (the whole table as a ``data:`` URI: ``raw`` where given, else ``frame`` as
    CSV) and ``filename`` (its name for the download)."""
    shown = frame.drop(columns=[c for c in hide if c in frame.columns])
    shown = shown if top is None else shown.head(top)
    rounded = shown.round(digits)
    rows = [["" if pd.isna(v) else v for v in row] for row in rounded.itertuples(index=False)]
    table: dict[str, Any] = {"columns": [str(c) for c in shown.columns], "rows": rows}
    left_out = []
    if len(shown) < len(frame):
        left_out.append(f"the first {len(shown)} of {len(frame)} rows")
    if len(shown.columns) < len(frame.columns):
        gone = [str(c) for c in frame.columns if c not in shown.columns]
        left_out.append(f"without the column{'s' * (len(gone) > 1)} {', '.join(gone)}")
    if left_out:
        whole = raw if raw is not None else frame.to_csv(index=False).encode()
        table |= {"note": "; ".join(left_out), "csv": data_uri(whole, "text/csv")}
        table["filename"] = name
    return table
