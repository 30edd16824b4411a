"""Queries: 1101 person, 1201 institutions, 1312 catalogue, 5206 annual accumulations."""

from __future__ import annotations

import math
from typing import Any

from medsettle.catalogue.v1 import catalogue_pb2, catalogue_service_pb2
from medsettle.identity.v1 import identity_service_pb2
from medsettle.settlement.v1 import settlement_service_pb2

from gateway.envelope import EnvelopeError, yuan
from gateway.national import ITEM_CLASS_CODES, person_output, ratio
from gateway.transactions.base import Call, Outcome, credential
from gateway.upstreams import AS_GATEWAY, ask
from services.common.values import optional_date, province_of, today_in_china

_MAX_PAGE = 100
_STREAM_PAGE = 500


async def person_info(call: Call) -> Outcome:
    """1101: who the credential belongs to and their insurance."""
    data = call.input.child("data")
    kind, number, card_sn = credential(data)
    data.text("psn_cert_type", 6, required=False)
    data.text("certno", 50, required=False)
    data.text("psn_name", 50, required=False)
    request = identity_service_pb2.VerifyCredentialRequest(
        credential_type=kind,  # type: ignore[arg-type]
        credential_no=number,
        card_sn=card_sn,
    )
    reply = await ask(
        call.upstreams.identity.VerifyCredential(request, metadata=AS_GATEWAY), "identity"
    )
    call.persons.remember(reply.person)
    return Outcome(person_output(reply.person, today_in_china()), reference=reply.person.psn_no)


def _institution_row(institution: catalogue_pb2.Institution) -> dict[str, Any]:
    return {
        "fixmedins_code": institution.fixmedins_code,
        "fixmedins_name": institution.fixmedins_name,
        "uscc": "",
        "fixmedins_type": "1",
        "hosp_lv": str(institution.level),
    }


async def institutions(call: Call) -> Outcome:
    """1201: designated medical institutions by code or name (fixmedins_type 1 only)."""
    node = call.input.child("medinsinfo")
    if node.code("fixmedins_type", ("1", "2", "3", "4", "5")) != "1":
        return Outcome({"medinsinfo": []})
    code = node.text("fixmedins_code", 30, required=False)
    catalogue = call.upstreams.catalogue
    if code:
        request = catalogue_service_pb2.GetInstitutionRequest(fixmedins_code=code)
        found = await ask(catalogue.GetInstitution(request, metadata=AS_GATEWAY), "catalogue")
        return Outcome({"medinsinfo": [_institution_row(found)]})
    name = node.text("fixmedins_name", 200, required=False)
    if not name:
        raise EnvelopeError("input.medinsinfo: give fixmedins_code or fixmedins_name")
    search = catalogue_service_pb2.SearchInstitutionsRequest(name_contains=name, page_size=100)
    reply = await ask(catalogue.SearchInstitutions(search, metadata=AS_GATEWAY), "catalogue")
    return Outcome({"medinsinfo": [_institution_row(found) for found in reply.institutions]})


def _catalogue_row(item: catalogue_pb2.CatalogueItem, version: int) -> dict[str, Any]:
    begin, end = optional_date(item, "begin_date"), optional_date(item, "end_date")
    return {
        "hilist_code": item.med_list_codg,
        "hilist_name": item.name,
        "insu_admdvs": item.prov_admdvs,
        "begndate": begin.isoformat() if begin else "",
        "enddate": end.isoformat() if end else "",
        "chrgitm_lv": ITEM_CLASS_CODES.get(item.item_class, ""),
        "list_type": item.list_type,
        "selfpay_prop": ratio(item.selfpay_prop),
        "pric_uplmt_amt": yuan(item.price_cap.amount_fen),
        "lmt_used_flag": "1" if item.min_level or item.med_types else "0",
        "vali_flag": "1",
        "ver": str(version),
        "poolarea_no": item.prov_admdvs,
    }


async def catalogue_items(call: Call) -> Outcome:
    """1312: the treatment province's insurance catalogue, one item or page by page."""
    data = call.input.child("data")
    page_num = int(data.number("page_num", 0))
    size = int(data.number("page_size", 0))
    if page_num < 1 or not 1 <= size <= _MAX_PAGE:
        raise EnvelopeError(f"input.data: page_num from 1, page_size from 1 to {_MAX_PAGE}")
    prov = province_of(call.envelope.mdtrtarea_admvs)
    catalogue = call.upstreams.catalogue
    versions = await ask(
        catalogue.ListCatalogueVersions(
            catalogue_service_pb2.ListCatalogueVersionsRequest(prov_admdvs=prov, page_size=1),
            metadata=AS_GATEWAY,
        ),
        "catalogue",
    )
    if not versions.versions:
        raise EnvelopeError(f"province {prov} has not loaded a catalogue")
    current = versions.versions[0]
    code = data.text("hilist_code", 50, required=False)
    rows: list[dict[str, Any]] = []
    total = current.item_count
    if code:
        request = catalogue_service_pb2.GetCatalogueItemRequest(
            prov_admdvs=prov, med_list_codg=code
        )
        item = await ask(catalogue.GetCatalogueItem(request, metadata=AS_GATEWAY), "catalogue")
        rows, total = [_catalogue_row(item, current.version)], 1
    else:
        skip = (page_num - 1) * size
        stream = catalogue.DownloadCatalogue(
            catalogue_service_pb2.DownloadCatalogueRequest(
                prov_admdvs=prov, page_size=_STREAM_PAGE
            ),
            metadata=AS_GATEWAY,
        )
        try:
            async for page in stream:
                for item in page.items:
                    if skip:
                        skip -= 1
                    elif len(rows) < size:
                        rows.append(_catalogue_row(item, current.version))
                if len(rows) == size:
                    break
        finally:
            stream.cancel()
    pages = max(1, math.ceil(total / size))
    return Outcome(
        {
            "firstPage": 1,
            "lastPage": pages,
            "size": len(rows),
            "startRow": (page_num - 1) * size + 1 if rows else 0,
            "pageSize": size,
            "pageNum": page_num,
            "recordCounts": total,
            "pages": pages,
            "data": rows,
        }
    )


async def accumulations(call: Call) -> Outcome:
    """5206: the person's accumulations this year (or the year of cum_ym) in their insured area."""
    data = call.input.child("data")
    psn_no = data.text("psn_no", 30)
    month = data.text("cum_ym", 6, required=False)
    if month and not (month.isdigit() and len(month) == 6):
        raise EnvelopeError("input.data.cum_ym must be yyyyMM")
    year = int(month[:4]) if month else today_in_china().year
    request = settlement_service_pb2.GetAnnualAccumulatorsRequest(psn_no=psn_no, year=year)
    found = await ask(
        call.upstreams.settlement.GetAnnualAccumulators(request, metadata=AS_GATEWAY), "settlement"
    )
    common = {"insu_admdvs": found.insuplc_admdvs, "year": str(found.year)}
    rows = [
        {**common, "cum_type_code": "burden", "cum": yuan(found.burden.amount_fen)},
        {
            **common,
            "cum_type_code": "critical_illness_paid",
            "cum": yuan(found.critical_illness_paid.amount_fen),
        },
        {
            **common,
            "cum_type_code": "assistance_paid",
            "cum": yuan(found.assistance_paid.amount_fen),
        },
        {
            **common,
            "cum_type_code": "account_balance",
            "cum": yuan(found.account_balance.amount_fen),
        },
    ]
    rows += [
        {**common, "cum_type_code": f"fund_paid:{p.policy_id}", "cum": yuan(p.fund_paid.amount_fen)}
        for p in found.policies
    ]
    return Outcome({"cuminfo": rows}, reference=psn_no)
