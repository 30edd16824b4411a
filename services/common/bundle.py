"""Reading bundle files (bundle-format.md): strict CSV with errors that name file, line, column.

A file is parsed and validated completely before anything from it is sent; the first problems
found are reported together and nothing from that file loads.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

_AMOUNT = re.compile(r"-?\d{1,14}(\.\d{1,2})?")
_RATIO = re.compile(r"(0(\.\d{1,4})?|1(\.0{1,4})?)")
_AREA = re.compile(r"\d{6}")
MAX_REPORTED = 20
# Items per message of an upload stream (the services refuse more).
STREAM_CHUNK = 1000
T = TypeVar("T")
M = TypeVar("M")


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a bundle file."""

    file: str
    line: int
    column: str
    message: str

    def __str__(self) -> str:
        # JSON files have entries, not lines: line 0 leaves the number out.
        where = self.file + (f":{self.line}" if self.line > 0 else "")
        where += f": {self.column}" if self.column else ""
        return f"{where}: {self.message}"


class BundleInvalid(Exception):
    """A bundle file has problems; nothing from it was loaded."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(problem) for problem in problems))
        self.problems = problems


# A cell parser: text (never empty) -> value; raises ValueError with a readable message.
Parser = Callable[[str], Any]


@dataclass(frozen=True)
class Column:
    """One column of a bundle CSV file."""

    parse: Parser
    required: bool = True


def text(max_length: int) -> Parser:
    """A string of at most max_length characters."""

    def parse(value: str) -> str:
        if len(value) > max_length:
            raise ValueError(f"at most {max_length} characters")
        return value

    return parse


def choice(*allowed: str) -> Parser:
    """One of the allowed codes."""

    def parse(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def area(value: str) -> str:
    """A six-digit area code."""
    if not _AREA.fullmatch(value):
        raise ValueError("must be a six-digit area code")
    return value


def date(value: str) -> dt.date:
    """A YYYY-MM-DD date."""
    try:
        parsed = dt.date.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or len(value) != 10:
        raise ValueError("must be a date YYYY-MM-DD")
    return parsed


def amount_fen(value: str) -> int:
    """Yuan with at most two decimals ("1234.50") as integer fen."""
    if not _AMOUNT.fullmatch(value):
        raise ValueError("must be an amount in yuan with at most two decimals")
    return int(Decimal(value) * 100)


def ratio(value: str) -> Decimal:
    """A decimal between 0 and 1 with at most four decimals."""
    if not _RATIO.fullmatch(value):
        raise ValueError("must be a ratio between 0 and 1")
    try:
        return Decimal(value)
    except InvalidOperation:
        raise ValueError("must be a ratio between 0 and 1") from None


def codes(separator: str = ";") -> Parser:
    """A separator-joined list of codes."""

    def parse(value: str) -> tuple[str, ...]:
        return tuple(item for item in (part.strip() for part in value.split(separator)) if item)

    return parse


@dataclass(frozen=True)
class Row:
    """A parsed row with its line number (for later, cross-row problems)."""

    line: int
    values: dict[str, Any]


def read_csv(path: Path, columns: dict[str, Column]) -> list[Row]:
    """Parse and check every row of a CSV file; raise BundleInvalid listing the problems."""
    problems: list[Problem] = []
    rows: list[Row] = []
    name = path.name
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise BundleInvalid(
                [Problem(name, 1, "", "the file is empty (a header row is needed)")]
            )
        header = [column.strip() for column in header]
        unknown = [column for column in header if column not in columns]
        missing = [c for c, spec in columns.items() if spec.required and c not in header]
        if unknown or missing or len(set(header)) != len(header):
            message = "; ".join(
                part
                for part in (
                    f"unknown columns: {', '.join(unknown)}" if unknown else "",
                    f"missing columns: {', '.join(missing)}" if missing else "",
                    "a column appears twice" if len(set(header)) != len(header) else "",
                )
                if part
            )
            raise BundleInvalid([Problem(name, 1, "", message)])
        for number, cells in enumerate(reader, start=2):
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    Problem(name, number, "", f"{len(cells)} cells, the header has {len(header)}")
                )
                continue
            values: dict[str, Any] = {}
            for column, cell in zip(header, cells, strict=True):
                cell = cell.strip()
                spec = columns[column]
                if not cell:
                    if spec.required:
                        problems.append(Problem(name, number, column, "a value is required"))
                    values[column] = None
                    continue
                try:
                    values[column] = spec.parse(cell)
                except ValueError as error:
                    problems.append(Problem(name, number, column, f"{cell!r} {error}"))
            for column in columns:
                values.setdefault(column, None)
            rows.append(Row(number, values))
            if len(problems) >= MAX_REPORTED:
                break
    if problems:
        raise BundleInvalid(problems)
    return rows


async def stream_in_chunks(
    items: list[T], message: Callable[[list[T]], M], progress: Callable[[int], object]
) -> AsyncIterator[M]:
    """Client-stream messages of at most 1,000 items each, reporting progress as they go."""
    for start in range(0, len(items), STREAM_CHUNK):
        chunk = items[start : start + STREAM_CHUNK]
        yield message(chunk)
        progress(len(chunk))
