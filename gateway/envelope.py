"""The national interface envelope (nhsa-interface.md §1.2 to 1.4): checks, ids and money.

Pure: no HTTP and no gRPC. Amounts cross this edge as yuan with two decimals and become integer
fen inside; they leave as Decimal yuan (quantized to the fen) that the JSON writer prints as
numbers with exactly two decimals.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from services.common.values import SHANGHAI

FEN = Decimal("0.01")
# Field -> (required, most characters), national types of the public input (§1.2).
ENVELOPE_FIELDS: dict[str, tuple[bool, int]] = {
    "infno": (True, 6),
    "msgid": (True, 30),
    "mdtrtarea_admvs": (True, 6),
    "insuplc_admdvs": (False, 6),
    "recer_sys_code": (True, 10),
    "dev_no": (False, 100),
    "dev_safe_info": (False, 2000),
    "cainfo": (False, 1024),
    "signtype": (False, 10),
    "infver": (True, 6),
    "opter_type": (True, 3),
    "opter": (True, 30),
    "opter_name": (True, 50),
    "inf_time": (True, 19),
    "fixmedins_code": (True, 30),
    "fixmedins_name": (True, 200),
    "sign_no": (False, 30),
}
_INF_TIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# N16,2: sixteen digits of which two decimals.
MAX_AMOUNT_FEN = 10**16 - 1


class EnvelopeError(ValueError):
    """The request cannot be processed; the message becomes `err_msg` (infcode -1)."""


@dataclass(frozen=True)
class Envelope:
    """A checked request envelope."""

    infno: str
    msgid: str
    fixmedins_code: str
    mdtrtarea_admvs: str
    insuplc_admdvs: str
    sign_no: str
    inf_time: str
    input: dict[str, Any]


def parse_envelope(body: Any) -> Envelope:
    """Check the public input; every refusal names the field."""
    if not isinstance(body, dict):
        raise EnvelopeError("the request body must be a JSON object (the national envelope)")
    unknown = sorted(set(body) - set(ENVELOPE_FIELDS) - {"input", "serv_code", "serv_sign"})
    if unknown:
        raise EnvelopeError(f"unknown envelope field {unknown[0]}")
    values: dict[str, str] = {}
    for name, (required, limit) in ENVELOPE_FIELDS.items():
        value = body.get(name, "")
        if value is None:
            value = ""
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise EnvelopeError(f"{name} must be a string")
        if required and not value:
            raise EnvelopeError(f"{name} is required")
        if len(value) > limit:
            raise EnvelopeError(f"{name} is longer than {limit} characters")
        values[name] = value
    if not _INF_TIME.fullmatch(values["inf_time"]):
        raise EnvelopeError("inf_time must be yyyy-MM-dd HH:mm:ss")
    if not values["msgid"].startswith(values["fixmedins_code"]):
        raise EnvelopeError("msgid must start with fixmedins_code")
    payload = body.get("input")
    if not isinstance(payload, dict):
        raise EnvelopeError("input must be a JSON object")
    return Envelope(
        infno=values["infno"],
        msgid=values["msgid"],
        fixmedins_code=values["fixmedins_code"],
        mdtrtarea_admvs=values["mdtrtarea_admvs"],
        insuplc_admdvs=values["insuplc_admdvs"],
        sign_no=values["sign_no"],
        inf_time=values["inf_time"],
        input=payload,
    )


def inf_refmsgid(area: str, now: dt.datetime) -> str:
    """The receiver message id: area (6) + time (14) + serial (10) = 30 characters."""
    return f"{area}{now.astimezone(SHANGHAI):%Y%m%d%H%M%S}{secrets.randbelow(10**10):010d}"


def stamp(moment: dt.datetime) -> str:
    """refmsg_time / respond_time: yyyyMMddHHmmssSSS in Asia/Shanghai."""
    local = moment.astimezone(SHANGHAI)
    return f"{local:%Y%m%d%H%M%S}{local.microsecond // 1000:03d}"


def fen_from_yuan(value: Any, field: str) -> int:
    """A yuan amount (JSON number or string, at most two decimals) as fen."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise EnvelopeError(f"{field} must be an amount in yuan")
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise EnvelopeError(f"{field} must be an amount in yuan") from None
    if not amount.is_finite() or amount != amount.quantize(FEN):
        raise EnvelopeError(f"{field} has more than two decimals")
    fen = int(amount * 100)
    if abs(fen) > MAX_AMOUNT_FEN:
        raise EnvelopeError(f"{field} is out of range (N16,2)")
    return fen


def yuan(fen: int) -> Decimal:
    """Fen as yuan with exactly two decimals (printed as a JSON number)."""
    return (Decimal(fen) / 100).quantize(FEN)


def response(
    refmsgid: str,
    received: dt.datetime,
    responded: dt.datetime,
    *,
    output: dict[str, Any] | None = None,
    err_msg: str = "",
) -> dict[str, Any]:
    """The public output: infcode 0 with output, or -1 with err_msg."""
    return {
        "infcode": -1 if err_msg else 0,
        "inf_refmsgid": refmsgid,
        "refmsg_time": stamp(received),
        "respond_time": stamp(responded),
        "err_msg": err_msg[:200],
        "output": output if output is not None and not err_msg else {},
    }
