"""Reading bundle files (bundle-format.md): strict CSV with errors that name file, line, column.

Nothing of a file with problems loads: small files are checked whole before anything is sent;
the large ones (persons, filings) are sent while they are read, and their upload is left
unfinished (the service rolls it back) at the first problem. The first problems found are
reported together.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import grpc

from services.common.callers import caller_metadata
from services.common.uploads import UploadMessage

_AMOUNT = re.compile(r"-?\d{1,14}(\.\d{1,2})?")
_RATIO = re.compile(r"(0(\.\d{1,4})?|1(\.0{1,4})?)")
_AREA = re.compile(r"\d{6}")
MAX_REPORTED = 20
# Items per message of an upload stream (the services refuse more).
STREAM_CHUNK = 1000
T = TypeVar("T")
R = TypeVar("R")
U = TypeVar("U", bound=UploadMessage)


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
    rows = list(iter_csv(path, columns, problems))
    if problems:
        raise BundleInvalid(problems)
    return rows


def iter_csv(path: Path, columns: dict[str, Column], problems: list[Problem]) -> Iterator[Row]:
    """The checked rows of a CSV file, one at a time; problems are appended to `problems`.

    Rows with problems are left out; reading stops after MAX_REPORTED problems. A bad header
    raises BundleInvalid at once.
    """
    name = path.name
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = _checked_header(name, next(reader, None), columns)
        for number, cells in enumerate(reader, start=2):
            if len(problems) >= MAX_REPORTED:
                return
            if not any(cell.strip() for cell in cells):
                continue
            if len(cells) != len(header):
                problems.append(
                    Problem(name, number, "", f"{len(cells)} cells, the header has {len(header)}")
                )
                continue
            values: dict[str, Any] = dict.fromkeys(columns)
            found = len(problems)
            for column, cell in zip(header, cells, strict=True):
                cell = cell.strip()
                spec = columns[column]
                if not cell:
                    if spec.required:
                        problems.append(Problem(name, number, column, "a value is required"))
                    continue
                try:
                    values[column] = spec.parse(cell)
                except ValueError as error:
                    problems.append(Problem(name, number, column, f"{cell!r} {error}"))
            if len(problems) == found:
                yield Row(number, values)


def _checked_header(name: str, header: list[str] | None, columns: dict[str, Column]) -> list[str]:
    if header is None:
        raise BundleInvalid([Problem(name, 1, "", "the file is empty (a header row is needed)")])
    header = [column.strip() for column in header]
    unknown = [column for column in header if column not in columns]
    missing = [c for c, spec in columns.items() if spec.required and c not in header]
    twice = len(set(header)) != len(header)
    if unknown or missing or twice:
        parts = (
            f"unknown columns: {', '.join(unknown)}" if unknown else "",
            f"missing columns: {', '.join(missing)}" if missing else "",
            "a column appears twice" if twice else "",
        )
        raise BundleInvalid([Problem(name, 1, "", "; ".join(part for part in parts if part))])
    return header


def count_lines(path: Path) -> int:
    """Lines in a file, header included (for progress bars and deadlines; fast, not exact CSV)."""
    with path.open("rb") as handle:
        return sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))


def upload_deadline_s(path: Path) -> float:
    """The deadline of one file's upload: ten minutes, and a second more per 1,000 lines."""
    return 600 + count_lines(path) / 1000


async def stream_in_chunks(
    items: list[T], message: Callable[[list[T]], U], progress: Callable[[int], object]
) -> AsyncIterator[U]:
    """Client-stream messages of at most 1,000 items each, the final one marked last."""
    chunks = list(chunked(items))
    for number, chunk in enumerate(chunks, start=1):
        request = message(chunk)
        request.last = number == len(chunks)
        yield request
        progress(len(chunk))


def chunked(items: Iterable[T]) -> Iterator[list[T]]:
    """Lists of at most STREAM_CHUNK items, in order; one empty list when there are no items."""
    chunk: list[T] = []
    sent = False
    for item in items:
        chunk.append(item)
        if len(chunk) == STREAM_CHUNK:
            yield chunk
            chunk, sent = [], True
    if chunk or not sent:
        yield chunk


async def send_while_reading(
    upload: Callable[..., grpc.aio.StreamUnaryCall[U, R]],
    path: Path,
    messages: AsyncIterator[tuple[U, int]],
    problems: list[Problem],
    progress: Callable[[int], object],
) -> R:
    """Stream (message, row count) pairs read from path to an upload RPC, as the national platform.

    Each message goes out once the next one is read; the final one, marked last, only when the
    whole file was read without problems. Otherwise the stream ends unfinished and the service
    rolls the upload back (services.common.uploads); the rest of the file is still read, to
    report up to MAX_REPORTED problems together.
    """
    failures: list[Exception] = []

    async def requests() -> AsyncIterator[U]:
        pending: tuple[U, int] | None = None
        try:
            async for message, count in messages:
                if problems:
                    return
                if pending is not None:
                    yield pending[0]
                    progress(pending[1])
                pending = message, count
        except Exception as error:  # reading failed: end the upload unfinished
            failures.append(error)
            return
        if pending is not None and not problems:
            pending[0].last = True
            yield pending[0]
            progress(pending[1])

    try:
        return await upload(
            requests(), metadata=caller_metadata("national"), timeout=upload_deadline_s(path)
        )
    except grpc.aio.AioRpcError:
        if not (problems or failures):
            raise
    for failure in failures:
        if not isinstance(failure, BundleInvalid):
            raise failure
        problems.extend(failure.problems)
    if not failures:
        async for _ in messages:
            pass  # read on, to report every problem of the file at once
    raise BundleInvalid(problems[:MAX_REPORTED])
