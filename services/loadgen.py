"""`medsettle bench`: full hospital flows through the gateway, and the bare echo chain beside them.

Each virtual HIS signs in (9001) and then, visit after visit, runs 1101 → 2401 → 2301 (N fee
lines) → 2304 for demo persons with a long-term filing to its city, every request signed with
the hospital's credentials. Load is closed (`--concurrency` visits in flight) or open (`--rate`
visits started per second). At the end it prints settlements/s, p50/p95/p99 per transaction and
the errors, then drives a 4-process gRPC echo chain (services.echo_chain) at the same
concurrency and prints its latency and the ratio of one mesh transaction to one bare 4-hop call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import grpc
from sqlalchemy.engine import make_url
from tqdm import tqdm

from gateway.credentials import issue_credentials
from gateway.his_client import AiohttpHis, HisMessages
from services.common.ports import free_port_block
from services.common.values import SHANGHAI
from services.demo.bundle import DemoPatient, long_term_patients
from services.echo_chain import METHOD

_CPU_SECONDS = re.compile(rb"^process_cpu_seconds_total (\S+)$", re.MULTILINE)
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_THIS_MACHINE = {"127.0.0.1", "localhost", "::1", None}
"""Hosts (None: a Unix socket) whose PostgreSQL runs here, where /proc shows its backends."""

TRANSACTIONS = ("1101", "2401", "2301", "2304")
_CODES = ("XD0000", "XD0001", "XD0002", "XD0003", "XS0003", "XC0000")


@dataclass
class Tally:
    """Latencies (seconds) per infno, and errors by message."""

    seconds: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    visits: int = 0

    def percentiles(self, infno: str) -> tuple[float, float, float]:
        """p50, p95, p99 in milliseconds."""
        values = self.seconds.get(infno, [])
        if len(values) < 2:
            single = values[0] * 1000 if values else 0.0
            return single, single, single
        cuts = statistics.quantiles(values, n=100, method="inclusive")
        return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


def _fee_lines(mdtrt_id: str, psn_no: str, count: int, now: str) -> list[dict[str, Any]]:
    lines = []
    for serial in range(1, count + 1):
        cnt, price = 1 + serial % 3, Decimal(5 + serial % 20).quantize(Decimal("0.01"))
        lines.append(
            {
                "feedetl_sn": str(serial),
                "mdtrt_id": mdtrt_id,
                "psn_no": psn_no,
                "fee_ocur_time": now,
                "med_list_codg": _CODES[serial % len(_CODES)],
                "medins_list_codg": f"OWN-{serial}",
                "det_item_fee_sumamt": price * cnt,
                "cnt": Decimal(cnt),
                "pric": price,
            }
        )
    return lines


class Visitor:
    """One virtual HIS of one hospital, running visits one after another."""

    def __init__(self, his: HisMessages, tally: Tally, lines: int) -> None:
        self._his = his
        self._tally = tally
        self._lines = lines
        self._visits = itertools.count(1)

    async def _call(self, infno: str, payload: dict[str, Any]) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            reply = await self._his.call(infno, payload)
        except (aiohttp.ClientError, TimeoutError, AssertionError) as error:
            self._tally.errors[f"{infno}: {type(error).__name__}"] += 1
            return None
        self._tally.seconds[infno].append(time.perf_counter() - started)
        if reply["infcode"] != 0:
            self._tally.errors[f"{infno}: {reply['err_msg'][:80]}"] += 1
            return None
        output: dict[str, Any] = reply["output"]
        return output

    async def prepare(self, patient: DemoPatient) -> dict[str, Any] | None:
        """1101, 2401 and 2301: a visit ready to settle (the 2304 input), or None if refused."""
        now = f"{dt.datetime.now(SHANGHAI):%Y-%m-%d %H:%M:%S}"  # a hospital's local time
        credential = {"mdtrt_cert_type": "02", "mdtrt_cert_no": patient.certno}
        person = await self._call("1101", {"data": credential})
        if person is None:
            return None
        psn_no = person["baseinfo"]["psn_no"]
        number = f"B{os.getpid()}-{id(self) % 100000}-{next(self._visits)}"
        admission = {
            "mdtrtinfo": {
                "psn_no": psn_no,
                "insutype": patient.insutype,
                "begntime": now,
                **credential,
                "med_type": "21",
                "ipt_no": number,
            }
        }
        admitted = await self._call("2401", admission)
        if admitted is None:
            return None
        mdtrt_id = admitted["result"]["mdtrt_id"]
        lines = _fee_lines(mdtrt_id, psn_no, self._lines, now)
        if await self._call("2301", {"feedetail": lines}) is None:
            return None
        total = sum((line["det_item_fee_sumamt"] for line in lines), Decimal("0.00"))
        return {
            "data": {
                "psn_no": psn_no,
                **credential,
                "medfee_sumamt": total,
                "psn_setlway": "01",
                "mdtrt_id": mdtrt_id,
                "acct_used_flag": "0",
                "insutype": patient.insutype,
            }
        }

    async def settle(self, prepared: dict[str, Any]) -> bool:
        """2304 of a prepared visit."""
        settled = await self._call("2304", prepared) is not None
        self._tally.visits += settled
        return settled

    async def visit(self, patient: DemoPatient) -> bool:
        """One full visit; False when a step was refused."""
        prepared = await self.prepare(patient)
        return prepared is not None and await self.settle(prepared)


async def _drive(
    visitors: dict[str, Visitor],
    by_hospital: dict[str, list[DemoPatient]],
    *,
    concurrency: int,
    rate: float,
    duration_s: float,
) -> None:
    hospitals = list(by_hospital)
    deadline = time.monotonic() + duration_s
    progress = tqdm(total=int(duration_s), unit="s", desc="bench", leave=False)

    async def one() -> None:
        hospital = random.choice(hospitals)
        await visitors[hospital].visit(random.choice(by_hospital[hospital]))

    async def closed_loop() -> None:
        while time.monotonic() < deadline:
            await one()

    async def ticker() -> None:
        shown = 0
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            elapsed = int(duration_s - (deadline - time.monotonic()))
            progress.update(max(0, elapsed - shown))
            shown = max(shown, elapsed)

    tick = asyncio.create_task(ticker())
    if rate > 0:
        running: set[asyncio.Task[None]] = set()
        interval = 1 / rate
        next_start = time.monotonic()
        while time.monotonic() < deadline:
            task = asyncio.create_task(one())
            running.add(task)
            task.add_done_callback(running.discard)
            next_start += interval
            await asyncio.sleep(max(0.0, next_start - time.monotonic()))
        await asyncio.gather(*running)
    else:
        await asyncio.gather(*(closed_loop() for _ in range(concurrency)))
    tick.cancel()
    progress.close()


async def echo_chain(concurrency: int, duration_s: float, payload: int = 2048) -> list[float]:
    """Latencies (seconds) of calls through a 4-process gRPC echo chain."""
    base = free_port_block(4)
    ports = list(range(base, base + 4))
    processes = []
    for index, port in enumerate(ports):
        next_hop = f"127.0.0.1:{ports[index + 1]}" if index + 1 < len(ports) else ""
        args = [sys.executable, "-m", "services.echo_chain", "--port", str(port)]
        processes.append(subprocess.Popen([*args, "--next", next_hop] if next_hop else args))
    seconds: list[float] = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{ports[0]}") as channel:
            call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(METHOD)
            for _ in range(100):
                try:
                    await call(b"ping", timeout=1)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.1)
            body = os.urandom(payload)
            deadline = time.monotonic() + duration_s

            async def loop() -> None:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    await call(body, timeout=5)
                    seconds.append(time.perf_counter() - started)

            await asyncio.gather(*(loop() for _ in range(concurrency)))
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=10)
    return seconds


async def _prepare(
    visitors: dict[str, Visitor],
    by_hospital: dict[str, list[DemoPatient]],
    *,
    concurrency: int,
    visits: int,
) -> list[tuple[Visitor, dict[str, Any]]]:
    """Prepare `visits` visits up to their settlement (1101, 2401, 2301), `concurrency` at a
    time."""
    hospitals = list(by_hospital)
    prepared_visits: list[tuple[Visitor, dict[str, Any]]] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def prepare_one(index: int) -> None:
        hospital = hospitals[index % len(hospitals)]
        async with semaphore:
            prepared = await visitors[hospital].prepare(random.choice(by_hospital[hospital]))
        if prepared is not None:
            prepared_visits.append((visitors[hospital], prepared))

    await asyncio.gather(*(prepare_one(index) for index in range(visits)))
    return prepared_visits


async def _settle_all(
    prepared_visits: list[tuple[Visitor, dict[str, Any]]], *, concurrency: int
) -> float:
    """Settle prepared visits `concurrency` at a time; the seconds it took."""
    queue: asyncio.Queue[tuple[Visitor, dict[str, Any]]] = asyncio.Queue()
    for item in prepared_visits:
        queue.put_nowait(item)
    started = time.perf_counter()

    async def worker() -> None:
        while not queue.empty():
            visitor, prepared = queue.get_nowait()
            await visitor.settle(prepared)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started


async def _cpu_seconds(
    session: aiohttp.ClientSession, endpoints: dict[str, str]
) -> dict[str, float]:
    """Each mesh process's CPU seconds so far, read from its Prometheus endpoint."""
    found: dict[str, float] = {}
    for key, url in endpoints.items():
        if not key.endswith("_metrics"):
            continue
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=5)) as reply:
                content = await reply.read()
        except (aiohttp.ClientError, TimeoutError):
            continue  # a process without metrics is left out of the CPU figures
        match = _CPU_SECONDS.search(content)
        if match:
            found[key.removesuffix("_metrics")] = float(match.group(1))
    return found


def mesh_database_prefix(endpoints: dict[str, str]) -> str | None:
    """The name prefix of the mesh's PostgreSQL databases (`medsettle_`) when they are on this
    machine, else None (SQLite, or a server elsewhere whose processes this one cannot see)."""
    url = make_url(endpoints.get("gateway_database", "sqlite://"))
    if url.get_backend_name() != "postgresql" or url.host not in _THIS_MACHINE:
        return None
    name = url.database or ""
    return name.removesuffix("gateway") if name.endswith("_gateway") else None


def postgres_cpu_seconds(prefix: str, proc: Path = Path("/proc")) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving a database named `prefix...`, by
    process id. A backend's title is `postgres: [cluster: ]user database client state`."""
    found: dict[int, float] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not title.startswith("postgres:") or not any(
                word.startswith(prefix) for word in title.split()[1:]
            ):
                continue
            found[int(entry.name)] = _stat_cpu_seconds(entry / "stat")
        except (FileNotFoundError, ProcessLookupError):
            continue  # ended while being read
    return found


def process_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """CPU seconds (user and system) a process of this machine has spent so far."""
    return _stat_cpu_seconds(proc / str(pid) / "stat")


def _stat_cpu_seconds(stat: Path) -> float:
    # Fields after the command name, which is in parentheses and may hold spaces: utime and
    # stime are the 12th and 13th of them (proc(5)), in clock ticks.
    fields = stat.read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def postgres_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds the backends spent between two readings; a backend that started in between
    counts whole, one that ended in between is lost (the services' pools keep theirs open)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def _cpu_line(
    before: dict[str, float],
    after: dict[str, float],
    own_s: float,
    settlements: int,
    postgres_s: float | None = None,
) -> str:
    """CPU milliseconds per settlement of each mesh process over the measured phase, then
    PostgreSQL's for the mesh's databases (`postgres_s`, when it runs on this machine) and this
    load generator's own (`own_s`), both of which take their share of the same cores."""
    spent = {
        name: (after[name] - before[name]) * 1000 / settlements
        for name in sorted(after)
        if name in before
    }
    parts = ", ".join(f"{name} {ms:.1f}" for name, ms in spent.items())
    if postgres_s is None:
        postgres = "PostgreSQL not on this machine or not used, Redis not counted"
    else:
        postgres = (
            f"PostgreSQL {postgres_s * 1000 / settlements:.1f} for the mesh's databases, "
            "Redis not counted"
        )
    return (
        f"CPU per settlement (ms): {parts}; together {sum(spent.values()):.1f} "
        f"({postgres}); this load generator {own_s * 1000 / settlements:.1f}"
    )


async def run_bench(
    endpoints: dict[str, str],
    bundle: Path,
    *,
    concurrency: int,
    rate: float,
    duration_s: float,
    lines: int,
    hospitals: int,
    settle_only: int = 0,
) -> Tally:
    """Drive the mesh, print the figures and the comparison with the echo chain."""
    found = long_term_patients(bundle)
    by_hospital: dict[str, list[DemoPatient]] = defaultdict(list)
    for patient in found:
        by_hospital[patient.hospital].append(patient)
    chosen = dict(sorted(by_hospital.items(), key=lambda item: -len(item[1]))[:hospitals])
    tally = Tally()
    database_prefix = mesh_database_prefix(endpoints)
    connector = aiohttp.TCPConnector(limit=max(concurrency, 16) * 2)
    async with aiohttp.ClientSession(
        endpoints["gateway"], connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as client:
        visitors = {}
        for hospital in chosen:
            issued = await issue_credentials(
                hospital, endpoints["catalogue"], endpoints["gateway_database"]
            )
            his = AiohttpHis(client, hospital, issued["paasid"], issued["secret"])
            his.area = hospital[1:7]
            await his.sign_in()
            visitors[hospital] = Visitor(his, tally, lines)
        if settle_only:
            prepared = await _prepare(visitors, chosen, concurrency=concurrency, visits=settle_only)
            cpu_before = await _cpu_seconds(client, endpoints)
            postgres_before = postgres_cpu_seconds(database_prefix) if database_prefix else {}
            own_before = time.process_time()
            elapsed = await _settle_all(prepared, concurrency=concurrency)
        else:
            cpu_before = await _cpu_seconds(client, endpoints)
            postgres_before = postgres_cpu_seconds(database_prefix) if database_prefix else {}
            own_before = time.process_time()
            started = time.perf_counter()
            await _drive(
                visitors, chosen, concurrency=concurrency, rate=rate, duration_s=duration_s
            )
            elapsed = time.perf_counter() - started
        own_s = time.process_time() - own_before
        postgres_s = (
            postgres_spent(postgres_before, postgres_cpu_seconds(database_prefix))
            if database_prefix
            else None
        )
        cpu_after = await _cpu_seconds(client, endpoints)
    mode = f"rate {rate}/s" if rate > 0 else f"concurrency {concurrency}"
    if settle_only:
        mode += f", 2304 alone on {settle_only} prepared visits"
    timing = "" if settle_only else f", {duration_s:.0f} s"
    print(
        f"{mode}{timing}, {lines} lines per visit, {len(chosen)} hospitals, "
        f"{sum(len(p) for p in chosen.values())} patients"
    )
    print(f"settlements (2304): {tally.visits} in {elapsed:.1f} s = {tally.visits / elapsed:.1f}/s")
    for infno in TRANSACTIONS:
        p50, p95, p99 = tally.percentiles(infno)
        count = len(tally.seconds.get(infno, []))
        print(
            f"  {infno}: {count:6d} calls  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms"
        )
    if tally.visits and cpu_after:
        print(_cpu_line(cpu_before, cpu_after, own_s, tally.visits, postgres_s))
    print(f"errors: {sum(tally.errors.values())}")
    for message, count in tally.errors.most_common(5):
        print(f"  {count:6d}  {message}")
    echo = await echo_chain(concurrency, min(duration_s, 10.0))
    cuts = statistics.quantiles(echo, n=100, method="inclusive") if len(echo) > 1 else [0.0] * 99
    echo_p50 = cuts[49] * 1000
    print(
        f"bare 4-hop gRPC echo chain: {len(echo) / min(duration_s, 10.0):.0f} calls/s, "
        f"p50 {echo_p50:.2f} ms, p99 {cuts[98] * 1000:.2f} ms"
    )
    settle_p50 = tally.percentiles("2304")[0]
    if echo_p50 > 0:
        print(f"ratio 2304 p50 / echo-chain p50: {settle_p50 / echo_p50:.1f}x")
    return tally
