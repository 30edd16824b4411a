"""Gateway pure parts: the x-tif signature, JSON with exact decimals, input fields by path."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
from medsettle.identity.v1 import identity_pb2
from medsettle.settlement.v1 import settlement_pb2

from gateway import codec
from gateway.auth import check_signature, signature, signed_headers
from gateway.envelope import EnvelopeError
from gateway.fields import Node
from gateway.national import age_on, fee_result, person_output
from services.common.values import date_to_proto, money

pytestmark = pytest.mark.unit


def headers(**change: str) -> dict[str, str]:
    values = {
        "x-tif-paasid": "H11010000001-abcd",
        "x-tif-timestamp": "1764000000",
        "x-tif-nonce": "n0nce-0001",
        "x-tif-signature": signature("1764000000", "s3cret", "n0nce-0001"),
    }
    values.update(change)
    return values


def test_signature_is_sha256_of_timestamp_secret_nonce_timestamp() -> None:
    assert signature("1", "secret", "abc") == hashlib.sha256(b"1secretabc1").hexdigest()


def test_a_signed_request_passes_inside_the_window_and_fails_outside() -> None:
    signed = signed_headers(headers())
    check_signature(signed, "s3cret", 1764000000 + 300, 300)
    with pytest.raises(EnvelopeError, match="more than 300 s"):
        check_signature(signed, "s3cret", 1764000000 + 301, 300)
    with pytest.raises(EnvelopeError, match="does not match"):
        check_signature(signed, "other", 1764000000, 300)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x-tif-nonce": ""}, "header x-tif-nonce is required"),
        ({"x-tif-timestamp": "yesterday"}, "x-tif-timestamp must be unix seconds"),
        ({"x-tif-nonce": "short"}, "x-tif-nonce must be 8 to 64"),
        ({"x-tif-paasid": "p" * 41}, "x-tif-paasid is longer than 40"),
    ],
)
def test_malformed_headers_are_named(change: dict[str, str], message: str) -> None:
    with pytest.raises(EnvelopeError, match=message):
        signed_headers(headers(**change))


def test_amounts_keep_their_decimals_through_json() -> None:
    decoded = codec.decode(b'{"amount": 12.30, "count": 3}')
    assert decoded == {"amount": Decimal("12.30"), "count": 3}
    assert codec.encode({"b": Decimal("12.30"), "a": "中"}) == '{"b":12.30,"a":"中"}'.encode()
    assert codec.encode({"b": 1, "a": 2}, canonical=True) == b'{"a":2,"b":1}'
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        codec.decode(b'{"amount": NaN}')
    with pytest.raises(EnvelopeError, match="not valid JSON"):
        codec.decode(b"[" * 100_000)


def test_what_orjson_cannot_write_is_written_by_simplejson_the_same_way() -> None:
    assert codec.encode({"n": 10**30, "d": Decimal("1E+2")}) == (
        b'{"n":1000000000000000000000000000000,"d":1E+2}'
    )
    nested = b"[" * 300 + b"]" * 300
    assert codec.encode(codec.decode(nested)) == nested


def test_an_unpaired_surrogate_escape_is_refused_and_a_pair_is_one_character() -> None:
    with pytest.raises(EnvelopeError, match="unpaired surrogate escape"):
        codec.decode(b'{"msgid": "\\udc00x"}')
    decoded = codec.decode(b'{"a": "\\ud83d\\ude00", "b": "\\\\ud800"}')
    assert decoded == {"a": "\U0001f600", "b": "\\ud800"}
    assert codec.encode(decoded) == '{"a":"\U0001f600","b":"\\\\ud800"}'.encode()


def test_a_nul_character_anywhere_in_the_body_is_refused() -> None:
    for body in (
        b'{"input": {"data": {"ipt_no": "ZY\\u00001"}}}',
        b'{"input": [[{"\\u0000": 1}]]}',
    ):
        with pytest.raises(EnvelopeError, match="NUL character"):
            codec.decode(body)
    # An escaped backslash before "u0000" is text, not a NUL.
    assert codec.decode(b'{"note": "\\\\u0000"}') == {"note": "\\u0000"}


def test_fields_are_refused_by_their_full_path() -> None:
    node = Node({"feedetail": [{"cnt": "1.00001", "pric": 1, "when": "2026-11-24"}]}, "input")
    [line] = node.children("feedetail", most=10)
    assert line.path == "input.feedetail[0]"
    with pytest.raises(EnvelopeError, match=r"input.feedetail\[0\].cnt has more than 4 decimals"):
        line.number("cnt", 4)
    assert line.number("pric", 6) == "1"
    assert line.date("when") == dt.date(2026, 11, 24)
    with pytest.raises(EnvelopeError, match=r"input.feedetail\[0\].when must be yyyy-MM-dd HH"):
        line.moment("when")
    with pytest.raises(EnvelopeError, match=r"input.feedetail\[0\].psn_no is required"):
        line.text("psn_no", 30)
    with pytest.raises(EnvelopeError, match=r"input\.feedetail has 2 entries; at most 1"):
        Node({"feedetail": [{}, {}]}, "input").children("feedetail", most=1)


@pytest.mark.parametrize("extension", [{"er_flag": "1"}, '{"er_flag": "1"}'])
def test_exp_content_is_read_as_an_object_or_a_json_string(extension: object) -> None:
    assert Node({"exp_content": extension}, "input.data").extension() == {"er_flag": "1"}


def test_exp_content_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(EnvelopeError, match=r"input\.data\.exp_content must be a JSON object"):
        Node({"exp_content": "[1]"}, "input.data").extension()


def test_person_output_uses_national_codes_and_yuan() -> None:
    person = identity_pb2.Person(
        psn_no="P1",
        psn_cert_type="01",
        certno="110101195503140011",
        psn_name="测试",
        gend="1",
        naty="01",
        brdy=date_to_proto(dt.date(1955, 3, 14)),
        insurances=[
            identity_pb2.Insurance(
                insutype="390",
                psn_type="resident",
                status=identity_pb2.INSURANCE_STATUS_ACTIVE,
                insuplc_admdvs="510100",
                balc=money(0),
                idet_types=["low_income"],
            )
        ],
    )
    output = person_output(person, dt.date(2026, 3, 13))
    assert output["baseinfo"]["age"] == Decimal("70.0")
    assert age_on(person, dt.date(2026, 3, 14)) == Decimal("71.0")
    assert (output["insuinfo"][0]["psn_type"], output["insuinfo"][0]["balc"]) == (
        "1501",
        Decimal("0.00"),
    )
    assert output["idetinfo"][0]["psn_idet_type"] == "02"


def test_fee_result_echoes_the_line_with_its_classification() -> None:
    line = settlement_pb2.ClassifiedFee(
        feedetl_sn="7",
        amount=money(3177),
        preselfpay_amt=money(318),
        inscp_scp_amt=money(2859),
        chrgitm_lv="02",
        selfpay_prop="0.1",
        list_type="101",
    )
    row = fee_result(line, "3", "10.59")
    assert (row["det_item_fee_sumamt"], row["preselfpay_amt"], row["selfpay_prop"]) == (
        Decimal("31.77"),
        Decimal("3.18"),
        Decimal("0.1000"),
    )
    assert (row["cnt"], row["pric"], row["med_chrgitm_type"]) == (
        Decimal(3),
        Decimal("10.59"),
        "09",
    )


@pytest.mark.parametrize(
    "value",
    [
        "2026-11-30",
        "2026-11-30T08:05:09",
        "2026-1-30 08:05:09",
        "2026-11-30 08:05:9",
        "2026-02-30 08:05:09",
        "2026-11-30 24:00:00",
        "\uff12\uff10\uff12\uff16-11-30 08:05:09",  # full-width digits
    ],
)
def test_a_moment_must_be_exactly_yyyy_mm_dd_hh_mm_ss(value: str) -> None:
    with pytest.raises(EnvelopeError, match=r"input\.fee_ocur_time must be yyyy-MM-dd HH:mm:ss"):
        Node({"fee_ocur_time": value}, "input").moment("fee_ocur_time")


def test_a_moment_is_read_as_naive_beijing_time() -> None:
    read = Node({"fee_ocur_time": "2026-11-30 08:05:09"}, "input").moment("fee_ocur_time")
    assert read == dt.datetime(2026, 11, 30, 8, 5, 9)
