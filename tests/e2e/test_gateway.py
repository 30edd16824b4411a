"""The national hospital interface over HTTP on the running mesh: whole flows and every refusal."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
import pytest_asyncio
import schemathesis
import simplejson
from hypothesis import given, settings
from hypothesis import strategies as st
from medsettle.filing.v1 import filing_pb2, filing_service_pb2, filing_service_pb2_grpc
from medsettle.identity.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from schemathesis.core.result import Ok

from gateway import codec
from gateway.credentials import issue_credentials
from gateway.his_client import His
from gateway.hospital import HOSPITAL_PATH
from gateway.transactions.registry import NOT_YET_AVAILABLE, SERVICE_TRANSACTIONS
from services.bundle_loader import load_bundle
from services.common.mesh import Mesh
from services.common.values import date_to_proto, today_in_china
from services.demo.bundle import write_demo_bundle
from tests.harness import national
from tests.people import person

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
HOSPITAL = "H11010000001"  # Beijing, level 3, open for 21, 11 and 14
OTHER_HOSPITAL = "H11010000002"
INPATIENT = (
    "P131000000101"  # 廊坊 retiree with a long-term filing to Beijing, identified by e-voucher
)
OUTPATIENT = "P131000000102"  # 廊坊 retiree with a card, long-term filing to Beijing
CARD = "C13100000102"


@dataclass
class World:
    """The running mesh with reference data, the test persons and two institutions' clients."""

    his: His
    other: His
    persons: dict[str, identity_pb2.Person]
    voucher: str
    endpoints: dict[str, str]
    mesh: Mesh


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(mesh: Mesh, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    endpoints = mesh.config.endpoints()
    bundle = write_demo_bundle(tmp_path_factory.mktemp("bundle"), persons=0)
    report = await load_bundle(bundle, endpoints)
    assert report.ok, [f.line() for f in report.files]
    people = {
        INPATIENT: person(INPATIENT, serial=101, balc_fen=50_000),
        OUTPATIENT: person(OUTPATIENT, serial=102, card_no=CARD),
    }
    async with grpc.aio.insecure_channel(endpoints["identity"]) as channel:
        identity = identity_service_pb2_grpc.IdentityServiceStub(channel)

        async def upload() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
            yield identity_service_pb2.UpsertPersonsRequest(
                persons=list(people.values()), last=True
            )

        await identity.UpsertPersons(upload(), metadata=national())
        voucher = await identity.IssueVoucher(
            identity_service_pb2.IssueVoucherRequest(
                certno=people[INPATIENT].certno, psn_name=people[INPATIENT].psn_name
            ),
            metadata=national(),
        )
    async with grpc.aio.insecure_channel(endpoints["filing"]) as channel:
        filing = filing_service_pb2_grpc.FilingServiceStub(channel)
        for psn_no in people:
            await filing.CreateFiling(
                filing_service_pb2.CreateFilingRequest(
                    request_id=f"e2e-{psn_no}",
                    psn_no=psn_no,
                    category=filing_pb2.FILING_CATEGORY_RETIRED_RELOCATED,
                    insuplc_admdvs="131000",
                    dest_admdvs="110000",
                    begin_date=date_to_proto(today_in_china() - dt.timedelta(days=30)),
                    channel=filing_pb2.FILING_CHANNEL_APP,
                ),
                metadata=national(),
            )
    database = endpoints["gateway_database"]
    mine = await issue_credentials(HOSPITAL, endpoints["catalogue"], database)
    theirs = await issue_credentials(OTHER_HOSPITAL, endpoints["catalogue"], database)
    async with httpx.AsyncClient(base_url=endpoints["gateway"], timeout=30) as client:
        his = His(client, HOSPITAL, mine["paasid"], mine["secret"])
        other = His(client, OTHER_HOSPITAL, theirs["paasid"], theirs["secret"])
        await his.sign_in()
        await other.sign_in()
        yield World(his, other, people, voucher.token, endpoints, mesh)


def ok(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["infcode"] == 0, answer["err_msg"]
    assert answer["err_msg"] == ""
    assert len(answer["inf_refmsgid"]) == 30 and answer["inf_refmsgid"].startswith("110000")
    assert len(answer["refmsg_time"]) == 17 and len(answer["respond_time"]) == 17
    output: dict[str, Any] = answer["output"]
    return output


def refused(answer: dict[str, Any]) -> str:
    assert answer["infcode"] == -1, answer
    assert answer["output"] == {}
    message: str = answer["err_msg"]
    return message


def now_text() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def fee(
    sn: str, mdtrt_id: str, psn_no: str, code: str, cnt: str, pric: str, total: str
) -> dict[str, Any]:
    return {
        "feedetl_sn": sn,
        "mdtrt_id": mdtrt_id,
        "psn_no": psn_no,
        "med_type": "21",
        "fee_ocur_time": now_text(),
        "med_list_codg": code,
        "medins_list_codg": f"OWN-{code}",
        "det_item_fee_sumamt": Decimal(total),
        "cnt": Decimal(cnt),
        "pric": Decimal(pric),
        "bilg_dept_codg": "A03",
        "bilg_dept_name": "内科",
        "bilg_dr_codg": "D001",
        "bilg_dr_name": "王医生",
    }


async def admit(his: His, psn_no: str, credential: dict[str, str], ipt_no: str, **more: str) -> str:
    """2401 of an inpatient stay (ordinary, unless `more` says otherwise); the mdtrt_id."""
    admission = {
        "mdtrtinfo": {
            "psn_no": psn_no,
            "insutype": "310",
            "begntime": now_text(),
            **credential,
            "med_type": "21",
            "ipt_no": ipt_no,
            **more,
        }
    }
    mdtrt_id: str = ok(await his.call("2401", admission))["result"]["mdtrt_id"]
    return mdtrt_id


def settle_input(
    psn_no: str, credential: dict[str, str], mdtrt_id: str, total: str, **more: str
) -> dict[str, Any]:
    """The `input` of a fee-for-item settlement (2304; 2303, 2206 and 2207 take `more`)."""
    data: dict[str, Any] = {
        "psn_no": psn_no,
        **credential,
        "medfee_sumamt": Decimal(total),
        "psn_setlway": "01",
        "mdtrt_id": mdtrt_id,
        "acct_used_flag": "0",
        "insutype": "310",
    }
    return {"data": {**data, **more}}


def age(birth: dt.date, on: dt.date) -> Decimal:
    years = on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))
    return Decimal(years).quantize(Decimal("0.1"))


SETTLEMENT_AMOUNT_FIELDS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
    "pool_prop_selfpay",
    "hifob_pay",
    "maf_pay",
    "fund_pay_sumamt",
    "psn_part_amt",
    "acct_pay",
    "psn_cash_pay",
)


def amounts(setlinfo: dict[str, Any]) -> dict[str, Decimal]:
    return {name: setlinfo[name] for name in SETTLEMENT_AMOUNT_FIELDS}


async def test_inpatient_flow_with_the_e_voucher(world: World) -> None:
    his, retiree = world.his, world.persons[INPATIENT]
    credential = {"mdtrt_cert_type": "01", "mdtrt_cert_no": world.voucher}
    info = ok(await his.call("1101", {"data": {**credential, "psn_cert_type": "01"}}))
    today = today_in_china()
    assert info["baseinfo"] == {
        "psn_no": INPATIENT,
        "psn_cert_type": "01",
        "certno": retiree.certno,
        "psn_name": retiree.psn_name,
        "gend": "1",
        "naty": "01",
        "brdy": "1955-03-14",
        "age": age(dt.date(1955, 3, 14), today),
        "exp_content": "",
    }
    assert info["insuinfo"] == [
        {
            "balc": Decimal("500.00"),
            "insutype": "310",
            "psn_type": "1201",
            "psn_insu_stas": "1",
            "psn_insu_date": "",
            "paus_insu_date": "",
            "cvlserv_flag": "0",
            "insuplc_admdvs": "131000",
            "emp_name": "",
        }
    ]
    assert info["idetinfo"] == []
    admission = {
        "mdtrtinfo": {
            "psn_no": INPATIENT,
            "insutype": "310",
            "begntime": now_text(),
            **credential,
            "med_type": "21",
            "ipt_no": "ZY-E2E-1",
            "atddr_no": "D001",
            "chfpdr_name": "王医生",
            "adm_diag_dscr": "2型糖尿病",
            "adm_dept_codg": "A03",
            "adm_dept_name": "内科",
            "adm_bed": "12",
            "dscg_maindiag_code": "E11.900",
            "dscg_maindiag_name": "2型糖尿病",
        },
        "diseinfo": [
            {
                "psn_no": INPATIENT,
                "diag_type": "1",
                "maindiag_flag": "1",
                "diag_srt_no": "1",
                "diag_code": "E11.900",
                "diag_name": "2型糖尿病",
                "diag_dept": "内科",
                "dise_dor_no": "D001",
                "dise_dor_name": "王医生",
                "diag_time": now_text(),
            }
        ],
    }
    mdtrt_id = ok(await his.call("2401", admission))["result"]["mdtrt_id"]
    assert len(mdtrt_id) == 30
    lines = [
        fee("1", mdtrt_id, INPATIENT, "XD0000", "100", "50.00", "5000.00"),  # 甲
        fee("2", mdtrt_id, INPATIENT, "XD0001", "10", "100.00", "1000.00"),  # 乙, 10% first
        fee("3", mdtrt_id, INPATIENT, "XD0008", "1", "2000.00", "2000.00"),  # 丙
        fee("4", mdtrt_id, INPATIENT, "XS0000", "10", "80.00", "800.00"),  # bed, cap 60.00
    ]
    result = ok(await his.call("2301", {"feedetail": lines}))["result"]
    assert [
        (
            r["feedetl_sn"],
            r["chrgitm_lv"],
            r["fulamt_ownpay_amt"],
            r["overlmt_amt"],
            r["preselfpay_amt"],
            r["inscp_scp_amt"],
        )
        for r in result
    ] == [
        ("1", "01", Decimal("0.00"), Decimal("0.00"), Decimal("0.00"), Decimal("5000.00")),
        ("2", "02", Decimal("0.00"), Decimal("0.00"), Decimal("100.00"), Decimal("900.00")),
        ("3", "03", Decimal("2000.00"), Decimal("0.00"), Decimal("0.00"), Decimal("0.00")),
        ("4", "01", Decimal("0.00"), Decimal("200.00"), Decimal("0.00"), Decimal("600.00")),
    ]
    assert result[1]["selfpay_prop"] == Decimal("0.1000")
    settle_data = settle_input(INPATIENT, credential, mdtrt_id, "8800.00", mid_setl_flag="0")
    expected = {
        "medfee_sumamt": Decimal("8800.00"),
        "fulamt_ownpay_amt": Decimal("2000.00"),
        "overlmt_selfpay": Decimal("200.00"),
        "preselfpay_amt": Decimal("100.00"),
        "inscp_scp_amt": Decimal("6500.00"),
        "act_pay_dedc": Decimal("1000.00"),  # level-3 deductible, first stay of the year
        "hifp_pay": Decimal("4950.00"),  # (6500 - 1000) x 90%
        "pool_prop_selfpay": Decimal("0.9000"),
        "hifob_pay": Decimal("0.00"),
        "maf_pay": Decimal("0.00"),
        "fund_pay_sumamt": Decimal("4950.00"),
        "psn_part_amt": Decimal("3850.00"),
        "acct_pay": Decimal("0.00"),
        "psn_cash_pay": Decimal("3850.00"),
    }
    preview = ok(await his.call("2303", settle_data))
    assert "setl_id" not in preview["setlinfo"]
    assert amounts(preview["setlinfo"]) == expected
    settle_message = his.envelope("2304", settle_data)
    settled_reply = await his.post(settle_message)
    settled = ok(settled_reply.json(parse_float=Decimal))
    setlinfo = settled["setlinfo"]
    assert amounts(setlinfo) == expected
    assert b'"medfee_sumamt":8800.00' in settled_reply.content
    assert b'"pool_prop_selfpay":0.9000' in settled_reply.content
    assert setlinfo["medins_setl_id"] == settle_message["msgid"]
    assert (setlinfo["psn_name"], setlinfo["certno"], setlinfo["psn_type"]) == (
        retiree.psn_name,
        retiree.certno,
        "1201",
    )
    assert (setlinfo["clr_type"], setlinfo["clr_optins"], setlinfo["mdtrt_cert_type"]) == (
        "21",
        "110100",
        "01",
    )
    assert settled["setldetail"] == [
        {
            "fund_pay_type": "310100",
            "inscp_scp_amt": Decimal("6500.00"),
            "crt_payb_lmt_amt": Decimal("0.00"),
            "fund_payamt": Decimal("4950.00"),
            "fund_pay_type_name": "职工基本医疗保险统筹基金",
            "setl_proc_info": "",
        }
    ]
    # A repeat of the same message gets the stored answer, byte for byte.
    again = await his.post(settle_message)
    assert again.content == settled_reply.content
    setl_id = setlinfo["setl_id"]
    cancel = {"data": {"mdtrt_id": mdtrt_id, "setl_id": setl_id, "psn_no": INPATIENT}}
    cancelled = ok(await his.call("2305", cancel))["setlinfo"]
    assert (cancelled["setl_id"], cancelled["medfee_sumamt"], cancelled["fund_pay_sumamt"]) == (
        setl_id,
        Decimal("-8800.00"),
        Decimal("-4950.00"),
    )
    resettled = ok(await his.call("2304", settle_data))["setlinfo"]
    assert amounts(resettled) == expected
    assert resettled["setl_id"] != setl_id


async def test_outpatient_flow_with_the_card_settles_the_published_example(world: World) -> None:
    his, retiree = world.his, world.persons[OUTPATIENT]
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    registration = {
        "data": {
            "psn_no": OUTPATIENT,
            "insutype": "310",
            "begntime": now_text(),
            **credential,
            "ipt_otp_no": "MZ-E2E-1",
            "atddr_no": "D002",
            "dr_name": "李医生",
            "dept_code": "A03",
            "dept_name": "内科",
            "caty": "A03",
        }
    }
    registered = ok(await his.call("2201", registration))["data"]
    mdtrt_id = registered["mdtrt_id"]
    assert registered == {"mdtrt_id": mdtrt_id, "psn_no": OUTPATIENT, "ipt_otp_no": "MZ-E2E-1"}
    visit_info = {
        "mdtrtinfo": {
            "mdtrt_id": mdtrt_id,
            "psn_no": OUTPATIENT,
            "med_type": "14",
            "begntime": now_text(),
            "dise_codg": "E11.900",
        },
        "diseinfo": [
            {
                "diag_type": "1",
                "diag_srt_no": 1,
                "diag_code": "E11.900",
                "diag_name": "2型糖尿病",
                "diag_dept": "内科",
                "dise_dor_no": "D002",
                "dise_dor_name": "李医生",
                "diag_time": now_text(),
                "vali_flag": "1",
            }
        ],
    }
    assert ok(await his.call("2203", visit_info)) == {}
    lines = [
        {**fee("1", mdtrt_id, OUTPATIENT, "XD0000", "1", "32.52", "32.52"), "chrg_bchno": "B1"},
        {**fee("2", mdtrt_id, OUTPATIENT, "XD0001", "3", "10.59", "31.77"), "chrg_bchno": "B1"},
    ]
    result = ok(await his.call("2204", {"feedetail": lines}))["result"]
    assert [r["preselfpay_amt"] for r in result] == [Decimal("0.00"), Decimal("3.18")]
    settle_data = settle_input(
        OUTPATIENT, credential, mdtrt_id, "64.29", med_type="14", chrg_bchno="B1"
    )
    expected = {
        "medfee_sumamt": Decimal("64.29"),
        "fulamt_ownpay_amt": Decimal("0.00"),
        "overlmt_selfpay": Decimal("0.00"),
        "preselfpay_amt": Decimal("3.18"),
        "inscp_scp_amt": Decimal("61.11"),
        "act_pay_dedc": Decimal("0.00"),
        "hifp_pay": Decimal("48.89"),
        "pool_prop_selfpay": Decimal("0.8000"),
        "hifob_pay": Decimal("0.00"),
        "maf_pay": Decimal("0.00"),
        "fund_pay_sumamt": Decimal("48.89"),
        "psn_part_amt": Decimal("15.40"),
        "acct_pay": Decimal("0.00"),
        "psn_cash_pay": Decimal("15.40"),
    }
    assert amounts(ok(await his.call("2206", settle_data))["setlinfo"]) == expected
    settled = ok(await his.call("2207", settle_data))["setlinfo"]
    assert amounts(settled) == expected
    assert (settled["clr_type"], settled["psn_name"], settled["mdtrt_cert_type"]) == (
        "11",
        retiree.psn_name,
        "03",
    )
    cancel = {"data": {"setl_id": settled["setl_id"], "mdtrt_id": mdtrt_id, "psn_no": OUTPATIENT}}
    cancelled = ok(await his.call("2208", cancel))
    assert cancelled["setlinfo"]["psn_cash_pay"] == Decimal("-15.40")
    assert cancelled["setldetail"][0]["fund_payamt"] == Decimal("-48.89")


# --- refusals ---


async def test_signature_timestamp_and_nonce_are_checked(world: World) -> None:
    his = world.his
    body = his.envelope("1312", {"data": {"page_num": 1, "page_size": 5, "updt_time": now_text()}})
    bad_signature = his.headers(secret="not-the-secret")
    assert "x-tif-signature does not match" in refused((await his.post(body, bad_signature)).json())
    stale = his.headers(timestamp=int(time.time()) - 301)
    assert "x-tif-timestamp is more than 300 s" in refused((await his.post(body, stale)).json())
    headers = his.headers()
    first = (await his.post(body, headers)).json()
    assert ok(first)["recordCounts"] == 18
    assert len(ok(first)["data"]) == 5
    replayed = his.envelope("1312", {"data": {"page_num": 2, "page_size": 5, "updt_time": ""}})
    assert "was already used" in refused((await his.post(replayed, headers)).json())
    missing = {k: v for k, v in his.headers().items() if k != "x-tif-nonce"}
    assert refused((await his.post(body, missing)).json()) == "header x-tif-nonce is required"


async def test_an_institution_cannot_act_as_another(world: World) -> None:
    his, other = world.his, world.other
    # Signed by the other hospital but claiming to be this one.
    impostor = his.envelope("1312", {"data": {"page_num": 1, "page_size": 1}})
    answer = (await other.post(impostor, other.headers())).json()
    assert "does not belong to fixmedins_code H11010000001" in refused(answer)
    foreign_msgid = his.envelope("1312", {"data": {"page_num": 1, "page_size": 1}})
    foreign_msgid["msgid"] = other.new_msgid()
    assert refused((await his.post(foreign_msgid)).json()) == "msgid must start with fixmedins_code"
    # The other hospital's session is not ours.
    stolen = his.envelope("1312", {"data": {"page_num": 1, "page_size": 1}}, sign_no=other.sign_no)
    assert "is not a sign-in of this institution" in refused((await his.post(stolen)).json())


async def test_another_institutions_visit_is_not_found(world: World) -> None:
    his, other = world.his, world.other
    credential = {"mdtrt_cert_type": "01", "mdtrt_cert_no": world.voucher}
    mdtrt_id = await admit(his, INPATIENT, credential, "ZY-E2E-BOLA")
    line = fee("1", mdtrt_id, INPATIENT, "XD0000", "1", "10.00", "10.00")
    answer = await other.call("2301", {"feedetail": [line]})
    assert refused(answer) == f"{OTHER_HOSPITAL} has no visit {mdtrt_id} [VISIT_NOT_FOUND]"
    cancel = {"data": {"mdtrt_id": mdtrt_id, "psn_no": INPATIENT}}
    assert "[VISIT_NOT_FOUND]" in refused(await other.call("2404", cancel))
    assert ok(await his.call("2404", cancel)) == {}


async def test_a_msgid_answers_once_and_never_for_another_body(world: World) -> None:
    his = world.his
    body = his.envelope(
        "1101", {"data": {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}}
    )
    first = await his.post(body)
    second = await his.post(body)
    assert ok(first.json())["baseinfo"]["psn_no"] == OUTPATIENT
    assert second.content == first.content
    changed = {**body, "input": {"data": {"mdtrt_cert_type": "01", "mdtrt_cert_no": world.voucher}}}
    message = refused((await his.post(changed)).json())
    assert message == (
        f"msgid {body['msgid']} was already used for another request (infno 1101); use a new msgid"
    )


async def test_bodies_and_fields_are_refused_by_name(world: World) -> None:
    his = world.his
    cases: list[tuple[bytes | dict[str, Any], str]] = [
        (b"{not json", "the request body is not valid JSON"),
        (b"[1, 2]", "the request body must be a JSON object"),
        (b"\xff\xfe", "the request body must be UTF-8 JSON"),
        (b'{"infno": "1101", "opter_name": "\\ud800"}', "an unpaired surrogate escape"),
        (b"x" * 1_048_577, "the request body is larger than 1048576 bytes"),
        (his.envelope("9999", {}), "infno 9999 is not a transaction of this platform"),
        (
            his.envelope(
                "2401",
                {"mdtrtinfo": {"psn_no": "P", "ipt_no": "ZY\x001", "med_type": "21"}},
            ),
            "the request body holds a NUL character",
        ),
        ({**his.envelope("1101", {}), "infno": {"code": "1101"}}, "infno must be a string"),
        (his.envelope("3203", {}), "clearing applications (3203) are not taken"),
        (his.envelope("1101", {}, inf_time="yesterday"), "inf_time must be yyyy-MM-dd HH:mm:ss"),
        (his.envelope("1101", {}, opter_name="x" * 51), "opter_name is longer than 50 characters"),
        (his.envelope("1101", {}, sign_no=""), "sign_no is required: sign in with 9001 first"),
        (
            his.envelope("1101", {"data": {"mdtrt_cert_type": "09"}}),
            "input.data.mdtrt_cert_type is '09'",
        ),
        (
            his.envelope("2301", {"feedetail": [{"feedetl_sn": "1"}] * 1001}),
            "input.feedetail has 1001 entries; at most 1000",
        ),
        (
            his.envelope(
                "2301",
                {
                    "feedetail": [
                        {
                            **fee("1", "M", "P", "XD0000", "1", "1", "1"),
                            "det_item_fee_sumamt": Decimal("1.001"),
                        }
                    ]
                },
            ),
            "input.feedetail[0].det_item_fee_sumamt has more than two decimals",
        ),
        (
            his.envelope(
                "2301",
                {
                    "feedetail": [
                        {
                            **fee("1", "M", "P", "XD0000", "1", "1", "1"),
                            "det_item_fee_sumamt": Decimal("1e17"),
                        }
                    ]
                },
            ),
            "input.feedetail[0].det_item_fee_sumamt is out of range (N16,2)",
        ),
        (
            his.envelope(
                "2201",
                {
                    "data": {
                        "psn_no": "P",
                        "insutype": "310",
                        "begntime": now_text(),
                        "mdtrt_cert_type": "02",
                        "mdtrt_cert_no": "x",
                        "ipt_otp_no": "1",
                        "exp_content": '{"er_flag": "7"}',
                    }
                },
            ),
            "input.data.exp_content.er_flag must be 0, 1, 2 or 3",
        ),
    ]
    for body, expected in cases:
        reply = await his.post(body)
        assert reply.status_code == 200
        assert expected in refused(reply.json()), (expected, reply.text[:300])


async def test_the_hospital_path_reads_chunked_bodies_and_takes_only_post(world: World) -> None:
    his = world.his

    async def chunks(body: bytes, size: int) -> AsyncIterator[bytes]:
        for start in range(0, len(body), size):
            yield body[start : start + size]

    # Without a content-length the gateway reads chunk by chunk, and stops past the limit.
    signed = codec.encode(his.envelope("1101", {"data": {"mdtrt_cert_type": "02"}}))
    for body, size, expected in (
        (signed, 7, "input.data.mdtrt_cert_no is required"),
        (b"x" * 1_048_577, 65_536, "the request body is larger than 1048576 bytes"),
    ):
        reply = await his.client.post(
            HOSPITAL_PATH, content=chunks(body, size), headers=his.headers()
        )
        assert "content-length" not in reply.request.headers
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json; charset=utf-8"
        assert len(reply.headers["x-trace-id"]) == 32
        assert expected in refused(reply.json())
    for method in ("GET", "PUT"):
        assert (await his.client.request(method, HOSPITAL_PATH)).status_code == 405


async def test_an_emergency_admission_needs_no_filing_with_er_flag_as_a_string(
    world: World,
) -> None:
    his = world.his
    unfiled = person("P320100000109", area="320100", serial=109, psn_type="employed")
    async with grpc.aio.insecure_channel(world.endpoints["identity"]) as channel:
        identity = identity_service_pb2_grpc.IdentityServiceStub(channel)

        async def upload() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
            yield identity_service_pb2.UpsertPersonsRequest(persons=[unfiled], last=True)

        await identity.UpsertPersons(upload(), metadata=national())
    admission: dict[str, Any] = {
        "mdtrtinfo": {
            "psn_no": unfiled.psn_no,
            "insutype": "310",
            "begntime": now_text(),
            "mdtrt_cert_type": "02",
            "mdtrt_cert_no": unfiled.certno,
            "med_type": "21",
            "ipt_no": "ZY-E2E-ER",
        }
    }
    assert "[FILING_REQUIRED]" in refused(await his.call("2401", admission))
    admission["mdtrtinfo"]["exp_content"] = '{"er_flag": "1"}'
    assert len(ok(await his.call("2401", admission))["result"]["mdtrt_id"]) == 30


async def _service_metrics(world: World, service: str) -> str:
    """The Prometheus exposition of one service of the mesh."""
    port = world.mesh.config.metrics_port(service)
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{port}/metrics")).text


async def _identity_get_person_calls(world: World) -> int:
    exposition = await _service_metrics(world, "identity")
    served = 'medsettle_rpc_requests_total{code="OK",method="IdentityService/GetPerson"'
    return sum(
        int(float(line.rpartition(" ")[2]))
        for line in exposition.splitlines()
        if line.startswith(served)
    )


async def test_a_settlement_names_its_person_from_the_1101_just_before_or_else_asks_identity(
    world: World,
) -> None:
    his = world.his
    setlinfos = {}
    calls = []
    for psn_no, serial, reads_credential_first in (
        ("P320100000112", 112, True),
        ("P320100000113", 113, False),
    ):
        credential = {
            "mdtrt_cert_type": "01",
            "mdtrt_cert_no": await _new_person_with_voucher(world, psn_no, serial),
        }
        if reads_credential_first:
            ok(await his.call("1101", {"data": credential}))
        # Unfiled: admitted as an emergency.
        mdtrt_id = await admit(
            his, psn_no, credential, f"ZY-E2E-NAMED-{serial}", exp_content='{"er_flag": "1"}'
        )
        line = fee("1", mdtrt_id, psn_no, "XD0000", "1", "100.00", "100.00")
        ok(await his.call("2301", {"feedetail": [line]}))
        settle = settle_input(psn_no, credential, mdtrt_id, "100.00")
        before = await _identity_get_person_calls(world)
        preview = ok(await his.call("2303", settle))["setlinfo"]
        calls.append(await _identity_get_person_calls(world) - before)
        setlinfos[psn_no] = ok(await his.call("2304", settle))["setlinfo"]
        calls.append(await _identity_get_person_calls(world) - before)
        assert preview["psn_name"] == setlinfos[psn_no]["psn_name"]
    # The 1101 brought the first person; the second's 2303 asked identity, and its 2304 did not.
    assert calls == [0, 0, 1, 1]
    for psn_no, serial in (("P320100000112", 112), ("P320100000113", 113)):
        registered = person(psn_no, area="320100", serial=serial, psn_type="employed")
        named = setlinfos[psn_no]
        assert (named["psn_no"], named["psn_name"], named["certno"], named["gend"]) == (
            psn_no,
            registered.psn_name,
            registered.certno,
            registered.gend,
        )


async def test_a_reversal_cancels_a_settlement_and_a_tombstone_refuses_a_late_original(
    world: World,
) -> None:
    his = world.his
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    mdtrt_id = await admit(his, OUTPATIENT, credential, "ZY-E2E-2601")
    line = fee("1", mdtrt_id, OUTPATIENT, "XD0000", "1", "10.00", "10.00")
    ok(await his.call("2301", {"feedetail": [line]}))
    settle = his.envelope(
        "2304", settle_input(OUTPATIENT, credential, mdtrt_id, "10.00", mid_setl_flag="0")
    )
    setl_id = ok((await his.post(settle)).json(parse_float=Decimal))["setlinfo"]["setl_id"]
    reversal = {"data": {"psn_no": OUTPATIENT, "omsgid": settle["msgid"], "oinfno": "2304"}}
    assert ok(await his.call("2601", reversal)) == {}
    # The settlement is cancelled: cancelling it again says so.
    cancel = {"data": {"mdtrt_id": mdtrt_id, "setl_id": setl_id, "psn_no": OUTPATIENT}}
    assert "[SETTLEMENT_ALREADY_CANCELLED]" in refused(await his.call("2305", cancel))
    # The reversed message no longer answers with its settlement.
    assert "was reversed by 2601" in refused((await his.post(settle)).json())
    # A reversal of a message never seen leaves a tombstone: the late original is refused.
    late = his.envelope("2304", settle["input"])
    tombstone = {"data": {"psn_no": OUTPATIENT, "omsgid": late["msgid"], "oinfno": "2304"}}
    assert ok(await his.call("2601", tombstone)) == {}
    assert "was reversed by 2601" in refused((await his.post(late)).json())
    not_reversible = {"data": {"psn_no": OUTPATIENT, "omsgid": late["msgid"], "oinfno": "2305"}}
    assert "cannot be reversed" in refused(await his.call("2601", not_reversible))


async def test_signing_out_ends_the_session(world: World) -> None:
    his = world.his
    client = His(his.client, his.fixmedins_code, his.paasid, his.secret)
    sign_no = await client.sign_in()
    assert ok(await client.call("9002", {"signOut": {"sign_no": sign_no, "opter_no": "0001"}}))
    answer = await client.call("1312", {"data": {"page_num": 1, "page_size": 1}})
    assert refused(answer) == f"sign_no {sign_no} was signed out; sign in with 9001"


async def test_concurrent_repeats_of_one_settlement_settle_once(world: World) -> None:
    his = world.his
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    mdtrt_id = await admit(his, OUTPATIENT, credential, "ZY-E2E-RACE")
    ok(
        await his.call(
            "2301", {"feedetail": [fee("1", mdtrt_id, OUTPATIENT, "XD0000", "2", "5.00", "10.00")]}
        )
    )
    settle = his.envelope("2304", settle_input(OUTPATIENT, credential, mdtrt_id, "10.00"))
    replies = await asyncio.gather(*(his.post(settle) for _ in range(5)))
    ids = {ok(reply.json())["setlinfo"]["setl_id"] for reply in replies}
    assert len(ids) == 1
    assert len({reply.content for reply in replies}) == 1


async def test_queries_discharge_and_fee_cancellation(world: World) -> None:
    his = world.his
    found = ok(
        await his.call(
            "1201", {"medinsinfo": {"fixmedins_type": "1", "fixmedins_code": OTHER_HOSPITAL}}
        )
    )
    assert found["medinsinfo"] == [
        {
            "fixmedins_code": OTHER_HOSPITAL,
            "fixmedins_name": "北京市中医医院",
            "uscc": "",
            "fixmedins_type": "1",
            "hosp_lv": "2",
        }
    ]
    item = ok(
        await his.call("1312", {"data": {"hilist_code": "XS0000", "page_num": 1, "page_size": 1}})
    )
    assert (item["recordCounts"], item["data"][0]["pric_uplmt_amt"]) == (1, Decimal("60.00"))
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    mdtrt_id = await admit(his, OUTPATIENT, credential, "ZY-E2E-DSCG")
    lines = [
        fee("1", mdtrt_id, OUTPATIENT, "XD0000", "1", "10.00", "10.00"),
        fee("2", mdtrt_id, OUTPATIENT, "XD0002", "1", "20.00", "20.00"),
    ]
    ok(await his.call("2301", {"feedetail": lines}))
    cancel_line = {"data": [{"feedetl_sn": "2", "mdtrt_id": mdtrt_id, "psn_no": OUTPATIENT}]}
    assert ok(await his.call("2302", cancel_line)) == {}
    assert "[FEE_LINE_NOT_FOUND]" in refused(await his.call("2302", cancel_line))
    discharge = {
        "dscginfo": {
            "mdtrt_id": mdtrt_id,
            "psn_no": OUTPATIENT,
            "insutype": "310",
            "endtime": now_text(),
            "dscg_dept_codg": "A03",
            "dscg_dept_name": "内科",
            "dscg_way": "1",
        }
    }
    assert ok(await his.call("2402", discharge)) == {}
    assert ok(await his.call("2405", {"data": {"mdtrt_id": mdtrt_id, "psn_no": OUTPATIENT}})) == {}
    settle = settle_input(OUTPATIENT, credential, mdtrt_id, "20.00")
    assert "[MEDFEE_SUMAMT_MISMATCH]" in refused(await his.call("2304", settle))
    settle["data"]["medfee_sumamt"] = Decimal("10.00")
    ok(await his.call("2304", settle))
    year = str(today_in_china().year)
    cumulated = ok(await his.call("5206", {"data": {"psn_no": OUTPATIENT}}))["cuminfo"]
    assert {"insu_admdvs": "131000", "year": year, "cum_type_code": "burden"} == {
        key: cumulated[0][key] for key in ("insu_admdvs", "year", "cum_type_code")
    }
    assert any(row["cum_type_code"].startswith("fund_paid:131000-310-") for row in cumulated)


async def test_settlements_reach_the_ledger_and_reconcile(world: World) -> None:
    other = world.other
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    mdtrt_id = await admit(other, OUTPATIENT, credential, "ZY-E2E-RECON")
    line = fee("1", mdtrt_id, OUTPATIENT, "XD0000", "4", "250.00", "1000.00")
    ok(await other.call("2301", {"feedetail": [line]}))
    settle = settle_input(OUTPATIENT, credential, mdtrt_id, "1000.00")
    settled = ok(await other.call("2304", settle))["setlinfo"]
    today = today_in_china().isoformat()
    totals = {
        "insutype": "310",
        "clr_type": "21",
        "setl_optins": "110100",
        "stmt_begndate": today,
        "stmt_enddate": today,
        "medfee_sumamt": Decimal("1000.00"),
        "fund_pay_sumamt": settled["fund_pay_sumamt"],
        "acct_pay": settled["acct_pay"],
        "fixmedins_setl_cnt": 1,
        "refd_setl_flag": "0",
    }
    # The outbox delivers to clearing in the background: reconcile until the ledger has it.
    for _ in range(50):
        answer = ok(await other.call("3201", {"data": totals}))["stmtinfo"]
        if answer["stmt_rslt"] == "0":
            break
        await asyncio.sleep(0.2)
    assert answer == {"setl_optins": "110100", "stmt_rslt": "0", "stmt_rslt_dscr": ""}
    totals["medfee_sumamt"] = Decimal("1000.01")
    mismatch = ok(await other.call("3201", {"data": totals}))["stmtinfo"]
    assert mismatch["stmt_rslt"] == "3"
    assert mismatch["stmt_rslt_dscr"] == "medfee_sumamt: platform 1000.00, institution 1000.01"
    detail = {
        "data": {"setl_optins": "110100", "stmt_begndate": today, "stmt_enddate": today},
        "detail": [
            {
                "setl_id": settled["setl_id"],
                "mdtrt_id": mdtrt_id,
                "psn_no": OUTPATIENT,
                "medfee_sumamt": Decimal("1000.00"),
                "fund_pay_sumamt": settled["fund_pay_sumamt"],
                "acct_pay": settled["acct_pay"],
                "refd_setl_flag": "0",
            },
            {
                "setl_id": "S-NOT-ON-THE-PLATFORM",
                "medfee_sumamt": Decimal("5.00"),
                "fund_pay_sumamt": Decimal("0.00"),
                "acct_pay": Decimal("0.00"),
            },
        ],
    }
    compared = ok(await other.call("3202", detail))
    assert compared["stmtinfo"] == {"stmt_rslt": "3", "balanced_count": 1, "difference_count": 1}
    assert [(row["setl_id"], row["stmt_rslt"], row["memo"]) for row in compared["detail"]] == [
        ("S-NOT-ON-THE-PLATFORM", "2", "not settled on the platform")
    ]


async def wait_for_ledger(his: His, setlinfo: dict[str, Any]) -> None:
    """Reconcile the settlement (3202) until clearing's ledger has it: the outbox delivers it in
    the background."""
    today = today_in_china().isoformat()
    detail = {
        "data": {"setl_optins": "110100", "stmt_begndate": today, "stmt_enddate": today},
        "detail": [
            {
                "setl_id": setlinfo["setl_id"],
                "medfee_sumamt": setlinfo["medfee_sumamt"],
                "fund_pay_sumamt": setlinfo["fund_pay_sumamt"],
                "acct_pay": setlinfo["acct_pay"],
            }
        ],
    }
    for _ in range(150):
        compared = ok(await his.call("3202", detail))
        if compared["stmtinfo"]["balanced_count"] == 1:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"{setlinfo['setl_id']} never reached the ledger: {compared}")


async def settle_one(his: His, ipt_no: str, total: str) -> dict[str, Any]:
    """Admit OUTPATIENT (card), upload one line of `total` yuan and settle; the setlinfo."""
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    mdtrt_id = await admit(his, OUTPATIENT, credential, ipt_no)
    line = fee("1", mdtrt_id, OUTPATIENT, "XD0000", "1", total, total)
    ok(await his.call("2301", {"feedetail": [line]}))
    settle = settle_input(OUTPATIENT, credential, mdtrt_id, total)
    setlinfo: dict[str, Any] = ok(await his.call("2304", settle))["setlinfo"]
    return setlinfo


def medsettle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.common", *args],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_the_month_is_cleared_from_the_command_line_and_exported(
    world: World, tmp_path: Path
) -> None:
    period = f"{today_in_china():%Y-%m}"
    where = ("--endpoints", str(world.mesh.endpoints_path))
    await wait_for_ledger(world.his, await settle_one(world.his, "ZY-E2E-CLI", "321.00"))
    refused_run = await asyncio.to_thread(medsettle, "clearing", "run", "--period", period, *where)
    assert refused_run.returncode == 1
    assert "treatment provinces 110000 have not confirmed" in refused_run.stderr
    confirmed = await asyncio.to_thread(
        medsettle,
        "clearing",
        "confirm-treatment",
        "--period",
        period,
        "--province",
        "110000",
        *where,
    )
    assert confirmed.stdout.strip() == f"{period}: pending -", confirmed.stderr
    exported = tmp_path / "statements.csv"
    run = await asyncio.to_thread(
        medsettle, "clearing", "run", "--period", period, "--csv", str(exported), *where
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"period {period}: cleared")
    status = await asyncio.to_thread(medsettle, "clearing", "status", "--period", period, *where)
    assert status.stdout == run.stdout  # the same statements, hash and transfers
    with exported.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert {row["treatment_prov"] for row in rows} == {"110000"}
    assert {row["insured_prov"] for row in rows} >= {"130000"}
    for row in rows:
        parts = ("hifp_pay", "critical_illness_pay", "maf_pay", "acct_pay")
        assert sum(Decimal(row[name]) for name in parts) == Decimal(row["clearing_amount"])
    # The statements match an independent sum over clearing's own database, to the fen.
    with sqlite3.connect(world.mesh.config.data_dir / "clearing.sqlite") as database:
        (ledger_fen,) = database.execute(
            "SELECT SUM(hifp_pay_fen + critical_pay_fen + maf_pay_fen + acct_pay_fen) "
            "FROM ledger_entries WHERE cleared_period = ?",
            (period,),
        ).fetchone()
    assert sum(Decimal(row["clearing_amount"]) for row in rows) * 100 == ledger_fen


async def test_settlements_made_while_clearing_is_down_reach_the_ledger_afterwards(
    world: World,
) -> None:
    clearing = world.mesh.processes["clearing"]
    clearing.send_signal(signal.SIGSTOP)
    try:
        settled = await settle_one(world.other, "ZY-E2E-DOWN", "123.45")
        await asyncio.sleep(2)  # the relay tries, times out and backs off
    finally:
        clearing.send_signal(signal.SIGCONT)
    await wait_for_ledger(world.other, settled)


async def test_every_process_exposes_its_metrics(world: World) -> None:
    await settle_one(world.his, "ZY-E2E-METRICS", "50.00")
    gateway = (await world.his.client.get("/metrics")).text
    assert 'medsettle_hospital_requests_total{infcode="0",infno="2304"}' in gateway
    assert 'medsettle_hospital_duration_seconds_bucket{infno="2304",le="0.5"}' in gateway
    hit_ratio = next(
        line for line in gateway.splitlines() if line.startswith("medsettle_recent_person_hit")
    )
    assert 0 <= float(hit_ratio.rpartition(" ")[2]) <= 1
    settlement = await _service_metrics(world, "settlement")
    assert 'medsettle_settlements_total{event="settled",med_type="21"}' in settlement
    assert 'medsettle_settled_fen_total{event="settled",fund="hifp_pay"}' in settlement
    assert "medsettle_outbox_backlog " in settlement
    assert 'method="SettlementService/SettleVisit",process="settlement"' in settlement
    assert "medsettle_cache_hit_ratio " in settlement
    assert "medsettle_filing_ends_current 1.0" in settlement  # following filing's stream


# --- REST for persons and the public ---


async def _settled_visit(his: His, voucher: str, visit_no: str) -> str:
    """Admit INPATIENT, upload one line and settle; the setl_id."""
    credential = {"mdtrt_cert_type": "01", "mdtrt_cert_no": voucher}
    mdtrt_id = await admit(his, INPATIENT, credential, visit_no)
    line = fee("1", mdtrt_id, INPATIENT, "XD0000", "4", "300.00", "1200.00")
    ok(await his.call("2301", {"feedetail": [line]}))
    settle = settle_input(INPATIENT, credential, mdtrt_id, "1200.00", acct_used_flag="1")
    setl_id: str = ok(await his.call("2304", settle))["setlinfo"]["setl_id"]
    return setl_id


async def test_the_public_finds_institutions_open_for_inpatients(world: World) -> None:
    client = world.his.client
    reply = await client.get("/v1/institutions", params={"admdvs": "110100", "med_type": "21"})
    assert reply.status_code == 200
    assert [(i["fixmedins_code"], i["level"]) for i in reply.json()["institutions"]] == [
        ("H11010000001", 3),
        ("H11010000002", 2),
    ]
    bad = await client.get("/v1/institutions", params={"admdvs": "beijing"})
    assert bad.status_code == 400
    assert bad.json()["error"]["reason"] == "INVALID_REQUEST"


async def _new_person_with_voucher(world: World, psn_no: str, serial: int) -> str:
    """Register a 南京 employee without a filing; their e-voucher token."""
    someone = person(psn_no, area="320100", serial=serial, psn_type="employed")
    async with grpc.aio.insecure_channel(world.endpoints["identity"]) as channel:
        identity = identity_service_pb2_grpc.IdentityServiceStub(channel)

        async def upload() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
            yield identity_service_pb2.UpsertPersonsRequest(persons=[someone], last=True)

        await identity.UpsertPersons(upload(), metadata=national())
        voucher = await identity.IssueVoucher(
            identity_service_pb2.IssueVoucherRequest(
                certno=someone.certno, psn_name=someone.psn_name
            ),
            metadata=national(),
        )
    return voucher.token


async def test_a_person_files_for_themselves_with_the_e_voucher(world: World) -> None:
    client = world.his.client
    token = await _new_person_with_voucher(world, "P320100000110", 110)
    bearer = {"Authorization": f"Bearer {token}", "Idempotency-Key": "app-1"}
    body = {"category": "other_temporary", "dest_admdvs": "110000"}
    created = await client.post("/v1/filings", json=body, headers=bearer)
    assert created.status_code == 201, created.text
    filing = created.json()
    assert (filing["category"], filing["insuplc_admdvs"], filing["dest_admdvs"]) == (
        "other_temporary",
        "320100",
        "110000",
    )
    assert (filing["status"], filing["begin_date"]) == ("active", today_in_china().isoformat())
    again = await client.post("/v1/filings", json=body, headers=bearer)
    assert again.json()["filing_id"] == filing["filing_id"]
    no_voucher = await client.post("/v1/filings", json=body, headers={"Idempotency-Key": "k"})
    assert (no_voucher.status_code, no_voucher.json()["error"]["reason"]) == (
        401,
        "VOUCHER_REQUIRED",
    )
    forged = {"Authorization": "Bearer forged-token", "Idempotency-Key": "k"}
    refused_voucher = await client.post("/v1/filings", json=body, headers=forged)
    assert (refused_voucher.status_code, refused_voucher.json()["error"]["reason"]) == (
        401,
        "VOUCHER_INVALID",
    )
    # A long-term filing cannot be replaced inside its lock period: a 409 with the reason.
    locked = {"Authorization": f"Bearer {world.voucher}", "Idempotency-Key": "app-2"}
    relocate = {"category": "long_term_resident", "dest_admdvs": "310000"}
    answer = await client.post("/v1/filings", json=relocate, headers=locked)
    assert (answer.status_code, answer.json()["error"]["reason"]) == (409, "FILING_LOCKED")


async def test_a_person_reads_only_their_own_settlement_notice(world: World) -> None:
    client = world.his.client
    setl_id = await _settled_visit(world.his, world.voucher, "ZY-E2E-NOTICE")
    bearer = {"Authorization": f"Bearer {world.voucher}"}
    notice = await client.get(f"/v1/settlements/{setl_id}/notice", headers=bearer)
    assert notice.status_code == 200, notice.text
    got = notice.json()
    assert (got["setl_id"], got["medfee_sumamt"], got["status"]) == (setl_id, "1200.00", "settled")
    paid = [Decimal(got[name]) for name in ("fund_pay_sumamt", "acct_pay", "psn_cash_pay")]
    assert sum(paid) == Decimal("1200.00")
    assert Decimal(got["acct_pay"]) > 0  # acct_used_flag 1 with a 500.00 balance
    stranger = await _new_person_with_voucher(world, "P320100000111", 111)
    other = await client.get(
        f"/v1/settlements/{setl_id}/notice", headers={"Authorization": f"Bearer {stranger}"}
    )
    assert (other.status_code, other.json()["error"]["reason"]) == (404, "SETTLEMENT_NOT_FOUND")


async def test_the_openapi_document_lists_every_route(world: World) -> None:
    document = (await world.his.client.get("/openapi.json")).json()
    assert {
        "/fsi/api/rsfComIfsService/callService",
        "/v1/filings",
        "/v1/institutions",
        "/v1/settlements/{setl_id}/notice",
        "/healthz",
    } <= set(document["paths"])


# --- fuzzing: whatever arrives, the answer is a national envelope or a JSON error, never a 5xx ---

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
)
_JSON = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=16,
)
_INFNOS = st.sampled_from(
    [*SERVICE_TRANSACTIONS, *NOT_YET_AVAILABLE, "9001", "9002", "2601", "0000", ""]
)
_NODES = ("data", "feedetail", "mdtrtinfo", "dscginfo", "diseinfo", "signIn", "signOut")
_FIELD_NAMES = st.sampled_from(
    [
        "psn_no",
        "mdtrt_id",
        "setl_id",
        "mdtrt_cert_type",
        "mdtrt_cert_no",
        "card_sn",
        "insutype",
        "med_type",
        "begntime",
        "endtime",
        "ipt_no",
        "ipt_otp_no",
        "feedetl_sn",
        "cnt",
        "pric",
        "det_item_fee_sumamt",
        "medfee_sumamt",
        "omsgid",
        "oinfno",
        "acct_used_flag",
        "psn_setlway",
        "exp_content",
        "fee_ocur_time",
        "med_list_codg",
        "page_num",
        "page_size",
    ]
)


@st.composite
def _hospital_bodies(draw: st.DrawFn, his: His) -> bytes:
    kind = draw(st.sampled_from(["envelope", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return simplejson.dumps(draw(_JSON)).encode()
    node_values = st.dictionaries(_FIELD_NAMES, _JSON, max_size=8)
    payload = {
        name: draw(st.one_of(node_values, st.lists(node_values, max_size=3), _SCALARS))
        for name in draw(st.lists(st.sampled_from(_NODES), max_size=3, unique=True))
    }
    body: dict[str, Any] = his.envelope(draw(_INFNOS), payload)
    if draw(st.booleans()):
        body[draw(st.sampled_from(sorted(body)))] = draw(_JSON)
    return simplejson.dumps(body).encode()


def _fuzz_hospital_interface(his: His, base_url: str) -> None:
    with httpx.Client(base_url=base_url, timeout=30) as client:

        @settings(max_examples=300, deadline=None, derandomize=True)
        @given(body=_hospital_bodies(his))
        def post(body: bytes) -> None:
            reply = client.post(HOSPITAL_PATH, content=body, headers=his.headers())
            assert reply.status_code == 200, reply.text
            answer = reply.json()
            assert answer["infcode"] in (0, -1)
            assert "Traceback" not in answer["err_msg"]

        post()


def _fuzz_rest_routes(base_url: str) -> None:
    """schemathesis generates requests for every REST operation from /openapi.json."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the document itself is valid
        operation = result.ok()
        if operation.path == HOSPITAL_PATH:
            continue  # its body is the national envelope, fuzzed above

        @settings(max_examples=60, deadline=None, derandomize=True)
        @given(case=operation.as_strategy())
        def call(case: Any) -> None:
            reply = case.call(base_url=base_url, timeout=30)
            assert reply.status_code < 500, (case.path, reply.text)

        call()


async def test_fuzzed_requests_never_get_a_server_error(world: World) -> None:
    await asyncio.to_thread(_fuzz_hospital_interface, world.his, world.endpoints["gateway"])
    await asyncio.to_thread(_fuzz_rest_routes, world.endpoints["gateway"])


async def test_the_trace_command_finds_a_settlement_by_its_inf_refmsgid_and_msgid(
    world: World,
) -> None:
    where = ("--endpoints", str(world.mesh.endpoints_path))
    credential = {"mdtrt_cert_type": "03", "mdtrt_cert_no": CARD, "card_sn": f"SN{CARD}"}
    mdtrt_id = await admit(world.his, OUTPATIENT, credential, "MZ-E2E-TRACE")
    line = fee("1", mdtrt_id, OUTPATIENT, "XD0000", "1", "12.00", "12.00")
    ok(await world.his.call("2301", {"feedetail": [line]}))
    envelope = world.his.envelope("2304", settle_input(OUTPATIENT, credential, mdtrt_id, "12.00"))
    reply = await world.his.post(envelope)
    answer = reply.json()
    assert answer["infcode"] == 0, answer["err_msg"]
    by_answer = await asyncio.to_thread(medsettle, "trace", answer["inf_refmsgid"], *where)
    by_msgid = await asyncio.to_thread(medsettle, "trace", envelope["msgid"], *where)
    assert by_answer.returncode == 0, by_answer.stderr
    assert by_answer.stdout == by_msgid.stdout
    found = json.loads(by_answer.stdout)
    assert found["trace_id"] == reply.headers["x-trace-id"]
    assert (found["infno"], found["state"], found["msgid"]) == ("2304", "DONE", envelope["msgid"])
    assert found["reference"] == answer["output"]["setlinfo"]["setl_id"]
    unknown = await asyncio.to_thread(medsettle, "trace", "1" * 30, *where)
    assert unknown.returncode == 1
    assert f"no message answered or sent as {'1' * 30}" in unknown.stderr
