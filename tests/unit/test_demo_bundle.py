"""The demo bundle: real areas, files the loaders accept, valid and distinct ID numbers, sizes
that follow the scale, and the same files for the same seed."""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from services.catalogue.bundle import read_catalogue, read_institutions
from services.demo.areas import PROVINCES
from services.demo.bundle import (
    BIRTH_SPAN_DAYS,
    BIRTH_STEP,
    Scale,
    cities,
    long_term_patients,
    write_demo_bundle,
)
from services.filing.bundle import read_filing_rows
from services.identity.bundle import read_persons, read_regions
from services.identity.logic import id_number_check_character
from services.settlement.bundle import read_policies

pytestmark = pytest.mark.unit

TODAY = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_bundle(tmp_path_factory.mktemp("small"), today=TODAY)


def rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_province_and_prefecture_city_has_its_real_code() -> None:
    assert len(PROVINCES) == 31
    city_list = cities()
    assert len(city_list) == 337  # 333 prefecture-level divisions and the four municipalities
    codes = [city.code for city in city_list]
    assert len(set(codes)) == len(codes)
    names = {city.code: city.name for city in city_list}
    assert names["131000"] == "廊坊市"
    assert names["440300"] == "深圳市"
    assert names["513200"] == "阿坝藏族羌族自治州"
    assert names["652900"] == "阿克苏地区"
    assert names["152900"] == "阿拉善盟"
    assert all(city.code[:2] == city.province.code[:2] for city in city_list)
    assert math.isclose(sum(city.weight for city in city_list), 1.0)


def test_the_small_bundle_passes_every_loader_check(small: Path) -> None:
    regions = read_regions(small / "regions.csv")
    assert len(regions) == 31 + 337
    institutions = read_institutions(small / "institutions.csv")
    assert len(institutions) == 3 * 337
    catalogue = read_catalogue(small / "catalogue.csv")
    assert len(catalogue) == 31 and {len(items) for items in catalogue.values()} == {18}
    assert len(read_policies(small / "policies.json")) == 337 * 2 * 9
    assert len(read_persons(small / "persons.csv")) == 200
    assert len(read_filing_rows(small / "filings.csv")) == 200


def test_every_city_has_a_level_3_hospital_open_for_every_kind_of_visit(small: Path) -> None:
    first = {
        row["admdvs"]: row
        for row in rows(small / "institutions.csv")
        if row["fixmedins_code"][-5:] == "00001"
    }
    assert set(first) == {city.code for city in cities()}
    assert {
        (r["level"], r["open_inpatient"], r["open_outpatient"], r["open_chronic"])
        for r in first.values()
    } == {("3", "1", "1", "1")}
    assert first["110100"]["fixmedins_name"] == "北京市第一人民医院"


def test_persons_have_valid_distinct_id_numbers_matching_birth_gender_and_area(
    small: Path,
) -> None:
    persons = rows(small / "persons.csv")
    certnos = [person["certno"] for person in persons]
    assert len(set(certnos)) == len(certnos)
    for person in persons:
        certno = person["certno"]
        assert certno[17] == id_number_check_character(certno[:17])
        assert certno[:6] == person["insuplc_admdvs"]
        assert certno[6:14] == person["brdy"].replace("-", "")
        assert int(certno[16]) % 2 == (1 if person["gend"] == "1" else 0)
        if person["psn_type"] == "retired":
            age = (TODAY - dt.date.fromisoformat(person["brdy"])).days // 365
            assert age >= (60 if person["gend"] == "1" else 55)


def test_filings_go_to_another_province(small: Path) -> None:
    known = {row["admdvs"] for row in rows(small / "regions.csv")}
    home = {row["psn_no"]: row["insuplc_admdvs"] for row in rows(small / "persons.csv")}
    filings = rows(small / "filings.csv")
    assert all(row["dest_admdvs"] in known for row in filings)
    assert all(row["dest_admdvs"][:2] != home[row["psn_no"]][:2] for row in filings)
    long_term = [row for row in filings if row["category"] == "retired_relocated"]
    assert long_term and all(row["enddate"] == "" for row in long_term)


def test_long_term_patients_are_sent_to_an_open_hospital_of_their_filing_s_city(
    small: Path,
) -> None:
    institutions = {row["fixmedins_code"]: row for row in rows(small / "institutions.csv")}
    filings = {row["psn_no"]: row for row in rows(small / "filings.csv")}
    patients = long_term_patients(small)
    assert patients
    for patient in patients:
        hospital = institutions[patient.hospital]
        assert hospital["admdvs"] == filings[patient.psn_no]["dest_admdvs"]
        assert (hospital["level"], hospital["open_inpatient"]) == ("3", "1")


def test_policies_scale_down_from_the_eastern_figures_in_the_west(small: Path) -> None:
    entries = json.loads((small / "policies.json").read_text(encoding="utf-8"))

    def inpatient(area: str) -> dict[str, object]:
        return next(
            entry
            for entry in entries
            if (entry["insuplc_admdvs"], entry["insutype"], entry["psn_type"], entry["med_type"])
            == (area, "310", "retired", "21")
            and entry["year"] == TODAY.year
        )

    langfang, chengdu, wuhan = inpatient("131000"), inpatient("510100"), inpatient("420100")
    assert langfang["deductible"] == {"1": "300.00", "2": "600.00", "3": "1000.00"}
    assert langfang["annual_cap"] == "300000.00"
    assert chengdu["deductible"] == {"1": "180.00", "2": "360.00", "3": "600.00"}
    assert chengdu["annual_cap"] == "180000.00"
    assert wuhan["deductible"] == {"1": "240.00", "2": "480.00", "3": "800.00"}
    assert chengdu["tiers"] == langfang["tiers"]


def test_the_same_seed_writes_the_same_files(small: Path, tmp_path: Path) -> None:
    again = write_demo_bundle(tmp_path / "again", today=TODAY)
    for name in ("regions.csv", "institutions.csv", "catalogue.csv", "persons.csv", "filings.csv"):
        assert (again / name).read_bytes() == (small / name).read_bytes(), name
    other = write_demo_bundle(tmp_path / "other", today=TODAY, seed=7)
    assert (other / "persons.csv").read_bytes() != (small / "persons.csv").read_bytes()


def test_the_birth_walk_never_repeats_within_its_span() -> None:
    assert math.gcd(BIRTH_STEP, BIRTH_SPAN_DAYS) == 1


def test_a_larger_scale_spreads_institutions_and_lists_the_national_items(tmp_path: Path) -> None:
    scale = Scale(persons=30_000, catalogue_items=2_000, open_institutions=7_000)
    bundle = write_demo_bundle(tmp_path / "larger", scale=scale, today=TODAY)
    institutions = rows(bundle / "institutions.csv")
    assert 7_000 <= len(institutions) <= 7_200
    levels = Counter(row["level"] for row in institutions)
    assert set(levels) == {"1", "2", "3"} and levels["2"] > levels["1"] > 0
    by_city = Counter(row["admdvs"] for row in institutions)
    assert by_city["310100"] > by_city["540100"] > 0  # Shanghai has more than Lhasa
    codes = [row["fixmedins_code"] for row in institutions]
    assert len(set(codes)) == len(codes)
    catalogue = read_catalogue(bundle / "catalogue.csv")
    sizes = [len(items) for items in catalogue.values()]
    assert all(18 + 1_900 <= size <= 18 + 2_000 for size in sizes), sizes
    list_types = Counter(item.list_type for item in catalogue["110000"])
    assert set(list_types) == {"101", "102", "201", "301"}
    certnos = [row["certno"] for row in rows(bundle / "persons.csv")]
    assert len(set(certnos)) == 30_000
