"""Concurrent settlements on PostgreSQL: never past the annual cap, and one per request."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import grpc
import pytest
from medsettle.settlement.v1 import settlement_pb2, settlement_service_pb2

from services.common.values import money, today_in_china
from tests.harness import national, refusal
from tests.integration.settlement.conftest import CAPPED, RETIREE, Upstream
from tests.integration.settlement.test_settlement_service import (
    GATEWAY,
    admit,
    fee,
    settle_request,
    upload,
)

if TYPE_CHECKING:
    from tests.integration.settlement.conftest import SettlementStub

pytestmark = pytest.mark.asyncio(loop_scope="module")
VISITS = 100
CAP_FEN = 100_000  # 1,000.00 a year; each visit's pool share is 40.00, 100 visits want 4,000.00


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Row locks are the point here: PostgreSQL only."""
    return postgres_url


async def test_concurrent_settlements_stop_exactly_at_the_annual_cap(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    policy = settlement_pb2.Policy(
        insuplc_admdvs="330100",
        insutype="310",
        year=today_in_china().year,
        med_type="11",
        psn_type="employed",
        tiers=[settlement_pb2.Tier(ratio="0.80")],
        annual_cap=money(CAP_FEN),
    )
    await settlement.UpsertPolicies(
        settlement_service_pb2.UpsertPoliciesRequest(policies=[policy]), metadata=national()
    )
    visits = await asyncio.gather(
        *(admit(settlement, upstream, CAPPED, med_type="11") for _ in range(VISITS))
    )
    await asyncio.gather(*(upload(settlement, v, fee("1", "XD0000", 5_000)) for v in visits))

    settled = await asyncio.gather(
        *(
            settlement.SettleVisit(settle_request(v, f"cap-{v.mdtrt_id}"), metadata=GATEWAY)
            for v in visits
        )
    )

    paid = [s.hifp_pay.amount_fen for s in settled]
    assert sum(paid) == CAP_FEN
    assert sorted(set(paid)) == [0, 4_000]  # 25 full payments, then nothing: 25 × 40.00 = cap
    for s in settled:
        assert s.fund_pay_sumamt.amount_fen + s.psn_part_amt.amount_fen == 5_000
    year = await settlement.GetAnnualAccumulators(
        settlement_service_pb2.GetAnnualAccumulatorsRequest(
            psn_no=CAPPED, year=today_in_china().year
        ),
        metadata=national(),
    )
    capped = [p for p in year.policies if p.policy_id == f"330100-310-{policy.year}-11-employed"]
    assert capped[0].fund_paid.amount_fen == CAP_FEN


async def test_the_same_settlement_sent_ten_times_at_once_settles_once(
    settlement: SettlementStub, upstream: Upstream
) -> None:
    visit = await admit(settlement, upstream, RETIREE, med_type="11")
    await upload(settlement, visit, fee("1", "XD0000", 12_345))
    request = settle_request(visit, f"same-{visit.mdtrt_id}")
    answers = await asyncio.gather(
        *(settlement.SettleVisit(request, metadata=GATEWAY) for _ in range(10))
    )
    # Those that waited for the visit's lock find it settled by their own request: a replay.
    assert len({a.SerializeToString() for a in answers}) == 1
    assert answers[0].medfee_sumamt.amount_fen == 12_345

    # The same request id on another (unsettled) visit is someone else's settlement.
    other = await admit(settlement, upstream, RETIREE, med_type="11")
    await upload(settlement, other, fee("1", "XD0000", 500))
    reused = settle_request(other, f"same-{visit.mdtrt_id}")
    assert await refusal(settlement.SettleVisit(reused, metadata=GATEWAY)) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "REQUEST_ID_CONFLICT",
    )
