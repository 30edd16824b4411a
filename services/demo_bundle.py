"""A small, deterministic demo bundle (real area codes, valid ID numbers) for `medsettle up --demo`
and for load tests. The same seed always writes the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

from services.common.values import today_in_china
from services.filing.logic import add_months
from services.identity.logic import make_id_number

# Real GB/T 2260 codes: provinces and some of their prefecture cities (pooling areas).
AREAS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "110000": ("北京市", [("110100", "北京市市辖区")]),
    "120000": ("天津市", [("120100", "天津市市辖区")]),
    "130000": ("河北省", [("130100", "石家庄市"), ("130600", "保定市"), ("131000", "廊坊市")]),
    "310000": ("上海市", [("310100", "上海市市辖区")]),
    "320000": ("江苏省", [("320100", "南京市"), ("320500", "苏州市")]),
    "330000": ("浙江省", [("330100", "杭州市"), ("330200", "宁波市")]),
    "420000": ("湖北省", [("420100", "武汉市")]),
    "440000": ("广东省", [("440100", "广州市"), ("440300", "深圳市")]),
    "460000": ("海南省", [("460100", "海口市"), ("460200", "三亚市")]),
    "500000": ("重庆市", [("500100", "重庆市市辖区")]),
    "510000": ("四川省", [("510100", "成都市"), ("510700", "绵阳市")]),
    "610000": ("陕西省", [("610100", "西安市")]),
}
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


def cities() -> list[tuple[str, str]]:
    """Every (code, name) city of the demo areas."""
    return [city for _, (_, province_cities) in AREAS.items() for city in province_cities]


def write_demo_bundle(
    directory: Path,
    *,
    persons: int = 200,
    seed: int = 2017,
    today: dt.date | None = None,
    psn_prefix: str = "P",
) -> Path:
    """Write regions.csv, persons.csv and filings.csv into directory; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    today = today or today_in_china()
    with (directory / "regions.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["admdvs", "name", "prov_admdvs"])
        for code, (name, province_cities) in AREAS.items():
            writer.writerow([code, name, code])
            for city_code, city_name in province_cities:
                writer.writerow([city_code, city_name, code])
    city_list = cities()
    person_rows, filing_rows = [], []
    for index in range(persons):
        area, _ = city_list[index % len(city_list)]
        birth = dt.date(1940, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 60))
        retired = (today - birth).days > 60 * 365
        resident = rng.random() < 0.35
        insutype, psn_type = (
            ("390", "resident")
            if resident
            else (("310", "retired") if retired else ("310", "employed"))
        )
        psn_no = f"{psn_prefix}{area}{index:08d}"
        person_rows.append(
            [
                psn_no,
                make_id_number(area, birth, index),
                rng.choice(_SURNAMES) + "".join(rng.choices(_GIVEN, k=rng.choice((1, 2)))),
                rng.choice("12"),
                birth.isoformat(),
                area,
                insutype,
                psn_type,
                "1",
                "0.00" if resident else f"{rng.randrange(0, 2_000_000) / 100:.2f}",
                rng.choices(["", "low_income", "extreme_poverty"], weights=(90, 7, 3))[0],
                f"C{psn_prefix}{index:010d}",
                f"{rng.getrandbits(32):08X}",
                "normal",
            ]
        )
        category = rng.choices([c for c, _ in _CATEGORIES], weights=[w for _, w in _CATEGORIES])[0]
        destinations = [code for code, _ in city_list if code[:2] != area[:2]]
        dest = rng.choice(destinations)
        if rng.random() < 0.2:
            dest = dest[:2] + "0000"  # a filing to the whole province
        begin = today - dt.timedelta(days=rng.randrange(0, 90))
        long_term = category in ("retired_relocated", "long_term_resident", "stationed_worker")
        end = "" if long_term else add_months(begin, 6).isoformat()
        filing_rows.append([psn_no, category, dest, begin.isoformat(), end])
    with (directory / "persons.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
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
        )
        writer.writerows(person_rows)
    with (directory / "filings.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["psn_no", "category", "dest_admdvs", "begndate", "enddate"])
        writer.writerows(filing_rows)
    return directory
