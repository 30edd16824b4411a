"""The national interface's codes and output nodes, built from the services' messages.

Pure: proto messages in, dicts of national field names out. Amounts leave as Decimal yuan with
two decimals (ratios with four), codes as strings, times as `yyyy-MM-dd HH:mm:ss` Beijing time.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from medsettle.identity.v1 import identity_pb2, identity_service_pb2
from medsettle.settlement.v1 import settlement_pb2

from gateway.envelope import yuan
from services.common.values import SHANGHAI, optional_date

CREDENTIAL_TYPES = {
    "01": identity_service_pb2.CREDENTIAL_TYPE_E_VOUCHER,
    "02": identity_service_pb2.CREDENTIAL_TYPE_ID_NUMBER,
    "03": identity_service_pb2.CREDENTIAL_TYPE_SOCIAL_SECURITY_CARD,
}
INSUTYPES = ("310", "390")
# Person categories (人员类别): the platform's three kinds as the national codes.
PSN_TYPE_CODES = {"employed": "1101", "retired": "1201", "resident": "1501"}
# Assistance identities (人员身份类别) as the national codes and names.
IDET_CODES = {"low_income": ("02", "困难人员"), "extreme_poverty": ("03", "精准扶贫对象")}
INSU_STATUS_CODES = {
    identity_pb2.INSURANCE_STATUS_ACTIVE: "1",
    identity_pb2.INSURANCE_STATUS_SUSPENDED: "2",
    identity_pb2.INSURANCE_STATUS_TERMINATED: "4",
}
ITEM_CLASS_CODES = {1: "01", 2: "02", 3: "03"}
# Fee category (med_chrgitm_type) by catalogue category: the catalogue keeps no finer category,
# so drugs are reported as 09 西药费, herbal pieces 10, services 05 治疗费, consumables 08.
FEE_CATEGORY_BY_LIST_TYPE = {
    "101": "09",
    "102": "10",
    "103": "09",
    "104": "09",
    "201": "05",
    "301": "08",
}
RATIO = Decimal("0.0001")
INPATIENT = "21"


def local_time(moment: Timestamp) -> str:
    """A timestamp as a DT field."""
    return f"{moment.ToDatetime(dt.UTC).astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S}"


def ratio(text: str) -> Decimal:
    """An N5,4 ratio."""
    return Decimal(text or "0").quantize(RATIO)


def age_on(person: identity_pb2.Person, day: dt.date) -> Decimal:
    """Age in completed years on a day (N4,1)."""
    born = optional_date(person, "brdy")
    if born is None:
        return Decimal("0.0")
    years = day.year - born.year - ((day.month, day.day) < (born.month, born.day))
    return Decimal(years).quantize(Decimal("0.1"))


def base_info(person: identity_pb2.Person, today: dt.date) -> dict[str, Any]:
    """The person fields shared by 1101 baseinfo and settlement setlinfo."""
    born = optional_date(person, "brdy")
    return {
        "psn_no": person.psn_no,
        "psn_cert_type": person.psn_cert_type,
        "certno": person.certno,
        "psn_name": person.psn_name,
        "gend": person.gend,
        "naty": person.naty,
        "brdy": born.isoformat() if born else "",
        "age": age_on(person, today),
    }


def person_output(person: identity_pb2.Person, today: dt.date) -> dict[str, Any]:
    """1101 output: baseinfo, insuinfo (one row per insurance) and idetinfo."""
    identities = sorted({kind for record in person.insurances for kind in record.idet_types})
    return {
        "baseinfo": {**base_info(person, today), "exp_content": ""},
        "insuinfo": [
            {
                "balc": yuan(record.balc.amount_fen),
                "insutype": record.insutype,
                "psn_type": PSN_TYPE_CODES.get(record.psn_type, record.psn_type),
                "psn_insu_stas": INSU_STATUS_CODES.get(record.status, "0"),
                "psn_insu_date": "",
                "paus_insu_date": "",
                "cvlserv_flag": "0",
                "insuplc_admdvs": record.insuplc_admdvs,
                "emp_name": "",
            }
            for record in person.insurances
        ],
        "idetinfo": [
            {
                "psn_idet_type": IDET_CODES.get(kind, ("99", kind))[0],
                "psn_type_lv": "",
                "memo": IDET_CODES.get(kind, ("99", kind))[1],
                "begntime": "",
                "endtime": "",
            }
            for kind in identities
        ],
    }


def fee_result(line: settlement_pb2.ClassifiedFee, cnt: str, pric: str) -> dict[str, Any]:
    """One row of the 2301 / 2204 output."""
    return {
        "feedetl_sn": line.feedetl_sn,
        "det_item_fee_sumamt": yuan(line.amount.amount_fen),
        "cnt": Decimal(cnt),
        "pric": Decimal(pric),
        "pric_uplmt_amt": yuan(line.price_cap.amount_fen),
        "selfpay_prop": ratio(line.selfpay_prop),
        "fulamt_ownpay_amt": yuan(line.fulamt_ownpay_amt.amount_fen),
        "overlmt_amt": yuan(line.overlmt_amt.amount_fen),
        "preselfpay_amt": yuan(line.preselfpay_amt.amount_fen),
        "inscp_scp_amt": yuan(line.inscp_scp_amt.amount_fen),
        "chrgitm_lv": line.chrgitm_lv,
        "med_chrgitm_type": FEE_CATEGORY_BY_LIST_TYPE.get(line.list_type, "14"),
        "bas_medn_flag": "0",
        "hi_nego_drug_flag": "0",
        "chld_medc_flag": "0",
        "list_sp_item_flag": "0",
        "lmt_used_flag": "0",
        "drt_reim_flag": "0",
        "memo": line.memo,
    }


_SETTLEMENT_AMOUNTS = (
    "medfee_sumamt",
    "fulamt_ownpay_amt",
    "overlmt_selfpay",
    "preselfpay_amt",
    "inscp_scp_amt",
    "act_pay_dedc",
    "hifp_pay",
)
_FUND_AMOUNTS = ("hifmi_pay", "hifob_pay", "maf_pay")


def settlement_output(
    settlement: settlement_pb2.Settlement,
    person: identity_pb2.Person,
    *,
    mdtrt_cert_type: str,
    medins_setl_id: str,
    with_setl_id: bool,
) -> dict[str, Any]:
    """setlinfo + setldetail of 2206/2207/2303/2304 (§2.6); fund_pay_sumamt excludes acct_pay."""
    when = local_time(settlement.setl_time)
    info: dict[str, Any] = {"mdtrt_id": settlement.mdtrt_id}
    if with_setl_id:
        info["setl_id"] = settlement.setl_id
    info.update(base_info(person, dt.date.fromisoformat(when[:10])))
    info.update(
        {
            "insutype": settlement.insutype,
            "psn_type": PSN_TYPE_CODES.get(settlement.psn_type, settlement.psn_type),
            "cvlserv_flag": "0",
            "setl_time": when,
            "mdtrt_cert_type": mdtrt_cert_type,
            "med_type": settlement.med_type,
        }
    )
    for name in _SETTLEMENT_AMOUNTS:
        info[name] = yuan(getattr(settlement, name).amount_fen)
    info["pool_prop_selfpay"] = ratio(settlement.pool_prop_selfpay)
    info["cvlserv_pay"] = yuan(0)
    info["hifes_pay"] = yuan(0)
    for name in _FUND_AMOUNTS:
        info[name] = yuan(getattr(settlement, name).amount_fen)
    info.update(
        {
            "oth_pay": yuan(0),
            "fund_pay_sumamt": yuan(settlement.fund_pay_sumamt.amount_fen),
            "psn_part_amt": yuan(settlement.psn_part_amt.amount_fen),
            "acct_pay": yuan(settlement.acct_pay.amount_fen),
            "psn_cash_pay": yuan(settlement.psn_cash_pay.amount_fen),
            "hosp_part_amt": yuan(0),
            "balc": yuan(settlement.balc.amount_fen),
            "acct_mulaid_pay": yuan(0),
            "medins_setl_id": medins_setl_id,
            "clr_optins": settlement.treatment_admdvs,
            "clr_way": "1",
            "clr_type": "21" if settlement.med_type == INPATIENT else "11",
        }
    )
    return {"setlinfo": info, "setldetail": fund_details(settlement, sign=1)}


def fund_details(settlement: settlement_pb2.Settlement, *, sign: int) -> list[dict[str, Any]]:
    """setldetail: one row per fund that paid."""
    return [
        {
            "fund_pay_type": payment.fund_pay_type,
            "inscp_scp_amt": yuan(sign * payment.inscp_scp_amt.amount_fen),
            "crt_payb_lmt_amt": yuan(0),
            "fund_payamt": yuan(sign * payment.fund_payamt.amount_fen),
            "fund_pay_type_name": payment.fund_pay_type_name,
            "setl_proc_info": "",
        }
        for payment in settlement.fund_payments
    ]


def cancellation_output(
    settlement: settlement_pb2.Settlement, medins_setl_id: str, *, extra_funds: bool
) -> dict[str, Any]:
    """2208 / 2305 output: the reversing record, amounts negated; balc is the balance after."""
    info: dict[str, Any] = {
        "mdtrt_id": settlement.mdtrt_id,
        "setl_id": settlement.setl_id,
        "clr_optins": settlement.treatment_admdvs,
        "setl_time": local_time(settlement.cancel_time),
    }
    for name in ("medfee_sumamt", "fulamt_ownpay_amt", "overlmt_selfpay", "preselfpay_amt"):
        info[name] = yuan(-getattr(settlement, name).amount_fen)
    info["inscp_scp_amt"] = yuan(-settlement.inscp_scp_amt.amount_fen)
    info["act_pay_dedc"] = yuan(-settlement.act_pay_dedc.amount_fen)
    info["hifp_pay"] = yuan(-settlement.hifp_pay.amount_fen)
    info["pool_prop_selfpay"] = ratio(settlement.pool_prop_selfpay)
    info["cvlserv_pay"] = yuan(0)
    info["hifes_pay"] = yuan(0)
    for name in _FUND_AMOUNTS:
        info[name] = yuan(-getattr(settlement, name).amount_fen)
    info["oth_pay"] = yuan(0)
    if extra_funds:
        info["hifdm_pay"] = yuan(0)
    info.update(
        {
            "fund_pay_sumamt": yuan(-settlement.fund_pay_sumamt.amount_fen),
            "psn_part_amt": yuan(-settlement.psn_part_amt.amount_fen),
            "acct_pay": yuan(-settlement.acct_pay.amount_fen),
            "psn_cash_pay": yuan(-settlement.psn_cash_pay.amount_fen),
            "hosp_part_amt": yuan(0),
            "balc": yuan(settlement.balc.amount_fen),
            "acct_mulaid_pay": yuan(0),
            "medins_setl_id": medins_setl_id,
        }
    )
    return {"setlinfo": info, "setldetail": fund_details(settlement, sign=-1)}
