"""Benchmark: cross-province settlements over gRPC on the mesh (no gateway yet).

Starts the mesh on free ports (embedded SQLite by default, or --postgres-url and --redis-url),
loads the demo bundle, then for every long-term filer with an open inpatient hospital runs
admission, a 50-line fee upload and a settlement, with C visits in flight at once. Prints visits/s
and the p50/p95/p99 latency of each call.

    .venv/bin/python bench/settle.py [--visits 400] [--concurrency 8] [--lines 50]
        [--postgres-url URL --redis-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import uvloop
from medsettle.settlement.v1 import (
    settlement_pb2,
    settlement_service_pb2,
    settlement_service_pb2_grpc,
)

from services.bundle_loader import load_bundle
from services.common.mesh import Mesh, MeshConfig, drop_databases
from services.common.values import date_to_proto, money, today_in_china
from services.demo.bundle import write_demo_bundle

if TYPE_CHECKING:
    Stub = settlement_service_pb2_grpc.SettlementServiceAsyncStub

GATEWAY = (("x-medsettle-caller", "gateway"),)
CODES = ["XD0000", "XD0001", "XD0002", "XS0000", "XS0001", "XS0003", "XC0000"]


def patients(bundle: Path) -> list[tuple[str, str]]:
    """(certno, hospital) of every long-term filer whose filing names a city."""
    with (bundle / "persons.csv").open(encoding="utf-8") as handle:
        certno = {row["psn_no"]: row["certno"] for row in csv.DictReader(handle)}
    with (bundle / "filings.csv").open(encoding="utf-8") as handle:
        return [
            (certno[row["psn_no"]], f"H{row['dest_admdvs']}00001")
            for row in csv.DictReader(handle)
            if row["category"] in ("retired_relocated", "long_term_resident", "stationed_worker")
            and not row["dest_admdvs"].endswith("0000")
        ]


async def one_visit(
    stub: Stub,
    number: int,
    certno: str,
    hospital: str,
    lines: int,
    timings: dict[str, list[float]],
) -> None:
    today = date_to_proto(today_in_china())
    clock = time.perf_counter()
    visit = await stub.AdmitVisit(
        settlement_service_pb2.AdmitVisitRequest(
            request_id=f"bench-admit-{number}",
            fixmedins_code=hospital,
            ipt_otp_no=f"B{number:08d}",
            credential_type=2,  # type: ignore[arg-type]
            credential_no=certno,
            med_type="21",
            begin_date=today,
        ),
        metadata=GATEWAY,
        timeout=10,
    )
    timings["AdmitVisit"].append(time.perf_counter() - clock)
    fees = [
        settlement_pb2.FeeLine(
            feedetl_sn=str(index),
            med_list_codg=CODES[index % len(CODES)],
            medins_list_codg=f"OWN{index}",
            cnt="1",
            pric="12.34",
            amount=money(1234),
            fee_date=today,
        )
        for index in range(lines)
    ]
    clock = time.perf_counter()
    await stub.UploadFees(
        settlement_service_pb2.UploadFeesRequest(
            request_id=f"bench-up-{number}",
            mdtrt_id=visit.mdtrt_id,
            fixmedins_code=hospital,
            lines=fees,
        ),
        metadata=GATEWAY,
        timeout=10,
    )
    timings["UploadFees"].append(time.perf_counter() - clock)
    clock = time.perf_counter()
    await stub.SettleVisit(
        settlement_service_pb2.SettleVisitRequest(
            request_id=f"bench-settle-{number}", mdtrt_id=visit.mdtrt_id, fixmedins_code=hospital
        ),
        metadata=GATEWAY,
        timeout=10,
    )
    timings["SettleVisit"].append(time.perf_counter() - clock)


async def main(
    visits: int, concurrency: int, lines: int, postgres_url: str, redis_url: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        config = MeshConfig.on_free_ports(
            data_dir, postgres_url=postgres_url, redis_url=redis_url, log_to_files=True
        )
        config.database_prefix = f"medsettle_bench_{config.base_port}"
        mesh = Mesh(config)
        endpoints = await mesh.start()
        try:
            bundle = write_demo_bundle(data_dir / "bundle", persons=max(200, visits * 3))
            report = await load_bundle(bundle, endpoints)
            assert report.ok, [f.line() for f in report.files]
            chosen = patients(bundle)[:visits]
            timings: dict[str, list[float]] = defaultdict(list)
            gate = asyncio.Semaphore(concurrency)
            async with grpc.aio.insecure_channel(endpoints["settlement"]) as channel:
                stub: Stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)

                async def run(number: int, certno: str, hospital: str) -> None:
                    async with gate:
                        await one_visit(stub, number, certno, hospital, lines, timings)

                clock = time.perf_counter()
                await asyncio.gather(*(run(n, c, h) for n, (c, h) in enumerate(chosen)))
                seconds = time.perf_counter() - clock
            storage = "PostgreSQL + Redis" if postgres_url else "SQLite + in-process cache"
            print(
                f"{len(chosen)} visits ({lines} lines each), concurrency {concurrency}, {storage}: "
                f"{seconds:.2f} s, {len(chosen) / seconds:.1f} visits/s"
            )
            for name, values in timings.items():
                cuts = statistics.quantiles(values, n=100)
                print(
                    f"  {name:12s} p50 {cuts[49] * 1000:6.1f} ms  "
                    f"p95 {cuts[94] * 1000:6.1f} ms  p99 {cuts[98] * 1000:6.1f} ms"
                )
        finally:
            await mesh.stop()
            if postgres_url:
                await drop_databases(config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--visits", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lines", type=int, default=50)
    parser.add_argument("--postgres-url", default="")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()
    uvloop.run(main(args.visits, args.concurrency, args.lines, args.postgres_url, args.redis_url))
