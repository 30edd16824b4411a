"""Bundle CSV reading: every problem names file, line and column; nothing half-parsed escapes."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from services.catalogue.bundle import catalogue_by_province, province_counts
from services.common import bundle
from services.common.bundle import BundleInvalid, Column, Problem
from services.demo.bundle import write_demo_bundle
from services.identity.bundle import iter_persons, read_persons
from tests.bundle_files import set_cell

pytestmark = pytest.mark.unit

COLUMNS = {
    "admdvs": Column(bundle.area),
    "amount": Column(bundle.amount_fen),
    "share": Column(bundle.ratio, required=False),
    "day": Column(bundle.date, required=False),
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "things.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_columns_in_any_order_and_empty_cells_are_none(tmp_path: Path) -> None:
    path = write(tmp_path, "amount,day,admdvs\n1234.50,2026-01-31,510100\n0.07,,110000\n")
    rows = bundle.read_csv(path, COLUMNS)
    assert [(row.line, row.values) for row in rows] == [
        (
            2,
            {"amount": 123450, "day": bundle.date("2026-01-31"), "admdvs": "510100", "share": None},
        ),
        (3, {"amount": 7, "day": None, "admdvs": "110000", "share": None}),
    ]


def test_problems_name_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "admdvs,amount,share\n51010,1.234,0.5\n110000,,1.5\n")
    with pytest.raises(BundleInvalid) as raised:
        bundle.read_csv(path, COLUMNS)
    assert [str(problem) for problem in raised.value.problems] == [
        "things.csv:2: admdvs: '51010' must be a six-digit area code",
        "things.csv:2: amount: '1.234' must be an amount in yuan with at most two decimals",
        "things.csv:3: amount: a value is required",
        "things.csv:3: share: '1.5' must be a ratio between 0 and 1",
    ]


def test_unknown_and_missing_columns_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "admdvs,colour\n510100,red\n")
    with pytest.raises(BundleInvalid, match="unknown columns: colour; missing columns: amount"):
        bundle.read_csv(path, COLUMNS)


def test_amounts_become_exact_fen() -> None:
    assert bundle.amount_fen("0.01") == 1
    assert bundle.amount_fen("31.77") == 3177
    assert bundle.amount_fen("300000") == 30_000_000


def test_a_persons_rows_must_be_consecutive_and_agree(tmp_path: Path) -> None:
    persons_file = write_demo_bundle(tmp_path / "bundle", persons=3, seed=1) / "persons.csv"
    with persons_file.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    header = rows[0]
    second_record = dict(zip(header, rows[1], strict=True))
    resident = second_record["insutype"] == "310"
    second_record.update(
        insutype="390" if resident else "310",
        psn_type="resident" if resident else "employed",
        balc="" if resident else "0.00",
        card_no="",
        card_sn="",
        card_status="",
    )
    rows[2:2] = [[second_record[column] for column in header]]  # line 3: the first person again
    with persons_file.open("w", encoding="utf-8", newline="") as handle:
        csv.writer(handle).writerows([*rows, rows[1]])  # line 6: and once more, out of place
    problems: list[Problem] = []
    insured_area: dict[str, str] = {}
    persons = list(iter_persons(persons_file, problems, insured_area))
    assert [str(problem) for problem in problems] == [
        "persons.csv:6: psn_no: a person's rows must be consecutive"
    ]
    assert len(persons[0].insurances) == 2
    assert len(insured_area) == 3
    set_cell(persons_file, 3, "psn_name", "另一个")
    with pytest.raises(BundleInvalid) as raised:
        read_persons(persons_file)
    assert str(raised.value.problems[0]) == "persons.csv:3: psn_name: differs from line 2"


def test_chunks_hold_a_thousand_items_and_an_empty_input_gives_one_empty_chunk() -> None:
    assert [len(chunk) for chunk in bundle.chunked(range(2_001))] == [1_000, 1_000, 1]
    assert list(bundle.chunked([])) == [[]]


def test_a_provinces_catalogue_rows_must_be_consecutive_and_are_read_a_province_at_a_time(
    tmp_path: Path,
) -> None:
    catalogue_file = write_demo_bundle(tmp_path / "bundle", persons=1, seed=1) / "catalogue.csv"
    counts = province_counts(catalogue_file)
    assert len(counts) == 31 and sum(counts.values()) == 558
    by_province = list(catalogue_by_province(catalogue_file))
    assert [(prov, len(items)) for prov, items in by_province] == list(counts.items())
    lines = catalogue_file.read_text(encoding="utf-8").splitlines()
    catalogue_file.write_text("\n".join([*lines, lines[1]]) + "\n", encoding="utf-8")
    with pytest.raises(BundleInvalid) as raised:
        province_counts(catalogue_file)
    assert [str(problem) for problem in raised.value.problems] == [
        f"catalogue.csv:{len(lines) + 1}: prov_admdvs: a province's rows must be consecutive"
    ]
