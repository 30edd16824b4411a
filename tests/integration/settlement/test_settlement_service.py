"""SettlementService over gRPC, against real identity, filing and catalogue services."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from medsettle.filing.v1 import filing_pb2, filing_service_pb2
from medsettle.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.common.channels import make_channel
from services.common.runtime import Storage, open_storage, stop_tasks
from services.common.values import date_to_proto, money, today_in_china
from services.settlement.bundle import load_policies, read_policies
from services.settlement.config import SettlementSettings
from services.settlement.filing_ends import FilingEnds
from services.settlement.models import Base, FilingEndRow, FollowedFilingRow, VisitRow
from services.settlement.server import MIGRATIONS_DIR, build_servicer, registrar
from services.settlement.upstreams import Upstreams
from tests.harness import national, province, refusal, serving
from tests.integration.settlement.conftest import (
    BEIJING_CLINIC,
    BEIJING_HOSPITAL,
    LOCAL,
    RESIDENT,
    RETIREE,
    UNFILED,
    Upstream,
    certno_of,
)

if TYPE_CHECKING:
    from tests.integration.settlement.conftest import SettlementStub

pytestmark = pytest.mark.asyncio(loop_scope="module")
GATEWAY = (("x-medsettle-caller", "gateway"),)
_serial = itertools.count(1)


def fee(sn: str, code: str, fen: int, cnt: str = "1") -> settlement_pb2.FeeLine:
    pric = f"{fen / 100 / float(cnt):.2f}"
    return settlement_pb2.FeeLine(
        feedetl_sn=sn,
        med_list_codg=code,
        medins_list_codg=f"OWN-{code}",
        cnt=cnt,
        pric=pric,
        amount=money(fen),
        fee_date=date_to_proto(today_in_china()),
    )


async def admit(
    stub: SettlementStub,
    upstream: Upstream,
    psn_no: str,
    *,
    med_type: str = "21",
    hospital: str = BEIJING_HOSPITAL,
    emergency: bool = False,
) -> settlement_pb2.Visit:
    serial = next(_serial)
    return await stub.AdmitVisit(
        settlement_service_pb2.AdmitVisitRequest(
            request_id=f"admit-{serial}",
            fixmedins_code=hospital,
            ipt_otp_no=f"ZY{serial:06d}",
            credential_type=2,  # type: ignore[arg-type]
            credential_no=certno_of(psn_no, upstream),
            med_type=med_type,
            begin_date=date_to_proto(today_in_china()),
            emergency=emergency,
            diagnoses=[
                settlement_pb2.Diagnosis(diag_code="E11.900", diag_name="2型糖尿病", main=True)
            ],
        ),
        metadata=GATEWAY,
    )


async def upload(
    stub: SettlementStub, visit: settlement_pb2.Visit, *lines: settlement_pb2.FeeLine
) -> settlement_service_pb2.UploadFeesResponse:
    return await stub.UploadFees(
        settlement_service_pb2.UploadFeesRequest(
            request_id=f"upload-{next(_serial)}",
            mdtrt_id=visit.mdtrt_id,
            fixmedins_code=visit.fixmedins_code,
            lines=lines,
        ),
        metadata=GATEWAY,
    )


def settle_request(
    visit: settlement_pb2.Visit, request_id: str, *, acct_used: bool = False
) -> settlement_service_pb2.SettleVisitRequest:
    return settlement_service_pb2.SettleVisitRequest(
        request_id=request_id,
        mdtrt_id=visit.mdtrt_id,
        fixmedins_code=visit.fixmedins_code,
        acct_used=acct_used,
    )


def cancel_request(
    settlement: settlement_pb2.Settlement, request_id: str
) -> settlement_service_pb2.CancelSettlementRequest:
    return settlement_service_pb2.CancelSettlementRequest(
        request_id=request_id,
        setl_id=settlement.setl_id,
        mdtrt_id=settlement.mdtrt_id,
        fixmedins_code=settlement.fixmedins_code,
    )


async def file_unfiled(
    upstream: Upstream,
    category: filing_pb2.FilingCategory.ValueType,
    *,
    begin: dt.date | None = None,
) -> filing_pb2.Filing:
    """UNFILED's (南京) filing to Beijing; revoke it before the test ends: others expect none."""
    request = filing_service_pb2.CreateFilingRequest(
        request_id=f"unfiled-{next(_serial)}",
        psn_no=UNFILED,
        category=category,
        insuplc_admdvs="320100",
        dest_admdvs="110000",
        channel=filing_pb2.FILING_CHANNEL_APP,
    )
    if begin is not None:
        request.begin_date.CopyFrom(date_to_proto(begin))
    return await upstream.filing.CreateFiling(request, metadata=national())


async def revoke(upstream: Upstream, filing: filing_pb2.Filing) -> None:
    request = filing_service_pb2.RevokeFilingRequest(filing_id=filing.filing_id, reason="test")
    await upstream.filing.RevokeFiling(request, metadata=national())


def amounts(settlement: settlement_pb2.Settlement) -> dict[str, int]:
    names = [
        "medfee_sumamt",
        "fulamt_ownpay_amt",
        "overlmt_selfpay",
        "preselfpay_amt",
        "inscp_scp_amt",
        "act_pay_dedc",
        "hifp_pay",
        "hifmi_pay",
        "hifob_pay",
        "maf_pay",
        "fund_pay_sumamt",
        "psn_part_amt",
        "acct_pay",
        "psn_cash_pay",
        "balc",
    ]
    return {name: getattr(settlement, name).amount_fen for name in names}


async def test_published_worked_example_settles_to_the_fen(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    # 廊坊 retiree, chronic-disease drugs in Beijing: 甲 32.52 + 乙 (10%) 31.77 at 80%.
    visit = await admit(settlement, upstream, RETIREE, med_type="14")
    uploaded = await upload(
        settlement, visit, fee("1", "XD0000", 3252), fee("2", "XD0001", 3177, cnt="3")
    )
    assert [line.preselfpay_amt.amount_fen for line in uploaded.lines] == [0, 318]
    assert [line.chrgitm_lv for line in uploaded.lines] == ["01", "02"]
    preview = await settlement.PreSettle(
        settlement_service_pb2.PreSettleRequest(
            mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL, medfee_sumamt=money(6429)
        ),
        metadata=GATEWAY,
    )
    settled = await settlement.SettleVisit(settle_request(visit, "s-worked"), metadata=GATEWAY)
    assert preview.setl_id == "" and len(settled.setl_id) == 30
    assert amounts(preview) == amounts(settled)
    got = amounts(settled)
    assert (got["medfee_sumamt"], got["preselfpay_amt"], got["inscp_scp_amt"]) == (6429, 318, 6111)
    assert (got["hifp_pay"], got["fund_pay_sumamt"], got["psn_part_amt"]) == (4889, 4889, 1540)
    assert settled.pool_prop_selfpay == "0.8000"
    assert [(f.fund_pay_type, f.fund_payamt.amount_fen) for f in settled.fund_payments] == [
        ("310100", 4889)
    ]
    assert settled.policy_id.startswith("131000-310-") and settled.policy_id.endswith("-14-retired")


async def test_admission_refusals_name_their_reason(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    assert await refusal(admit(settlement, upstream, LOCAL)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_CROSS_PROVINCE",
    )
    assert await refusal(admit(settlement, upstream, RETIREE, hospital=BEIJING_CLINIC)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "INSTITUTION_NOT_OPEN",
    )
    assert await refusal(admit(settlement, upstream, UNFILED)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "FILING_REQUIRED",
    )
    unknown = settlement_service_pb2.AdmitVisitRequest(
        request_id="admit-unknown",
        fixmedins_code=BEIJING_HOSPITAL,
        ipt_otp_no="ZY-UNKNOWN",
        credential_type=2,  # type: ignore[arg-type]
        credential_no="110101199003077777",
        med_type="21",
        begin_date=date_to_proto(today_in_china()),
    )
    _, reason = await refusal(settlement.AdmitVisit(unknown, metadata=GATEWAY))
    assert reason in ("PERSON_NOT_FOUND", "INVALID_ID_NUMBER")
    wrong_caller = settlement.AdmitVisit(unknown, metadata=province("110000"))
    assert await refusal(wrong_caller) == (grpc.StatusCode.PERMISSION_DENIED, "CALLER_NOT_ALLOWED")


async def test_admissions_at_one_hospital_ask_catalogue_for_it_once(
    settlement: SettlementStub, upstream: Upstream, span_exporter: InMemorySpanExporter
) -> None:
    first = await admit(settlement, upstream, RETIREE)
    second = await admit(settlement, upstream, RESIDENT)
    assert first.treatment_admdvs == second.treatment_admdvs == "110100"
    asked = [
        span
        for span in span_exporter.get_finished_spans()
        if span.name == "CatalogueService/GetInstitution" and span.kind == SpanKind.CLIENT
    ]
    assert len(asked) == 1


async def test_an_unknown_credential_is_reported_before_an_unknown_hospital(
    settlement: SettlementStub,
) -> None:
    request = settlement_service_pb2.AdmitVisitRequest(
        request_id="admit-nobody-nowhere",
        fixmedins_code="H99999999999",
        ipt_otp_no="ZY-NOWHERE",
        credential_type=2,  # type: ignore[arg-type]
        credential_no="11010519491231002X",
        med_type="21",
        begin_date=date_to_proto(today_in_china()),
    )
    assert await refusal(settlement.AdmitVisit(request, metadata=GATEWAY)) == (
        grpc.StatusCode.NOT_FOUND,
        "PERSON_NOT_FOUND",
    )


async def test_admission_is_idempotent_by_request_id(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    request = _inpatient_admission("admit-twice", "ZY-TWICE", upstream)
    first = await settlement.AdmitVisit(request, metadata=GATEWAY)
    again = await settlement.AdmitVisit(request, metadata=GATEWAY)
    assert first == again
    request.ipt_otp_no = "ZY-OTHER"
    assert await refusal(settlement.AdmitVisit(request, metadata=GATEWAY)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_CONFLICT",
    )
    request.request_id = "admit-same-number"
    request.ipt_otp_no = "ZY-TWICE"
    assert await refusal(settlement.AdmitVisit(request, metadata=GATEWAY)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "VISIT_EXISTS",
    )


async def test_admissions_sent_at_once_make_one_visit_per_request_and_per_open_number(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    request = _inpatient_admission("admit-at-once", "ZY-AT-ONCE", upstream)
    same = await asyncio.gather(
        *(settlement.AdmitVisit(request, metadata=GATEWAY) for _ in range(6))
    )
    assert len({visit.mdtrt_id for visit in same}) == 1
    others = [
        settlement.AdmitVisit(
            _inpatient_admission(f"admit-number-{n}", "ZY-ONE-NUMBER", upstream), metadata=GATEWAY
        )
        for n in range(6)
    ]
    outcomes = await asyncio.gather(*others, return_exceptions=True)
    admitted = [o for o in outcomes if isinstance(o, settlement_pb2.Visit)]
    assert len(admitted) == 1 and admitted[0].ipt_otp_no == "ZY-ONE-NUMBER"
    refused = [await refusal(_raise(o)) for o in outcomes if isinstance(o, BaseException)]
    assert refused == [(grpc.StatusCode.ALREADY_EXISTS, "VISIT_EXISTS")] * 5


async def _raise(error: BaseException) -> None:
    raise error


def _inpatient_admission(
    request_id: str, ipt_otp_no: str, upstream: Upstream
) -> settlement_service_pb2.AdmitVisitRequest:
    """An inpatient admission of RETIREE at BEIJING_HOSPITAL, today."""
    return settlement_service_pb2.AdmitVisitRequest(
        request_id=request_id,
        fixmedins_code=BEIJING_HOSPITAL,
        ipt_otp_no=ipt_otp_no,
        credential_type=2,  # type: ignore[arg-type]
        credential_no=certno_of(RETIREE, upstream),
        med_type="21",
        begin_date=date_to_proto(today_in_china()),
    )


async def test_the_same_upload_sent_at_once_stores_each_line_once_and_answers_all_alike(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    lines = [fee(str(n), "XD0000", 1_000 + n) for n in range(1, 41)]
    for attempt in range(3):  # races are caught by chance: three visits, eight uploads each
        visit = await admit(settlement, upstream, RETIREE)
        answers = await asyncio.gather(*(upload(settlement, visit, *lines) for _ in range(8)))
        assert all(answer == answers[0] for answer in answers)
        amounts = [line.amount.amount_fen for line in answers[0].lines]
        assert amounts == [1_000 + n for n in range(1, 41)]
        # Each line is live once: cancelling all of them finds forty.
        everything = settlement_service_pb2.CancelFeesRequest(
            request_id=f"cancel-at-once-{attempt}",
            mdtrt_id=visit.mdtrt_id,
            fixmedins_code=BEIJING_HOSPITAL,
        )
        assert (await settlement.CancelFees(everything, metadata=GATEWAY)).cancelled_count == 40


async def test_fee_lines_are_idempotent_by_serial_and_cancel_before_settlement(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE)
    first = await upload(settlement, visit, fee("1", "XD0000", 10_000), fee("2", "NOPE", 500))
    assert first.lines[1].fulamt_ownpay_amt.amount_fen == 500  # not in the catalogue
    again = await upload(settlement, visit, fee("1", "XD0000", 10_000))
    assert again.lines[0] == first.lines[0]
    assert await refusal(upload(settlement, visit, fee("1", "XD0000", 20_000))) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "FEE_LINE_CONFLICT",
    )
    cancelled = await settlement.CancelFees(
        settlement_service_pb2.CancelFeesRequest(
            request_id="c1",
            mdtrt_id=visit.mdtrt_id,
            fixmedins_code=BEIJING_HOSPITAL,
            feedetl_sn="1",
        ),
        metadata=GATEWAY,
    )
    assert cancelled.cancelled_count == 1
    replaced = await upload(settlement, visit, fee("1", "XD0000", 20_000))
    assert replaced.lines[0].amount.amount_fen == 20_000
    negative = fee("3", "XD0000", -100)
    assert await refusal(upload(settlement, visit, negative)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "FEE_LINE_INVALID",
    )
    everything = settlement_service_pb2.CancelFeesRequest(
        request_id="c2", mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL
    )
    assert (await settlement.CancelFees(everything, metadata=GATEWAY)).cancelled_count == 2
    assert await refusal(
        settlement.SettleVisit(settle_request(visit, "s-empty"), metadata=GATEWAY)
    ) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_FEES",
    )


async def test_wrong_total_is_refused(settlement: SettlementStub, upstream: Upstream) -> None:
    visit = await admit(settlement, upstream, RETIREE)
    await upload(settlement, visit, fee("1", "XD0000", 10_000))
    request = settle_request(visit, "s-wrong-total")
    request.medfee_sumamt.CopyFrom(money(9_999))
    assert await refusal(settlement.SettleVisit(request, metadata=GATEWAY)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "MEDFEE_SUMAMT_MISMATCH",
    )


async def test_settlement_is_idempotent_and_one_per_visit(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE)
    await upload(settlement, visit, fee("1", "XS0001", 26_000), fee("2", "XD0003", 50_000))
    first = await settlement.SettleVisit(settle_request(visit, "s-once"), metadata=GATEWAY)
    again = await settlement.SettleVisit(settle_request(visit, "s-once"), metadata=GATEWAY)
    assert again.SerializeToString() == first.SerializeToString()
    other_body = settle_request(visit, "s-once", acct_used=True)
    assert await refusal(settlement.SettleVisit(other_body, metadata=GATEWAY)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_CONFLICT",
    )
    assert await refusal(
        settlement.SettleVisit(settle_request(visit, "s-twice"), metadata=GATEWAY)
    ) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VISIT_SETTLED",
    )
    assert await refusal(upload(settlement, visit, fee("9", "XD0000", 100))) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VISIT_SETTLED",
    )


async def test_settling_refuses_an_unknown_visit_and_another_institution_s_or_person_s(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE)
    await upload(settlement, visit, fee("1", "XS0001", 26_000))
    unknown = settle_request(visit, "s-unknown")
    unknown.mdtrt_id = "M0000000000000000"
    elsewhere = settle_request(visit, "s-elsewhere")
    elsewhere.fixmedins_code = "H11010000002"
    someone_else = settle_request(visit, "s-someone-else")
    someone_else.psn_no = RESIDENT
    refused = [
        await refusal(settlement.SettleVisit(body, metadata=GATEWAY))
        for body in (unknown, elsewhere, someone_else)
    ]
    assert refused == [
        (grpc.StatusCode.NOT_FOUND, "VISIT_NOT_FOUND"),
        (grpc.StatusCode.NOT_FOUND, "VISIT_NOT_FOUND"),
        (grpc.StatusCode.FAILED_PRECONDITION, "VISIT_PERSON_MISMATCH"),
    ]
    body = settle_request(visit, "s-owner")
    body.psn_no = RETIREE
    settled = await settlement.SettleVisit(body, metadata=GATEWAY)
    assert (settled.mdtrt_id, settled.psn_no) == (visit.mdtrt_id, RETIREE)


async def test_cancel_restores_accumulators_and_the_visit_settles_again_the_same(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    year = today_in_china().year
    request = settlement_service_pb2.GetAnnualAccumulatorsRequest(psn_no=RESIDENT, year=year)
    visit = await admit(settlement, upstream, RESIDENT)
    await upload(
        settlement, visit, fee("1", "XS0004", 4_200_000, cnt="100"), fee("2", "XD0006", 300_000)
    )
    first = await settlement.SettleVisit(settle_request(visit, "s-r1"), metadata=GATEWAY)
    after_first = await settlement.GetAnnualAccumulators(request, metadata=GATEWAY)
    # A low-income resident past the critical-illness threshold: every fund pays.
    assert first.hifmi_pay.amount_fen > 0 and first.maf_pay.amount_fen > 0
    assert after_first.critical_illness_paid.amount_fen == first.hifmi_pay.amount_fen
    assert [p.fund_paid.amount_fen for p in after_first.policies] == [first.hifp_pay.amount_fen]

    cancelled = await settlement.CancelSettlement(cancel_request(first, "c-r1"), metadata=GATEWAY)
    assert cancelled.status == settlement_pb2.SETTLEMENT_STATUS_CANCELLED
    repeat = await settlement.CancelSettlement(cancel_request(first, "c-r1"), metadata=GATEWAY)
    assert repeat.SerializeToString() == cancelled.SerializeToString()
    assert await refusal(
        settlement.CancelSettlement(cancel_request(first, "c-r2"), metadata=GATEWAY)
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "SETTLEMENT_ALREADY_CANCELLED")
    restored = await settlement.GetAnnualAccumulators(request, metadata=GATEWAY)
    assert restored.burden.amount_fen == 0 and restored.critical_illness_paid.amount_fen == 0
    assert [p.fund_paid.amount_fen for p in restored.policies] == [0]
    assert [p.inpatient_settlements for p in restored.policies] == [0]

    second = await settlement.SettleVisit(settle_request(visit, "s-r2"), metadata=GATEWAY)
    assert second.setl_id != first.setl_id
    assert amounts(second) == amounts(first)


async def test_account_pays_first_and_cancellation_gives_it_back(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE, med_type="11")
    await upload(settlement, visit, fee("1", "XC0000", 80_000, cnt="100"))
    settled = await settlement.SettleVisit(
        settle_request(visit, "s-acct", acct_used=True), metadata=GATEWAY
    )
    # Balance 500.00: the account pays up to it, the rest is cash.
    assert settled.acct_pay.amount_fen == min(50_000, settled.psn_part_amt.amount_fen)
    assert settled.balc.amount_fen == 50_000 - settled.acct_pay.amount_fen
    assert settled.fund_payments[-1].fund_pay_type == "310200"
    cancelled = await settlement.CancelSettlement(
        cancel_request(settled, "c-acct"), metadata=GATEWAY
    )
    assert cancelled.balc.amount_fen == 50_000


async def test_emergency_needs_no_filing_and_a_later_filing_counts_at_settlement(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, UNFILED, emergency=True)
    assert visit.filing_id == ""
    await upload(settlement, visit, fee("1", "XS0001", 1_026_000, cnt="10"))
    emergency = await settlement.PreSettle(
        settlement_service_pb2.PreSettleRequest(
            mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL
        ),
        metadata=GATEWAY,
    )
    assert emergency.setl_id == "" and emergency.filing_id == ""
    filing = await file_unfiled(
        upstream,
        filing_pb2.FILING_CATEGORY_STATIONED_WORKER,
        begin=today_in_china() - dt.timedelta(days=1),
    )
    settled = await settlement.SettleVisit(settle_request(visit, "s-late-filing"), metadata=GATEWAY)
    assert settled.filing_id == filing.filing_id
    # The long-term filing takes no reduction: the pooled fund pays more than as an emergency.
    assert settled.hifp_pay.amount_fen > emergency.hifp_pay.amount_fen
    explanation = await settlement.ExplainSettlement(
        settlement_service_pb2.ExplainSettlementRequest(
            setl_id=settled.setl_id, fixmedins_code=BEIJING_HOSPITAL
        ),
        metadata=GATEWAY,
    )
    assert explanation.reduction_category == ""
    kinds = [settlement_pb2.StepKind.Name(step.kind) for step in explanation.steps]
    assert kinds[0] == "STEP_KIND_DEDUCTIBLE" and "STEP_KIND_ANNUAL_CAP" in kinds
    assert explanation.lines[0].catalogue_version >= 1
    assert [s.ratio for s in explanation.steps if s.kind == settlement_pb2.STEP_KIND_TIER] == [
        "0.8500"
    ]
    await revoke(upstream, filing)


async def test_policies_are_versioned_and_written_only_by_their_province(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    listed = await settlement.ListPolicies(
        settlement_service_pb2.ListPoliciesRequest(insuplc_admdvs="131000", page_size=5),
        metadata=national(),
    )
    assert len(listed.policies) == 5 and listed.next_page_token
    policy = listed.policies[0]
    assert policy.version == 1
    changed = settlement_pb2.Policy()
    changed.CopyFrom(policy)
    changed.annual_cap.amount_fen += 100
    request = settlement_service_pb2.UpsertPoliciesRequest(policies=[changed])
    reply = await settlement.UpsertPolicies(request, metadata=province("130000"))
    assert (reply.written_count, reply.unchanged_count) == (1, 0)
    reply = await settlement.UpsertPolicies(request, metadata=province("130000"))
    assert (reply.written_count, reply.unchanged_count) == (0, 1)
    assert await refusal(settlement.UpsertPolicies(request, metadata=province("510000"))) == (
        grpc.StatusCode.PERMISSION_DENIED,
        "AREA_NOT_OWNED",
    )
    bad = settlement_pb2.Policy()
    bad.CopyFrom(policy)
    bad.tiers[0].ratio = "1.5"
    bad_request = settlement_service_pb2.UpsertPoliciesRequest(policies=[bad])
    assert await refusal(settlement.UpsertPolicies(bad_request, metadata=national())) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "POLICY_INVALID",
    )


async def test_a_new_policy_version_applies_to_the_next_settlement_at_once(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE, med_type="14")  # reads its policy
    await upload(settlement, visit, fee("1", "XD0000", 1000))
    preview = await settlement.PreSettle(
        settlement_service_pb2.PreSettleRequest(
            mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL
        ),
        metadata=GATEWAY,
    )
    listed = await settlement.ListPolicies(
        settlement_service_pb2.ListPoliciesRequest(insuplc_admdvs="131000", page_size=100),
        metadata=national(),
    )
    (policy,) = [p for p in listed.policies if p.policy_id == preview.policy_id]
    changed = settlement_pb2.Policy()
    changed.CopyFrom(policy)
    changed.annual_cap.amount_fen += 100
    await settlement.UpsertPolicies(
        settlement_service_pb2.UpsertPoliciesRequest(policies=[changed]),
        metadata=province("130000"),
    )
    settled = await settlement.SettleVisit(settle_request(visit, "s-new-version"), metadata=GATEWAY)
    assert settled.policy_id == preview.policy_id
    assert settled.policy_version == preview.policy_version + 1


async def test_discharge_and_cancelling_an_admission_only_without_a_live_settlement(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE)
    discharge = settlement_service_pb2.DischargeVisitRequest(
        mdtrt_id=visit.mdtrt_id,
        fixmedins_code=BEIJING_HOSPITAL,
        end_date=date_to_proto(today_in_china() - dt.timedelta(days=1)),
    )
    assert await refusal(settlement.DischargeVisit(discharge, metadata=GATEWAY)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "VISIT_INVALID",
    )
    discharge.end_date.CopyFrom(date_to_proto(today_in_china()))
    discharged = await settlement.DischargeVisit(discharge, metadata=GATEWAY)
    assert discharged.status == settlement_pb2.VISIT_STATUS_DISCHARGED
    await upload(settlement, visit, fee("1", "XD0000", 10_000))
    settled = await settlement.SettleVisit(settle_request(visit, "s-discharged"), metadata=GATEWAY)
    cancel_visit = settlement_service_pb2.CancelVisitRequest(
        request_id="cv-1", mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL
    )
    assert await refusal(settlement.CancelVisit(cancel_visit, metadata=GATEWAY)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VISIT_SETTLED",
    )
    await settlement.CancelSettlement(cancel_request(settled, "c-discharged"), metadata=GATEWAY)
    cancelled = await settlement.CancelVisit(cancel_visit, metadata=GATEWAY)
    assert cancelled.status == settlement_pb2.VISIT_STATUS_CANCELLED
    assert await refusal(
        settlement.SettleVisit(settle_request(visit, "s-after-cancel"), metadata=GATEWAY)
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "VISIT_CLOSED")
    other_hospital = settlement_service_pb2.GetVisitRequest(
        mdtrt_id=visit.mdtrt_id, fixmedins_code="H11010000002"
    )
    assert await refusal(settlement.GetVisit(other_hospital, metadata=GATEWAY)) == (
        grpc.StatusCode.NOT_FOUND,
        "VISIT_NOT_FOUND",
    )


async def test_visit_info_changes_the_medical_type_only_before_fees(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE, med_type="11")
    update = settlement_service_pb2.UpdateVisitRequest(
        mdtrt_id=visit.mdtrt_id,
        fixmedins_code=BEIJING_HOSPITAL,
        psn_no=RETIREE,
        med_type="14",
        diagnoses=[settlement_pb2.Diagnosis(diag_code="I10.x00", diag_name="高血压", main=True)],
    )
    updated = await settlement.UpdateVisit(update, metadata=GATEWAY)
    assert (updated.med_type, [d.diag_code for d in updated.diagnoses]) == ("14", ["I10.x00"])
    to_inpatient = settlement_service_pb2.UpdateVisitRequest()
    to_inpatient.CopyFrom(update)
    to_inpatient.med_type = "21"
    assert await refusal(settlement.UpdateVisit(to_inpatient, metadata=GATEWAY)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "VISIT_INVALID",
    )
    await upload(settlement, updated, fee("1", "XD0000", 10_000))
    update.med_type = "11"
    assert await refusal(settlement.UpdateVisit(update, metadata=GATEWAY)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "VISIT_INVALID",
    )
    update.psn_no = RESIDENT
    assert await refusal(settlement.UpdateVisit(update, metadata=GATEWAY)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VISIT_PERSON_MISMATCH",
    )


async def test_a_discharge_is_undone_until_the_visit_is_settled(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE)
    discharge = settlement_service_pb2.DischargeVisitRequest(
        mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL, end_date=visit.begin_date
    )
    await settlement.DischargeVisit(discharge, metadata=GATEWAY)
    reopen = settlement_service_pb2.ReopenVisitRequest(
        mdtrt_id=visit.mdtrt_id, fixmedins_code=BEIJING_HOSPITAL, psn_no=RETIREE
    )
    reopened = await settlement.ReopenVisit(reopen, metadata=GATEWAY)
    assert reopened.status == settlement_pb2.VISIT_STATUS_OPEN
    assert not reopened.HasField("end_date")
    assert (await settlement.ReopenVisit(reopen, metadata=GATEWAY)).status == reopened.status
    await upload(settlement, visit, fee("1", "XD0000", 10_000))
    await settlement.SettleVisit(settle_request(visit, "s-reopened"), metadata=GATEWAY)
    assert await refusal(settlement.ReopenVisit(reopen, metadata=GATEWAY)) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "VISIT_SETTLED",
    )


async def _until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within 10 s: {what}")


@dataclass
class _Following:
    """A settlement service whose admissions and settlements follow filing's stream."""

    stub: SettlementStub
    storage: Storage
    follower: FilingEnds
    following: asyncio.Task[None]

    async def current(self) -> bool:
        return self.follower.current

    async def has_row(self, model: type[Any], key: str) -> bool:
        """Whether this service's database holds the row of `model` with primary key `key`."""
        async with self.storage.sessions() as session:
            return await session.get(model, key) is not None

    async def stop_following(self) -> None:
        """Stop following and wait until the stream is no longer current."""
        self.following.cancel()
        await asyncio.sleep(1.6)
        assert not self.follower.current


@asynccontextmanager
async def _following_filing(
    upstream: Upstream, settings: SettlementSettings, tracer_provider: TracerProvider
) -> AsyncIterator[_Following]:
    storage = await open_storage(settings, Base.metadata, MIGRATIONS_DIR)
    tracer = tracer_provider.get_tracer("settlement")
    upstreams = Upstreams.connect(upstream.targets, tracer, 10)
    # Watch calls of 1 s: the follower resumes across several of them during a test; the stream
    # is current for 1.5 s after a heartbeat.
    watch = make_channel(upstream.targets["filing"], tracer=tracer, default_timeout_s=1.0)
    follower = FilingEnds(storage.sessions, watch, current_s=1.5)
    following = asyncio.create_task(follower.run())
    servicer = build_servicer(storage, upstreams, None, filing_ends=follower)
    try:
        async with serving(settings, storage, registrar(servicer), tracer_provider) as ch:
            stub = settlement_service_pb2_grpc.SettlementServiceStub(ch)
            await load_policies(stub, read_policies(upstream.policies_path))
            yield _Following(stub, storage, follower, following)
    finally:
        await stop_tasks([following])
        await upstreams.close()
        await watch.close()
        await storage.close()


def _asked_filing(span_exporter: InMemorySpanExporter) -> int:
    """How many times settlement has asked filing for an effective filing so far."""
    return sum(
        span.name == "FilingService/FindEffectiveFiling" and span.kind == SpanKind.CLIENT
        for span in span_exporter.get_finished_spans()
    )


async def test_an_admission_finds_its_filing_in_the_followed_copy_while_the_stream_is_current(
    upstream: Upstream,
    settlement_settings: SettlementSettings,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    def asked_filing() -> int:
        return _asked_filing(span_exporter)

    async with _following_filing(upstream, settlement_settings, tracer_provider) as service:
        stub = service.stub

        def copied(filing_id: str) -> Awaitable[bool]:
            return service.has_row(FollowedFilingRow, filing_id)

        retirees = await upstream.filing.FindEffectiveFiling(
            filing_service_pb2.FindEffectiveFilingRequest(
                psn_no=RETIREE,
                treatment_admdvs="110105",
                date=date_to_proto(today_in_china()),
            ),
            metadata=national(),
        )
        await _until(service.current, "the stream is current")
        # Filed before settlement started to follow: copied from the start of filing's log.
        asked = asked_filing()
        visit = await admit(stub, upstream, RETIREE)
        assert (visit.filing_id, asked_filing()) == (retirees.filing_id, asked)

        filed = await file_unfiled(upstream, filing_pb2.FILING_CATEGORY_REFERRAL)
        await _until(lambda: copied(filed.filing_id), "the new filing is copied")
        visit = await admit(stub, upstream, UNFILED)
        assert (visit.filing_id, asked_filing()) == (filed.filing_id, asked)
        async with service.storage.sessions() as session:
            kept = await session.get(VisitRow, visit.mdtrt_id)
        assert kept is not None and kept.filing_category == "referral"

        # Revoked: gone from the copy, so filing is asked, and it has none either.
        await revoke(upstream, filed)
        await _until(lambda: _not(copied(filed.filing_id)), "the revoked filing leaves the copy")
        refused = await refusal(admit(stub, upstream, UNFILED))
        assert (refused[1], asked_filing()) == ("FILING_REQUIRED", asked + 1)

        # A stream that is not current is not trusted: filing is asked.
        await service.stop_following()
        visit = await admit(stub, upstream, RETIREE)
        assert (visit.filing_id, asked_filing()) == (retirees.filing_id, asked + 2)


async def _not(condition: Awaitable[bool]) -> bool:
    return not await condition


async def test_a_settlement_takes_the_admission_filing_from_filing_s_stream_until_it_ends(
    upstream: Upstream,
    settlement_settings: SettlementSettings,
    tracer_provider: TracerProvider,
    span_exporter: InMemorySpanExporter,
) -> None:
    def asked_filing() -> int:
        return _asked_filing(span_exporter)

    async with _following_filing(upstream, settlement_settings, tracer_provider) as service:
        stub = service.stub
        filed = await file_unfiled(upstream, filing_pb2.FILING_CATEGORY_OTHER_TEMPORARY)
        first, second = [await admit(stub, upstream, UNFILED) for _ in range(2)]
        for visit in (first, second):
            await upload(stub, visit, fee("1", "XD0000", 10_000))

        await _until(service.current, "the stream is current")
        asked = asked_filing()
        preview = await stub.PreSettle(
            settlement_service_pb2.PreSettleRequest(
                mdtrt_id=first.mdtrt_id, fixmedins_code=first.fixmedins_code
            ),
            metadata=GATEWAY,
        )
        assert (preview.filing_id, asked_filing()) == (filed.filing_id, asked)
        settled = await stub.SettleVisit(
            settle_request(first, f"stream-s1-{next(_serial)}"), metadata=GATEWAY
        )
        assert (settled.filing_id, asked_filing()) == (filed.filing_id, asked)

        # Revoked after admission: recorded from the stream, then filing is asked again.
        await revoke(upstream, filed)
        await _until(
            lambda: service.has_row(FilingEndRow, filed.filing_id), "the revocation is recorded"
        )
        refused = await refusal(
            stub.SettleVisit(settle_request(second, f"stream-s2-{next(_serial)}"), metadata=GATEWAY)
        )
        assert (refused[1], asked_filing()) == ("FILING_REQUIRED", asked + 1)

        # A stream that is not current is not trusted: filing is asked.
        refiled = await file_unfiled(upstream, filing_pb2.FILING_CATEGORY_OTHER_TEMPORARY)
        third = await admit(stub, upstream, UNFILED)
        await upload(stub, third, fee("1", "XD0000", 10_000))
        await service.stop_following()
        asked = asked_filing()
        settled = await stub.SettleVisit(
            settle_request(third, f"stream-s3-{next(_serial)}"), metadata=GATEWAY
        )
        assert (settled.filing_id, asked_filing()) == (refiled.filing_id, asked + 1)
        await revoke(upstream, refiled)
