"""Editing the CSV files of a written bundle, to put a problem on a chosen line."""

from __future__ import annotations

import csv
from pathlib import Path


def set_cell(path: Path, line: int, column: str, value: str) -> str:
    """Set one cell (line 1 is the header); return what was there."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    index = rows[0].index(column)
    before = rows[line - 1][index]
    rows[line - 1][index] = value
    with path.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows(rows)
    return before


def cell(path: Path, line: int, column: str) -> str:
    """One cell (line 1 is the header)."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return rows[line - 1][rows[0].index(column)]
