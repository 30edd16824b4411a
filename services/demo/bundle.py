"""A small, deterministic demo bundle (real area codes, valid ID numbers) for `medsettle up --demo`
and for load tests. The same seed always writes the same files.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

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


_DRUGS = (
    ("阿卡波糖片", "01", "0"),
    ("瑞格列奈片", "02", "0.10"),
    ("二甲双胍缓释片", "01", "0"),
    ("硝苯地平控释片", "02", "0.05"),
    ("阿托伐他汀钙片", "02", "0.10"),
    ("头孢呋辛酯片", "02", "0.10"),
    ("人血白蛋白", "02", "0.20"),
    ("复方甘草片", "01", "0"),
    ("进口抗肿瘤靶向药", "03", "0"),
    ("胰岛素注射液", "01", "0"),
)
_SERVICES = (
    ("三人间床位费", "01", "0", "60.00"),
    ("CT平扫", "02", "0.10", "260.00"),
    ("核磁共振成像", "02", "0.20", "600.00"),
    ("血常规", "01", "0", "20.00"),
    ("血液透析", "02", "0.10", "420.00"),
    ("特需病房", "03", "0", ""),
)
_CONSUMABLES = (("一次性输液器", "02", "0.10", "8.00"), ("心脏支架", "02", "0.30", "798.00"))


def catalogue_rows(prov: str) -> list[list[str]]:
    """A small catalogue of a province: drugs, service items and consumables of each class."""
    rows = []
    for index, (name, level, share) in enumerate(_DRUGS):
        rows.append(
            [prov, "101", f"XD{index:04d}", name, level, share, "", "", "", "2024-01-01", ""]
        )
    for index, (name, level, share, cap) in enumerate(_SERVICES):
        min_level = "3" if name == "核磁共振成像" else ""
        med_types = "21;14" if name == "血液透析" else ""
        rows.append(
            [
                prov,
                "201",
                f"XS{index:04d}",
                name,
                level,
                share,
                cap,
                min_level,
                med_types,
                "2024-01-01",
                "",
            ]
        )
    for index, (name, level, share, cap) in enumerate(_CONSUMABLES):
        rows.append(
            [prov, "301", f"XC{index:04d}", name, level, share, cap, "", "", "2024-01-01", ""]
        )
    return rows


def institution_rows() -> list[list[str]]:
    """Three institutions per demo city: levels 3, 2 and 1, with their open flags."""
    rows = []
    for city, name in cities():
        rows.append([f"H{city}00001", f"{name}第一人民医院", city, "3", "1", "1", "1"])
        rows.append([f"H{city}00002", f"{name}中医医院", city, "2", "1", "1", "0"])
        rows.append([f"H{city}00003", f"{name}社区卫生服务中心", city, "1", "0", "1", "0"])
    return rows


def _flat(ratio: str) -> dict[str, Any]:
    return {"upto": None, "ratio": ratio}


_REDUCTION = {"referral": "0.10", "emergency": "0.10", "other_temporary": "0.20"}
# (insutype, psn_type) -> medical type -> (deductible by level, tiers, annual cap) in yuan.
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


def policy_entries(areas: list[str], years: list[int]) -> list[dict[str, Any]]:
    """Policies of every pooling area: each insurance and person type, year and medical type."""
    entries = []
    for area in areas:
        for year in years:
            for (insutype, psn_type), by_med_type in _POLICY_FIGURES.items():
                for med_type, (deductible, tiers, cap) in by_med_type.items():
                    entry: dict[str, Any] = {
                        "insuplc_admdvs": area,
                        "insutype": insutype,
                        "year": year,
                        "med_type": med_type,
                        "psn_type": psn_type,
                        "deductible": deductible,
                        "repeat_deductible_factor": "0.5",
                        "tiers": tiers,
                        "annual_cap": cap,
                        "reduction": _REDUCTION,
                    }
                    if med_type == "21":
                        entry["critical_illness"] = {
                            "fund": "hifob_pay" if insutype == "310" else "hifmi_pay",
                            "threshold": "15000.00",
                            "tiers": [
                                {"upto": "100000.00", "ratio": "0.60"},
                                {"upto": None, "ratio": "0.70"},
                            ],
                            "annual_cap": "400000.00",
                        }
                        entry["assistance"] = {
                            "identities": ["low_income", "extreme_poverty"],
                            "ratio": "0.70",
                            "annual_cap": "50000.00",
                        }
                    entries.append(entry)
    return entries


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
    """Write regions, institutions, catalogue, policies, persons and filings; return directory."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    today = today or today_in_china()
    _write(
        directory / "regions.csv",
        ["admdvs", "name", "prov_admdvs"],
        [
            row
            for code, (name, province_cities) in AREAS.items()
            for row in [[code, name, code], *([c, n, code] for c, n in province_cities)]
        ],
    )
    _write(
        directory / "institutions.csv",
        [
            "fixmedins_code",
            "fixmedins_name",
            "admdvs",
            "level",
            "open_inpatient",
            "open_outpatient",
            "open_chronic",
        ],
        institution_rows(),
    )
    _write(
        directory / "catalogue.csv",
        [
            "prov_admdvs",
            "list_type",
            "med_list_codg",
            "name",
            "chrgitm_lv",
            "selfpay_prop",
            "pric_uplmt_amt",
            "min_level",
            "med_types",
            "begndate",
            "enddate",
        ],
        [row for prov in AREAS for row in catalogue_rows(prov)],
    )
    city_list = cities()
    (directory / "policies.json").write_text(
        json.dumps(
            policy_entries([code for code, _ in city_list], [today.year - 1, today.year]),
            ensure_ascii=False,
            indent=1,
        ),
        encoding="utf-8",
    )
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
    _write(
        directory / "persons.csv",
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
        ],
        person_rows,
    )
    _write(
        directory / "filings.csv",
        ["psn_no", "category", "dest_admdvs", "begndate", "enddate"],
        filing_rows,
    )
    return directory


def _write(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
