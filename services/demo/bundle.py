"""The demo bundle: every province and prefecture city with real codes, institutions of every
level, catalogues, policies for every pooling area, and persons with valid ID numbers, cards and
filings. The same seed always writes the same files.

`small` is what `medsettle up --demo` and the tests load. `national` has the size of the 2017
platform: about 7,000 institutions open for cross-province settlement, about 50,000 catalogue items
per province and 1.6 million filed persons.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import itertools
import json
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from services.common.values import today_in_china
from services.demo.areas import PROVINCES, Band, Province
from services.demo.catalogue import CATALOGUE_HEADER, national_items, province_rows
from services.filing.logic import add_months
from services.identity.logic import make_id_number
from services.settlement.logic import LONG_TERM_CATEGORIES


@dataclass(frozen=True)
class Scale:
    persons: int  # each with one filing
    catalogue_items: int  # generated national items on top of the reference items; 0 = none
    open_institutions: int  # spread over the cities by population; 0 = three per city


SCALES = {
    "small": Scale(persons=200, catalogue_items=0, open_institutions=0),
    # 51,500 national items, of which each province lists about 97%: about 50,000.
    "national": Scale(persons=1_600_000, catalogue_items=51_500, open_institutions=7_000),
}


@dataclass(frozen=True)
class City:
    code: str
    name: str
    province: Province
    # The city's share of the national population, with the capital counted three times over
    # within its province (where the people, and the big hospitals, concentrate).
    weight: float

    @property
    def short_name(self) -> str:
        return self.name.removesuffix("市辖区")


def cities() -> list[City]:
    """Every pooling area of the bundle, in code order."""
    total = sum(province.population_10k for province in PROVINCES)
    found = []
    for province in PROVINCES:
        parts = len(province.cities) + 2  # the capital counts three times
        for index, (code, name) in enumerate(province.cities):
            share = (3 if index == 0 else 1) / parts
            found.append(City(code, name, province, province.population_10k / total * share))
    return found


# --- institutions ---------------------------------------------------------------------------

INSTITUTION_HEADER = [
    "fixmedins_code",
    "fixmedins_name",
    "admdvs",
    "level",
    "open_inpatient",
    "open_outpatient",
    "open_chronic",
]
_DISTRICTS = (
    "城东",
    "城西",
    "城南",
    "城北",
    "城中",
    "开发区",
    "高新区",
    "新区",
    "江北",
    "河东",
    "河西",
    "湖滨",
    "港区",
    "经开区",
    "滨海",
    "山前",
)
_HOSPITAL_KINDS = (
    "人民医院",
    "中医医院",
    "中西医结合医院",
    "妇幼保健院",
    "骨科医院",
    "眼科医院",
    "口腔医院",
    "康复医院",
    "肿瘤医院",
    "儿童医院",
)
_PRIMARY_KINDS = ("社区卫生服务中心", "街道卫生院", "镇卫生院")


def open_hospital(city: str) -> str:
    """The city's `00001`: level 3, open for inpatient, outpatient and chronic-disease visits."""
    return f"H{city}00001"


def institution_rows(open_institutions: int, seed: int) -> Iterator[list[str]]:
    """Per city, always: `00001` level 3 open for inpatient, outpatient and chronic disease;
    `00002` level 2 open for inpatient and outpatient; `00003` level 1 open for outpatient only.
    At a larger scale, more institutions of every level, as many per city as its weight asks."""
    rng = random.Random(f"{seed}-institutions")
    for city in cities():
        name = city.short_name
        yield [open_hospital(city.code), f"{name}第一人民医院", city.code, "3", "1", "1", "1"]
        yield [f"H{city.code}00002", f"{name}中医医院", city.code, "2", "1", "1", "0"]
        yield [f"H{city.code}00003", f"{name}社区卫生服务中心", city.code, "1", "0", "1", "0"]
        used: set[str] = set()
        for serial in range(4, 1 + max(3, round(open_institutions * city.weight))):
            level = rng.choices(("3", "2", "1"), weights=(20, 45, 35))[0]
            kinds = _PRIMARY_KINDS if level == "1" else _HOSPITAL_KINDS
            candidate = f"{name}{rng.choice(_DISTRICTS)}{rng.choice(kinds)}"
            if candidate in used:
                candidate += f"第{serial}分院"
            used.add(candidate)
            inpatient = "1" if level != "1" or rng.random() < 0.2 else "0"
            chronic = "1" if level == "3" or (level == "2" and rng.random() < 0.5) else "0"
            code = f"H{city.code}{serial:05d}"
            yield [code, candidate, city.code, level, inpatient, "1", chronic]


# --- policies -------------------------------------------------------------------------------


def _flat(ratio: str) -> dict[str, Any]:
    return {"upto": None, "ratio": ratio}


_REDUCTION = {"referral": "0.10", "emergency": "0.10", "other_temporary": "0.20"}
# (insutype, psn_type) -> medical type -> (deductible by level, tiers, annual cap) in yuan, for
# the eastern band; the 廊坊 (131000) figures of the worked examples.
_POLICY_FIGURES: dict[tuple[str, str], dict[str, tuple[dict[str, str], list[Any], str]]] = {
    ("310", "employed"): {
        "21": (
            {"1": "300.00", "2": "600.00", "3": "1000.00"},
            [{"upto": "10000.00", "ratio": "0.85"}, {"upto": None, "ratio": "0.90"}],
            "300000.00",
        ),
        "11": ({"1": "100.00", "2": "100.00", "3": "100.00"}, [_flat("0.50")], "3000.00"),
        "14": ({}, [_flat("0.75")], "20000.00"),
    },
    ("310", "retired"): {
        "21": (
            {"1": "300.00", "2": "600.00", "3": "1000.00"},
            [{"upto": "10000.00", "ratio": "0.90"}, {"upto": None, "ratio": "0.95"}],
            "300000.00",
        ),
        "11": ({"1": "100.00", "2": "100.00", "3": "100.00"}, [_flat("0.60")], "4000.00"),
        # The published 廊坊 example: a retiree's chronic-disease drugs at 80%, no deductible.
        "14": ({}, [_flat("0.80")], "20000.00"),
    },
    ("390", "resident"): {
        "21": (
            {"1": "200.00", "2": "500.00", "3": "800.00"},
            [{"upto": "20000.00", "ratio": "0.70"}, {"upto": None, "ratio": "0.75"}],
            "150000.00",
        ),
        "11": ({"1": "50.00", "2": "50.00", "3": "50.00"}, [_flat("0.50")], "800.00"),
        "14": ({}, [_flat("0.60")], "10000.00"),
    },
}
# Poorer regions fund less: deductibles, thresholds and caps scale down with the band; the
# ratios stay.
_BAND_FACTOR = {
    Band.EAST: Decimal("1"),
    Band.CENTRAL: Decimal("0.8"),
    Band.NORTHEAST: Decimal("0.8"),
    Band.WEST: Decimal("0.6"),
}


def _scaled(yuan: str, factor: Decimal) -> str:
    """An amount times the band's factor, rounded to ten yuan as published figures are."""
    tens = (Decimal(yuan) * factor / 10).quantize(Decimal("1"), rounding=ROUND_HALF_UP)
    return f"{tens * 10:.2f}"


def policy_entries(areas: list[City], years: list[int]) -> list[dict[str, Any]]:
    """Policies of every pooling area: each insurance and person type, year and medical type."""
    entries = []
    for city, year in itertools.product(areas, years):
        factor = _BAND_FACTOR[city.province.band]
        for (insutype, psn_type), by_med_type in _POLICY_FIGURES.items():
            for med_type, (deductible, tiers, cap) in by_med_type.items():
                entry: dict[str, Any] = {
                    "insuplc_admdvs": city.code,
                    "insutype": insutype,
                    "year": year,
                    "med_type": med_type,
                    "psn_type": psn_type,
                    "deductible": {
                        level: _scaled(yuan, factor) for level, yuan in deductible.items()
                    },
                    "repeat_deductible_factor": "0.5",
                    "tiers": tiers,
                    "annual_cap": _scaled(cap, factor),
                    "reduction": _REDUCTION,
                }
                if med_type == "21":
                    entry["critical_illness"] = {
                        "fund": "hifob_pay" if insutype == "310" else "hifmi_pay",
                        "threshold": _scaled("15000.00", factor),
                        "tiers": [
                            {"upto": "100000.00", "ratio": "0.60"},
                            {"upto": None, "ratio": "0.70"},
                        ],
                        "annual_cap": _scaled("400000.00", factor),
                    }
                    entry["assistance"] = {
                        "identities": ["low_income", "extreme_poverty"],
                        "ratio": "0.70",
                        "annual_cap": _scaled("50000.00", factor),
                    }
                entries.append(entry)
    return entries


# --- persons and filings --------------------------------------------------------------------

PERSON_HEADER = [
    "psn_no",
    "certno",
    "psn_name",
    "gend",
    "brdy",
    "insuplc_admdvs",
    "insutype",
    "psn_type",
    "psn_insu_stas",
    "balc",
    "idet_types",
    "card_no",
    "card_sn",
    "card_status",
]
FILING_HEADER = ["psn_no", "category", "dest_admdvs", "begndate", "enddate"]
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英"
_CATEGORIES = (
    ("retired_relocated", 30),
    ("long_term_resident", 20),
    ("stationed_worker", 10),
    ("referral", 25),
    ("emergency", 5),
    ("other_temporary", 10),
)
_BORN_FROM = dt.date(1936, 1, 1)
BIRTH_SPAN_DAYS = (dt.date(2006, 1, 1) - _BORN_FROM).days
# A prime step through the birth days: prime to BIRTH_SPAN_DAYS, so the k-th person of an area
# gets a different birth day for every k below the span, and (area, birth, serial) never repeats.
BIRTH_STEP = 7919


@dataclass
class _AreaCount:
    born_salt: int  # where the area's walk through birth days starts
    persons: int = 0


class _Destinations:
    """Weighted choice of a filing's city outside the person's own province; the capitals draw
    four times their weight, for that is where cross-province patients go."""

    def __init__(self, city_list: list[City]) -> None:
        self._by_province: dict[str, tuple[list[City], list[float]]] = {}
        for province in PROVINCES:
            others = [city for city in city_list if city.province is not province]
            weights = [city.weight * (4 if city.code.endswith("0100") else 1) for city in others]
            self._by_province[province.code] = (others, list(itertools.accumulate(weights)))

    def choose(self, rng: random.Random, province: str) -> City:
        others, cumulative = self._by_province[province]
        return others[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


def _person_and_filing(
    index: int,
    city: City,
    count: _AreaCount,
    rng: random.Random,
    today: dt.date,
    psn_prefix: str,
    destinations: _Destinations,
) -> tuple[list[str], list[str]]:
    walk, count.persons = count.persons, count.persons + 1
    birth = _BORN_FROM + dt.timedelta(days=(count.born_salt + walk * BIRTH_STEP) % BIRTH_SPAN_DAYS)
    male = rng.random() < 0.5
    # The 17th digit of an ID number is odd for men; the round number keeps serials apart.
    round_number = walk // BIRTH_SPAN_DAYS
    serial = 2 * (round_number * 50 + walk * 31 % 50) + (1 if male else 0)
    age = (today - birth).days // 365
    if rng.random() < 0.35:
        insutype, psn_type = "390", "resident"
    else:
        insutype = "310"
        psn_type = "retired" if age >= (60 if male else 55) else "employed"
    psn_no = f"{psn_prefix}{city.code}{index:08d}"
    person = [
        psn_no,
        make_id_number(city.code, birth, serial),
        rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2)))),
        "1" if male else "2",
        birth.isoformat(),
        city.code,
        insutype,
        psn_type,
        "1",
        "0.00" if insutype == "390" else f"{rng.randrange(0, 2_000_000) / 100:.2f}",
        rng.choices(["", "low_income", "extreme_poverty"], weights=(90, 7, 3))[0],
        f"C{psn_prefix}{index:010d}",
        f"{rng.getrandbits(32):08X}",
        "normal",
    ]
    category = rng.choices([c for c, _ in _CATEGORIES], weights=[w for _, w in _CATEGORIES])[0]
    dest = destinations.choose(rng, city.province.code).code
    if rng.random() < 0.2:
        dest = dest[:2] + "0000"  # a filing to the whole province
    begin = today - dt.timedelta(days=rng.randrange(0, 90))
    end = "" if category in LONG_TERM_CATEGORIES else add_months(begin, 6).isoformat()
    return person, [psn_no, category, dest, begin.isoformat(), end]


def _write_persons_and_filings(
    directory: Path, persons: int, seed: int, today: dt.date, psn_prefix: str
) -> None:
    rng = random.Random(seed)
    city_list = cities()
    cumulative = list(itertools.accumulate(city.weight for city in city_list))
    destinations = _Destinations(city_list)
    counts: dict[str, _AreaCount] = {}
    with (
        (directory / "persons.csv").open("w", newline="", encoding="utf-8") as person_file,
        (directory / "filings.csv").open("w", newline="", encoding="utf-8") as filing_file,
    ):
        person_csv, filing_csv = csv.writer(person_file), csv.writer(filing_file)
        person_csv.writerow(PERSON_HEADER)
        filing_csv.writerow(FILING_HEADER)
        for index in range(persons):
            city = city_list[bisect.bisect(cumulative, rng.random() * cumulative[-1])]
            count = counts.get(city.code)
            if count is None:
                count = counts[city.code] = _AreaCount(rng.randrange(BIRTH_SPAN_DAYS))
            person, filing = _person_and_filing(
                index, city, count, rng, today, psn_prefix, destinations
            )
            person_csv.writerow(person)
            filing_csv.writerow(filing)


@dataclass(frozen=True)
class DemoPatient:
    """A bundle person with a long-term filing to a city, who may be treated in that city's
    open hospital for any kind of visit."""

    psn_no: str
    certno: str
    name: str
    insutype: str
    hospital: str


def long_term_patients(bundle: Path) -> list[DemoPatient]:
    """The written bundle's persons whose long-term filing names a city, in file order."""
    with (bundle / "persons.csv").open(encoding="utf-8") as handle:
        persons = {row["psn_no"]: row for row in csv.DictReader(handle)}
    found = []
    with (bundle / "filings.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            dest = row["dest_admdvs"]
            if row["category"] in LONG_TERM_CATEGORIES and not dest.endswith("0000"):
                person = persons[row["psn_no"]]
                found.append(
                    DemoPatient(
                        person["psn_no"],
                        person["certno"],
                        person["psn_name"],
                        person["insutype"],
                        open_hospital(dest),
                    )
                )
    return found


# --- the bundle -----------------------------------------------------------------------------


def write_demo_bundle(
    directory: Path,
    *,
    scale: Scale = SCALES["small"],
    persons: int | None = None,
    seed: int = 2017,
    today: dt.date | None = None,
    psn_prefix: str = "P",
) -> Path:
    """Write regions, institutions, catalogue, policies, persons and filings; return directory.
    `persons` overrides the scale's number of persons (and filings)."""
    directory.mkdir(parents=True, exist_ok=True)
    today = today or today_in_china()
    city_list = cities()
    _write(
        directory / "regions.csv",
        ["admdvs", "name", "prov_admdvs"],
        (
            row
            for province in PROVINCES
            for row in [
                [province.code, province.name, province.code],
                *([code, name, province.code] for code, name in province.cities),
            ]
        ),
    )
    _write(
        directory / "institutions.csv",
        INSTITUTION_HEADER,
        institution_rows(scale.open_institutions, seed),
    )
    items = national_items(scale.catalogue_items, seed)
    _write(
        directory / "catalogue.csv",
        CATALOGUE_HEADER,
        (row for province in PROVINCES for row in province_rows(province.code, items, seed)),
    )
    (directory / "policies.json").write_text(
        json.dumps(
            policy_entries(city_list, [today.year - 1, today.year]), ensure_ascii=False, indent=1
        ),
        encoding="utf-8",
    )
    _write_persons_and_filings(
        directory, scale.persons if persons is None else persons, seed, today, psn_prefix
    )
    return directory


def _write(path: Path, header: list[str], rows: Iterable[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
