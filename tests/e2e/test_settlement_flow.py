"""One cross-province inpatient visit through the running mesh over gRPC, into clearing's ledger."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from medsettle.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)

from services.bundle_loader import load_bundle
from services.common.mesh import Mesh
from services.common.values import date_to_proto, money, today_in_china
from services.demo.bundle import long_term_patients, write_demo_bundle

if TYPE_CHECKING:
    Stub = settlement_service_pb2_grpc.SettlementServiceAsyncStub

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
GATEWAY = (("x-medsettle-caller", "gateway"),)


def ledger(mesh: Mesh) -> list[tuple[str, int, int]]:
    """(event_id, medfee_sumamt, fund_pay_sumamt) of every entry in clearing's database."""
    path = mesh.config.data_dir / "clearing.sqlite"
    with sqlite3.connect(path) as connection:
        return connection.execute(
            "SELECT event_id, medfee_sumamt_fen, fund_pay_sumamt_fen FROM ledger_entries "
            "ORDER BY event_id"
        ).fetchall()


async def test_admit_upload_presettle_settle_cancel_settle_reaches_the_ledger(
    mesh: Mesh, tmp_path: Path
) -> None:
    bundle = write_demo_bundle(tmp_path / "bundle", persons=60)
    report = await load_bundle(bundle, mesh.config.endpoints())
    assert report.ok, [f.line() for f in report.files]
    patient = long_term_patients(bundle)[0]
    certno, hospital = patient.certno, patient.hospital
    async with grpc.aio.insecure_channel(mesh.config.endpoints()["settlement"]) as channel:
        stub: Stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
        visit = await stub.AdmitVisit(
            settlement_service_pb2.AdmitVisitRequest(
                request_id="e2e-admit",
                fixmedins_code=hospital,
                ipt_otp_no="ZY0001",
                credential_type=2,  # type: ignore[arg-type]
                credential_no=certno,
                med_type="21",
                begin_date=date_to_proto(today_in_china()),
            ),
            metadata=GATEWAY,
            timeout=10,
        )
        lines = [
            settlement_pb2.FeeLine(
                feedetl_sn=str(index),
                med_list_codg=code,
                medins_list_codg=f"OWN{index}",
                cnt="1",
                pric=f"{fen / 100:.2f}",
                amount=money(fen),
                fee_date=date_to_proto(today_in_china()),
            )
            for index, (code, fen) in enumerate(
                [("XS0000", 6_000), ("XS0001", 26_000), ("XD0004", 180_000), ("XS0005", 50_000)]
            )
        ]
        await stub.UploadFees(
            settlement_service_pb2.UploadFeesRequest(
                request_id="e2e-upload",
                mdtrt_id=visit.mdtrt_id,
                fixmedins_code=hospital,
                lines=lines,
            ),
            metadata=GATEWAY,
            timeout=10,
        )
        preview = await stub.PreSettle(
            settlement_service_pb2.PreSettleRequest(
                mdtrt_id=visit.mdtrt_id, fixmedins_code=hospital, medfee_sumamt=money(262_000)
            ),
            metadata=GATEWAY,
            timeout=10,
        )

        def settle(request_id: str) -> settlement_service_pb2.SettleVisitRequest:
            return settlement_service_pb2.SettleVisitRequest(
                request_id=request_id, mdtrt_id=visit.mdtrt_id, fixmedins_code=hospital
            )

        first = await stub.SettleVisit(settle("e2e-settle-1"), metadata=GATEWAY, timeout=10)
        assert first.hifp_pay == preview.hifp_pay and first.hifp_pay.amount_fen > 0
        assert first.medfee_sumamt.amount_fen == 262_000
        assert (
            first.fund_pay_sumamt.amount_fen + first.psn_part_amt.amount_fen
            == first.medfee_sumamt.amount_fen
        )
        await stub.CancelSettlement(
            settlement_service_pb2.CancelSettlementRequest(
                request_id="e2e-cancel",
                setl_id=first.setl_id,
                mdtrt_id=visit.mdtrt_id,
                fixmedins_code=hospital,
            ),
            metadata=GATEWAY,
            timeout=10,
        )
        second = await stub.SettleVisit(settle("e2e-settle-2"), metadata=GATEWAY, timeout=10)
        assert second.hifp_pay == first.hifp_pay and second.setl_id != first.setl_id

    expected = sorted(
        [
            (f"{first.setl_id}S", 262_000, first.fund_pay_sumamt.amount_fen),
            (f"{first.setl_id}C", -262_000, -first.fund_pay_sumamt.amount_fen),
            (f"{second.setl_id}S", 262_000, second.fund_pay_sumamt.amount_fen),
        ]
    )
    for _ in range(100):
        if ledger(mesh) == expected:
            break
        await asyncio.sleep(0.1)
    assert ledger(mesh) == expected
