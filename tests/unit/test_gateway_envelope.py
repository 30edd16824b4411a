"""The national envelope at the gateway: checks naming the field, ids, money in yuan."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from gateway.envelope import (
    EnvelopeError,
    fen_from_yuan,
    inf_refmsgid,
    parse_envelope,
    response,
    stamp,
    yuan,
)

pytestmark = pytest.mark.unit
HOSPITAL = "H11010000001"


def body(**change: Any) -> dict[str, Any]:
    envelope = {
        "infno": "2304",
        "msgid": f"{HOSPITAL}202611241030150001",
        "mdtrtarea_admvs": "110100",
        "insuplc_admdvs": "131000",
        "recer_sys_code": "FSI_LOCAL",
        "infver": "V1.0",
        "opter_type": "1",
        "opter": "0001",
        "opter_name": "收费员",
        "inf_time": "2026-11-24 10:30:15",
        "fixmedins_code": HOSPITAL,
        "fixmedins_name": "北京市第一人民医院",
        "sign_no": "S1",
        "input": {"data": {}},
    }
    envelope.update(change)
    return envelope


def test_a_national_envelope_is_accepted_as_sent() -> None:
    parsed = parse_envelope(body())
    assert (parsed.infno, parsed.fixmedins_code, parsed.sign_no) == ("2304", HOSPITAL, "S1")
    assert parsed.input == {"data": {}}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"infno": ""}, "infno is required"),
        ({"msgid": "H99999999999202611241030150001"}, "msgid must start with fixmedins_code"),
        ({"inf_time": "20261124103015"}, "inf_time must be"),
        ({"opter_name": "x" * 51}, "opter_name is longer than 50"),
        ({"input": "{}"}, "input must be a JSON object"),
        ({"opter": ["1"]}, "opter must be a string"),
        ({"extra": "1"}, "unknown envelope field extra"),
    ],
)
def test_a_bad_envelope_is_refused_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        parse_envelope(body(**change))


def test_ids_and_times_have_the_national_shapes() -> None:
    moment = dt.datetime(2026, 11, 24, 2, 30, 15, 123456, tzinfo=dt.UTC)
    made = inf_refmsgid("110000", moment)
    assert len(made) == 30 and made.startswith("11000020261124103015")
    assert stamp(moment) == "20261124103015123"


@pytest.mark.parametrize(
    ("value", "fen"), [(64.29, 6429), ("64.29", 6429), (10, 1000), ("0.1", 10), (-3.5, -350)]
)
def test_yuan_become_fen_exactly(value: object, fen: int) -> None:
    assert fen_from_yuan(value, "medfee_sumamt") == fen


@pytest.mark.parametrize("value", ["1.234", "abc", True, None, "1e20", float("nan")])
def test_amounts_that_are_not_yuan_are_refused(value: object) -> None:
    with pytest.raises(EnvelopeError, match="medfee_sumamt"):
        fen_from_yuan(value, "medfee_sumamt")


def test_fen_leave_as_two_decimal_yuan_and_errors_as_infcode_minus_one() -> None:
    assert yuan(4889) == Decimal("48.89") and str(yuan(1000)) == "10.00"
    now = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
    failed = response("R", now, now, output={"x": 1}, err_msg="msgid must start with ...")
    assert (failed["infcode"], failed["output"]) == (-1, {})
    ok = response("R", now, now, output={"x": 1})
    assert (ok["infcode"], ok["err_msg"], ok["output"]) == (0, "", {"x": 1})
