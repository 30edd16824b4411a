"""`medsettle clearing ...`: the national operator's commands for monthly clearing."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import IO

import grpc
import uvloop
from medsettle.clearing.v1 import clearing_service_pb2, clearing_service_pb2_grpc

from services.common.callers import caller_metadata
from services.common.endpoints import EndpointsUnreadable, add_endpoints_argument, read_endpoints
from services.common.values import yuan_text

_AS_NATIONAL = caller_metadata("national")
_STATES = {1: "open", 2: "cleared", 3: "closed"}
CSV_COLUMNS = (
    "period",
    "insured_prov",
    "treatment_prov",
    "entry_count",
    "medfee_sumamt",
    "hifp_pay",
    "critical_illness_pay",
    "maf_pay",
    "acct_pay",
    "clearing_amount",
    "confirmed",
)


def add_clearing_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Adds `clearing confirm-treatment`, `clearing run` and `clearing status`."""
    clearing = commands.add_parser("clearing", help="monthly clearing between provinces")
    actions = clearing.add_subparsers(dest="clearing_command", required=True)
    confirm = actions.add_parser(
        "confirm-treatment", help="confirm a treatment province's month (acting nationally)"
    )
    confirm.add_argument("--period", required=True, help="YYYY-MM")
    confirm.add_argument("--province", required=True, help="treatment province, e.g. 110000")
    run = actions.add_parser("run", help="compute the period's statements, netting and transfers")
    run.add_argument("--period", required=True, help="YYYY-MM")
    status = actions.add_parser("status", help="the period's state and statements")
    status.add_argument("--period", required=True, help="YYYY-MM")
    for parser in (confirm, run, status):
        add_endpoints_argument(parser)
    for parser in (run, status):
        parser.add_argument("--csv", type=Path, help="also write the statements to this CSV file")
    clearing.set_defaults(handler=_clearing)


def _clearing(args: argparse.Namespace) -> int:
    try:
        target = read_endpoints(args.endpoints)["clearing"]
    except (EndpointsUnreadable, KeyError) as error:
        print(f"no clearing endpoint: {error}", file=sys.stderr)
        return 2
    try:
        return uvloop.run(_call(args, target))
    except grpc.aio.AioRpcError as error:
        print(f"{error.code().name}: {error.details()}", file=sys.stderr)
        return 1


async def _call(args: argparse.Namespace, target: str) -> int:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = clearing_service_pb2_grpc.ClearingServiceStub(channel)
        if args.clearing_command == "confirm-treatment":
            period = await stub.ConfirmTreatmentPeriod(
                clearing_service_pb2.ConfirmTreatmentPeriodRequest(
                    period=args.period, province=args.province
                ),
                metadata=_AS_NATIONAL,
                timeout=30,
            )
            print(
                f"{period.period}: pending {', '.join(period.pending_treatment_provinces) or '-'}"
            )
            return 0
        if args.clearing_command == "run":
            result = await stub.RunClearing(
                clearing_service_pb2.RunClearingRequest(
                    request_id=f"cli-{args.period}", period=args.period
                ),
                metadata=_AS_NATIONAL,
                timeout=600,
            )
        else:
            result = await stub.GetClearingRun(
                clearing_service_pb2.GetClearingRunRequest(period=args.period),
                metadata=_AS_NATIONAL,
                timeout=60,
            )
    print_run(result, sys.stdout)
    if args.csv:
        with args.csv.open("w", encoding="utf-8", newline="") as handle:
            write_statements_csv(result, handle)
    return 0


def print_run(run: clearing_service_pb2.ClearingRun, out: IO[str]) -> None:
    """A readable summary: state, hash, statements, positions and transfers."""
    period = run.period
    print(f"period {period.period}: {_STATES.get(period.state, '?')}", file=out)
    if period.pending_treatment_provinces:
        print(f"  waiting for: {', '.join(period.pending_treatment_provinces)}", file=out)
    if period.statement_hash:
        print(f"  statement hash {period.statement_hash}", file=out)
    for statement in run.statements:
        mark = "confirmed" if statement.confirmed else "open"
        print(
            f"  {statement.insured_prov} -> {statement.treatment_prov}: "
            f"{yuan_text(statement.clearing_amount.amount_fen)} ({statement.entry_count} entries, "
            f"{mark})",
            file=out,
        )
    for transfer in run.transfers:
        way = "pays" if transfer.to_central else "receives"
        print(f"  {transfer.province} {way} {yuan_text(transfer.amount.amount_fen)}", file=out)


def write_statements_csv(run: clearing_service_pb2.ClearingRun, out: IO[str]) -> None:
    """The statements as CSV, amounts in yuan with two decimals."""
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for s in run.statements:
        writer.writerow(
            [
                s.period,
                s.insured_prov,
                s.treatment_prov,
                s.entry_count,
                yuan_text(s.medfee_sumamt.amount_fen),
                yuan_text(s.hifp_pay.amount_fen),
                yuan_text(s.critical_illness_pay.amount_fen),
                yuan_text(s.maf_pay.amount_fen),
                yuan_text(s.acct_pay.amount_fen),
                yuan_text(s.clearing_amount.amount_fen),
                "1" if s.confirmed else "0",
            ]
        )
