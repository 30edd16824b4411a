"""The `medsettle` command line."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
import time
from pathlib import Path

import uvloop

from gateway.credentials import issue_credentials
from gateway.envelope import EnvelopeError
from gateway.message_lookup import find_message_trace
from services.bundle_loader import LoadReport, load_bundle
from services.clearing.cli import add_clearing_commands
from services.common.endpoints import EndpointsUnreadable, add_endpoints_argument, read_endpoints
from services.common.log import configure_logging
from services.common.mesh import Mesh, MeshConfig
from services.common.runtime import stop_tasks
from services.demo.bundle import SCALES, write_demo_bundle
from services.loadgen import run_bench
from services.visit_floor import LAYERS as FLOOR_LAYERS
from services.visit_floor import run_floor

_LOGGER = logging.getLogger("medsettle")
# The institution whose credentials `medsettle up --demo` issues and prints.
DEMO_INSTITUTION = "H11010000001"


def _add_up(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = commands.add_parser("up", help="run every service and the gateway on this machine")
    up.add_argument("--data-dir", type=Path, default=Path("var"), help="default: ./var")
    up.add_argument("--base-port", type=int, default=50051, help="first gRPC port (default 50051)")
    up.add_argument("--gateway-port", type=int, default=8080, help="HTTP port (default 8080)")
    up.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    up.add_argument(
        "--postgres-url",
        default="",
        help="PostgreSQL server (postgresql://user@host:port); default: SQLite files in DATA_DIR",
    )
    up.add_argument("--redis-url", default="", help="Redis URL; default: in-process caches")
    up.add_argument("--log-format", choices=["text", "json"], default="text")
    up.add_argument(
        "--demo", action="store_true", help="load a small demo bundle once everything serves"
    )
    up.set_defaults(handler=_up)


def _add_load(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = commands.add_parser("load", help="load a bundle directory through the services")
    load.add_argument("bundle_dir", type=Path, help="directory with regions.csv, persons.csv, ...")
    add_endpoints_argument(load)
    load.set_defaults(handler=_load)


def _add_hospital_credentials(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    issue = commands.add_parser(
        "hospital-credentials",
        help="issue (or re-issue) an institution's gateway credentials: paasid and secret",
    )
    issue.add_argument("fixmedins_code", help="the designated institution, e.g. H11010000001")
    add_endpoints_argument(issue)
    issue.set_defaults(handler=_hospital_credentials)


def _hospital_credentials(args: argparse.Namespace) -> int:
    endpoints = read_endpoints(args.endpoints)
    try:
        issued = uvloop.run(
            issue_credentials(
                args.fixmedins_code, endpoints["catalogue"], endpoints["gateway_database"]
            )
        )
    except EnvelopeError as error:
        print(str(error), file=sys.stderr)
        return 1
    print(json.dumps({"paasid": issued["paasid"], "secret": issued["secret"]}), flush=True)
    return 0


def _add_demo_bundle(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo-bundle", help="write a demo bundle: real areas, made-up institutions and persons"
    )
    demo.add_argument("out_dir", type=Path, help="directory to write (created if missing)")
    demo.add_argument(
        "--scale",
        choices=sorted(SCALES),
        default="small",
        help="small (the demo's, default) or national (1.6 million persons, 50,000 items each)",
    )
    demo.add_argument("--persons", type=int, help="persons and filings instead of the scale's")
    demo.add_argument("--seed", type=int, default=2017, help="same seed, same files (default 2017)")
    demo.set_defaults(handler=_demo_bundle)


def _demo_bundle(args: argparse.Namespace) -> int:
    if args.persons is not None and args.persons < 0:
        print("--persons must not be negative", file=sys.stderr)
        return 2
    started = time.perf_counter()
    directory = write_demo_bundle(
        args.out_dir, scale=SCALES[args.scale], persons=args.persons, seed=args.seed
    )
    for path in sorted(directory.iterdir()):
        if path.suffix == ".json":
            count = len(json.loads(path.read_text(encoding="utf-8")))
        else:
            with path.open("rb") as handle:
                count = sum(1 for _ in handle) - 1  # the header
        print(f"{path.name}: {count:,} {'entries' if path.suffix == '.json' else 'rows'}")
    print(f"written in {time.perf_counter() - started:.1f} s", flush=True)
    return 0


def _add_trace(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lookup = commands.add_parser(
        "trace", help="the trace id (and state) of a hospital message, by inf_refmsgid or msgid"
    )
    lookup.add_argument(
        "reference", help="the inf_refmsgid of an answer, or the msgid of a request (30 chars)"
    )
    add_endpoints_argument(lookup)
    lookup.set_defaults(handler=_trace)


def _trace(args: argparse.Namespace) -> int:
    endpoints = read_endpoints(args.endpoints)
    found = uvloop.run(find_message_trace(args.reference, endpoints["gateway_database"]))
    if found is None:
        print(
            f"the gateway keeps no message answered or sent as {args.reference}; a refusal that "
            "decided nothing is only in the gateway's log (grep its inf_refmsgid)",
            file=sys.stderr,
        )
        return 1
    print(json.dumps(found, indent=2), flush=True)
    return 0


def _add_bench(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = commands.add_parser(
        "bench", help="drive full hospital flows through the gateway of a running mesh"
    )
    load = bench.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=int, default=8, help="visits in flight (default 8)")
    load.add_argument("--rate", type=float, default=0.0, help="visits started per second")
    bench.add_argument("--duration", type=float, default=30.0, help="seconds (default 30)")
    bench.add_argument("--lines", type=int, default=50, help="fee lines per visit (default 50)")
    bench.add_argument("--hospitals", type=int, default=4, help="hospitals used (default 4)")
    bench.add_argument(
        "--settle-only",
        type=int,
        default=0,
        metavar="VISITS",
        help="prepare this many visits untimed, then time 2304 alone on them",
    )
    bench.add_argument(
        "--bundle",
        type=Path,
        default=Path("var/demo-bundle"),
        help="the loaded bundle whose persons are the patients (default var/demo-bundle)",
    )
    add_endpoints_argument(bench)
    bench.set_defaults(handler=_bench)


def _bench(args: argparse.Namespace) -> int:
    endpoints = read_endpoints(args.endpoints)
    tally = uvloop.run(
        run_bench(
            endpoints,
            args.bundle,
            concurrency=args.concurrency,
            rate=args.rate,
            duration_s=args.duration,
            lines=args.lines,
            hospitals=args.hospitals,
            settle_only=args.settle_only,
        )
    )
    return 0 if tally.visits else 1


def _add_floor(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    floor = commands.add_parser(
        "floor",
        help="drive whole visits through the I/O skeleton of the mesh (no software): the floor",
    )
    floor.add_argument("--postgres-url", required=True, help="postgresql://user@host:port")
    floor.add_argument("--redis-url", required=True, help="redis://host:port/db")
    floor.add_argument("--concurrency", type=int, default=8, help="visits in flight (default 8)")
    floor.add_argument("--duration", type=float, default=20.0, help="seconds (default 20)")
    floor.add_argument("--lines", type=int, default=50, help="fee lines per visit (default 50)")
    floor.add_argument(
        "--with",
        dest="layers",
        action="append",
        choices=sorted(FLOOR_LAYERS),
        default=[],
        help="add a layer of the mesh's software: "
        + "; ".join(f"{name}: {what}" for name, what in FLOOR_LAYERS.items()),
    )
    floor.set_defaults(handler=_floor)


def _floor(args: argparse.Namespace) -> int:
    run = uvloop.run(
        run_floor(
            args.postgres_url,
            args.redis_url,
            concurrency=args.concurrency,
            duration_s=args.duration,
            lines=args.lines,
            layers=frozenset(args.layers),
        )
    )
    print(run.report(), flush=True)
    return 0 if run.visits else 1


def _print_report(report: LoadReport) -> None:
    for file_report in report.files:
        print(file_report.line(), flush=True)
    if not report.files:
        print("no bundle files found", flush=True)
    print(f"total {report.seconds:.2f} s", flush=True)


def _load(args: argparse.Namespace) -> int:
    if not args.bundle_dir.is_dir():
        print(f"{args.bundle_dir} is not a directory", file=sys.stderr)
        return 2
    endpoints = read_endpoints(args.endpoints)
    report = uvloop.run(load_bundle(args.bundle_dir, endpoints))
    _print_report(report)
    return 0 if report.ok else 1


async def _start_mesh(mesh: Mesh, demo: bool) -> None:
    endpoints = await mesh.start()
    if demo:
        bundle_dir = write_demo_bundle(mesh.config.data_dir / "demo-bundle")
        print(f"loading the demo bundle from {bundle_dir}", flush=True)
        _print_report(await load_bundle(bundle_dir, endpoints))
        issued = await issue_credentials(
            DEMO_INSTITUTION, endpoints["catalogue"], endpoints["gateway_database"]
        )
        print(f"demo institution credentials: {json.dumps(issued)}", flush=True)
    print(json.dumps(endpoints, indent=2), flush=True)
    print(f"endpoints written to {mesh.endpoints_path}; Ctrl-C stops the mesh", flush=True)


async def _run_mesh(config: MeshConfig, demo: bool) -> int:
    mesh = Mesh(config)
    # Signals are handled from the first moment: a Ctrl-C or SIGTERM during start-up or the
    # demo load used to end this process and leave the children (own session) running.
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_requested.set)
    stop_task = asyncio.ensure_future(stop_requested.wait())
    try:
        start_task = asyncio.ensure_future(_start_mesh(mesh, demo))
        await asyncio.wait({stop_task, start_task}, return_when=asyncio.FIRST_COMPLETED)
        if not start_task.done():
            await stop_tasks([start_task])
            _LOGGER.info("stop requested during start-up")
            return 0
        start_task.result()
        crash_task = asyncio.ensure_future(mesh.wait_for_exit())
        await asyncio.wait({stop_task, crash_task}, return_when=asyncio.FIRST_COMPLETED)
        crash_task.cancel()
        if stop_task.done():
            return 0
        _LOGGER.error("%s exited unexpectedly; stopping the mesh", crash_task.result())
        return 1
    finally:
        stop_task.cancel()
        _LOGGER.info("stopped: %s", await mesh.stop())


def _up(args: argparse.Namespace) -> int:
    config = MeshConfig(
        data_dir=args.data_dir,
        base_port=args.base_port,
        gateway_port=args.gateway_port,
        host=args.host,
        postgres_url=args.postgres_url,
        redis_url=args.redis_url,
        log_json=args.log_format == "json",
    )
    return uvloop.run(_run_mesh(config, args.demo))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(prog="medsettle", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_up(commands)
    _add_load(commands)
    _add_hospital_credentials(commands)
    add_clearing_commands(commands)
    _add_bench(commands)
    _add_floor(commands)
    _add_demo_bundle(commands)
    _add_trace(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `medsettle` console script."""
    configure_logging("medsettle", json_lines=False)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except EndpointsUnreadable as error:  # any command given a bad --endpoints
        print(error, file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: what was started has been stopped on the way out
        print("interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
