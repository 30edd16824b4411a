"""The I/O skeleton of a visit: what the mesh's round trips cost with no software around them.

`medsettle floor` starts four processes shaped like the gateway, settlement, identity and
catalogue, drives whole visits (1101, 2401, 2301 with 50 lines, 2304) through them, and prints
visits a second and the CPU each process and PostgreSQL spent per visit. Each visit makes the
round trips a visit through the mesh makes, counted with pg_stat_statements and the services'
code (twelfth round of docs/performance.md), with payloads of the same sizes:

- each HTTP message: one Redis SET NX (the nonce), an INSERT of the message and an UPDATE with
  its answer, and one gRPC call (1101 to identity, the others to settlement);
- identity: one SELECT per call (1101, and the admission's credential check);
- catalogue: two Redis commands per classification (the version, then the items);
- settlement: an admission reads the request id and the person's filings and INSERTs the visit
  (3 statements) after asking identity; an upload reads the visit with its lines, asks catalogue,
  then in one transaction locks the visit, reads the lines and inserts 50 (6 statements); a
  settlement reads an earlier one, then in one transaction locks the visit, reads the lines and
  the person's year, and writes the year, visit, settlement and ledger event (8 statements).

Left out: the outbox relay and clearing (about 1 ms of a visit), filing's change stream and
the institution lookup (remembered for 5 s). Everything else a service does is left out too:
SQLAlchemy (statements go to asyncpg directly), protobuf, interceptors, tracing, logging,
metrics, signatures and the rules. What the mesh spends beyond this skeleton is its software.

`--with LAYER` (LAYERS) puts one layer of that software back, the same code the services use,
so that each layer's cost per visit can be read against the bare skeleton's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import re
import secrets
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import asyncpg
import grpc
import redis.asyncio as redis
import uvicorn
import uvloop
from opentelemetry.trace import SpanKind, Tracer
from sqlalchemy import TextClause, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from services.common.channels import make_channel
from services.common.db import autocommit_engine, make_engine
from services.common.driver import keep_session
from services.common.interceptors import ServerCallInterceptor
from services.common.metrics import ProcessMetrics
from services.common.ports import free_port_block
from services.common.supervision import exit_with_parent
from services.common.tracing import install_tracer_provider, make_tracer_provider, trace_database
from services.loadgen import postgres_cpu_seconds, postgres_spent, process_cpu_seconds

ROLES = ("identity", "catalogue", "settlement", "gateway")
DATABASE = "medsettle_visit_floor"
_SERVICE = "medsettle.bench.Floor"
# Bytes of each message as the gateway stores them in a run of `medsettle bench` (request,
# answer), and of one classified fee line.
_SIZES = {"1101": (439, 560), "2401": (564, 209), "2301": (11_898, 19_096), "2304": (591, 1_308)}
_CLASSIFIED_LINE = 47
_PATIENTS = 24
_SCHEMA = """
CREATE TABLE messages (fixmedins_code varchar(30), msgid varchar(30), infno varchar(4),
    state int, request bytea, response bytea, created_at timestamptz,
    PRIMARY KEY (fixmedins_code, msgid));
CREATE TABLE persons (psn_no varchar(30) PRIMARY KEY, certno varchar(30) UNIQUE, facts bytea);
CREATE TABLE filings (filing_id varchar(21) PRIMARY KEY, psn_no varchar(30), area varchar(6));
CREATE INDEX ix_filings_psn_no ON filings (psn_no);
CREATE TABLE visits (mdtrt_id varchar(30) PRIMARY KEY, request_id varchar(64) UNIQUE,
    psn_no varchar(30), status int, facts bytea, setl_id varchar(30));
CREATE TABLE fee_lines (id bigserial PRIMARY KEY, mdtrt_id varchar(30) REFERENCES visits,
    feedetl_sn varchar(30), status int, content_hash varchar(64), classified bytea,
    amount_fen bigint);
CREATE UNIQUE INDEX uq_fee_lines_live ON fee_lines (mdtrt_id, feedetl_sn) WHERE status = 1;
CREATE TABLE person_years (psn_no varchar(30), year int, burden_fen bigint,
    PRIMARY KEY (psn_no, year));
CREATE TABLE settlements (setl_id varchar(30) PRIMARY KEY,
    mdtrt_id varchar(30) REFERENCES visits, summary bytea);
CREATE TABLE outbox (id bigserial PRIMARY KEY, event bytea, delivered_at timestamptz);
"""

Handler = Callable[[bytes, Any], Awaitable[bytes]]
Row = Mapping[Any, Any]
# What can be added to the skeleton, one layer of the mesh's software at a time.
LAYERS = {
    "sqlalchemy": "statements through SQLAlchemy Core on the mesh's engine settings",
    "telemetry": "the mesh's interceptors, spans (not recorded, no exporter), RPC metrics and "
    "channel options",
}


def _raw(value: bytes) -> bytes:
    return value


class _Statements(Protocol):
    """Where the skeleton's SQL runs: asyncpg directly, or SQLAlchemy (layer `sqlalchemy`)."""

    async def rows(self, sql: str, *args: Any) -> Sequence[Row]: ...

    async def run(self, sql: str, *args: Any) -> None: ...

    def transaction(self) -> AbstractAsyncContextManager[_Statements]: ...


class _Asyncpg:
    def __init__(self, pool: Any, connection: Any = None) -> None:
        self._pool = pool
        self._connection = connection

    async def rows(self, sql: str, *args: Any) -> Sequence[Row]:
        if self._connection is not None:
            found: Sequence[Row] = await self._connection.fetch(sql, *args)
            return found
        async with self._pool.acquire() as connection:
            found = await connection.fetch(sql, *args)
            return found

    async def run(self, sql: str, *args: Any) -> None:
        if self._connection is not None:
            await self._connection.execute(sql, *args)
            return
        async with self._pool.acquire() as connection:
            await connection.execute(sql, *args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Statements]:
        async with self._pool.acquire() as connection, connection.transaction():
            yield _Asyncpg(self._pool, connection)


class _Sqlalchemy:
    """Single statements on the autocommit engine, transactions on the engine, as the mesh."""

    def __init__(self, engine: AsyncEngine, connection: AsyncConnection | None = None) -> None:
        self._engine = engine
        self._autocommit = autocommit_engine(engine)
        self._connection = connection

    async def rows(self, sql: str, *args: Any) -> Sequence[Row]:
        if self._connection is not None:
            result = await self._connection.execute(_text(sql), _named(args))
            return result.mappings().all()
        async with self._autocommit.connect() as connection:
            result = await connection.execute(_text(sql), _named(args))
            return result.mappings().all()

    async def run(self, sql: str, *args: Any) -> None:
        if self._connection is not None:
            await self._connection.execute(_text(sql), _named(args))
            return
        async with self._autocommit.begin() as connection:
            await connection.execute(_text(sql), _named(args))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_Statements]:
        async with self._engine.begin() as connection:
            yield _Sqlalchemy(self._engine, connection)


@functools.cache
def _text(sql: str) -> TextClause:
    """asyncpg's $1, $2 ... as SQLAlchemy's named parameters, built once per statement."""
    return text(re.sub(r"\$(\d+)", r":p\1", sql))


def _named(args: Sequence[Any]) -> dict[str, Any]:
    return {f"p{index}": value for index, value in enumerate(args, start=1)}


@dataclass(frozen=True)
class _Wiring:
    role: str
    database_url: str  # postgresql://...
    redis_url: str
    key_prefix: str  # of the skeleton's Redis keys: its database's name
    ports: dict[str, int]
    layers: frozenset[str]

    @functools.cached_property
    def tracer(self) -> Tracer:
        provider = make_tracer_provider(self.role)
        if "telemetry" in self.layers:
            install_tracer_provider(provider)
        return provider.get_tracer(self.role)

    async def statements(self) -> _Statements:
        if "sqlalchemy" in self.layers:
            url = self.database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
            engine = make_engine(url, pool_size=8)
            if "telemetry" in self.layers:
                trace_database(engine, self.tracer)
            return _Sqlalchemy(engine)
        pool = await asyncpg.create_pool(
            self.database_url, min_size=2, max_size=8, reset=keep_session
        )
        return _Asyncpg(pool)

    def caller(self, role: str, method: str) -> Callable[[bytes], Awaitable[bytes]]:
        target = f"127.0.0.1:{self.ports[role]}"
        if "telemetry" in self.layers:
            channel = make_channel(target, tracer=self.tracer, default_timeout_s=5)
        else:
            channel = grpc.aio.insecure_channel(target)
        call = channel.unary_unary(
            f"/{_SERVICE}/{method}", request_serializer=_raw, response_deserializer=_raw
        )

        async def invoke(request: bytes) -> bytes:
            answer: bytes = await call(request, timeout=5)
            return answer

        return invoke

    async def serve(self, handlers: dict[str, Handler]) -> None:
        interceptors = (
            [ServerCallInterceptor(self.tracer, "floor", ProcessMetrics(self.role))]
            if "telemetry" in self.layers
            else []
        )
        server = grpc.aio.server(interceptors=interceptors)
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    _SERVICE,
                    {
                        name: grpc.unary_unary_rpc_method_handler(
                            handler, request_deserializer=_raw, response_serializer=_raw
                        )
                        for name, handler in handlers.items()
                    },
                ),
            )
        )
        server.add_insecure_port(f"127.0.0.1:{self.ports[self.role]}")
        await server.start()
        await server.wait_for_termination()


async def _identity(wiring: _Wiring) -> None:
    database = await wiring.statements()

    async def person(request: bytes, context: Any) -> bytes:
        certno = json.loads(request)["certno"]
        (row,) = await database.rows("SELECT psn_no, facts FROM persons WHERE certno = $1", certno)
        return json.dumps({"psn_no": row["psn_no"], "facts": row["facts"].hex()}).encode()

    await wiring.serve({"Person": person})


async def _catalogue(wiring: _Wiring) -> None:
    cache = redis.Redis.from_url(wiring.redis_url)
    keys = [f"{wiring.key_prefix}:item:{index}" for index in range(50)]

    async def classify(request: bytes, context: Any) -> bytes:
        await cache.get(f"{wiring.key_prefix}:version")
        items = await cache.mget(keys[: json.loads(request)["lines"]])
        return b"".join(item for item in items if isinstance(item, bytes))

    await wiring.serve({"Classify": classify})


async def _settlement(wiring: _Wiring) -> None:
    database = await wiring.statements()
    verify = wiring.caller("identity", "Person")
    classify = wiring.caller("catalogue", "Classify")

    async def admit(request: bytes, context: Any) -> bytes:
        message = json.loads(request)
        await database.rows("SELECT * FROM visits WHERE request_id = $1", message["msgid"])
        person = json.loads(await verify(request))
        await database.rows("SELECT * FROM filings WHERE psn_no = $1", person["psn_no"])
        await database.run(
            "INSERT INTO visits VALUES ($1, $2, $3, 1, $4, NULL)",
            message["mdtrt_id"],
            message["msgid"],
            person["psn_no"],
            secrets.token_bytes(400),
        )
        return _padded({"mdtrt_id": message["mdtrt_id"]}, _SIZES["2401"][1] // 2)

    async def upload(request: bytes, context: Any) -> bytes:
        message = json.loads(request)
        mdtrt_id, count = message["mdtrt_id"], len(message["lines"])
        await database.rows(
            "SELECT v.mdtrt_id, f.feedetl_sn, f.content_hash FROM visits v "
            "LEFT JOIN fee_lines f ON f.mdtrt_id = v.mdtrt_id AND f.status = 1 "
            "WHERE v.mdtrt_id = $1",
            mdtrt_id,
        )
        classified = await classify(json.dumps({"lines": count}).encode())
        line = classified[:_CLASSIFIED_LINE]
        async with database.transaction() as transaction:
            await transaction.rows("SELECT * FROM visits WHERE mdtrt_id = $1 FOR UPDATE", mdtrt_id)
            await transaction.rows(
                "SELECT feedetl_sn, content_hash FROM fee_lines WHERE mdtrt_id = $1 AND status = 1",
                mdtrt_id,
            )
            await transaction.run(
                "INSERT INTO fee_lines (mdtrt_id, feedetl_sn, status, content_hash, classified, "
                "amount_fen) SELECT $1, sn, 1, hash, line, fen FROM unnest(CAST($2 AS varchar[]), "
                "CAST($3 AS varchar[]), CAST($4 AS bytea[]), CAST($5 AS bigint[])) "
                "AS t(sn, hash, line, fen)",
                mdtrt_id,
                [item["feedetl_sn"] for item in message["lines"]],
                ["0" * 64] * count,
                [line] * count,
                [1230] * count,
            )
        return _padded({"lines": count}, _SIZES["2301"][1] // 2)

    async def settle(request: bytes, context: Any) -> bytes:
        mdtrt_id = json.loads(request)["mdtrt_id"]
        await database.rows("SELECT * FROM settlements WHERE mdtrt_id = $1", mdtrt_id)
        async with database.transaction() as transaction:
            (visit,) = await transaction.rows(
                "SELECT * FROM visits WHERE mdtrt_id = $1 FOR UPDATE", mdtrt_id
            )
            lines = await transaction.rows(
                "SELECT classified FROM fee_lines WHERE mdtrt_id = $1 AND status = 1", mdtrt_id
            )
            await transaction.rows(
                "SELECT * FROM person_years WHERE psn_no = $1 AND year = 2026 FOR UPDATE",
                visit["psn_no"],
            )
            await transaction.run(
                "INSERT INTO person_years VALUES ($1, 2026, 0) ON CONFLICT DO NOTHING",
                visit["psn_no"],
            )
            setl_id = secrets.token_hex(15)
            await transaction.run(
                "WITH year AS (UPDATE person_years SET burden_fen = burden_fen + 1 "
                "WHERE psn_no = $1 AND year = 2026), visit AS (UPDATE visits SET "
                "setl_id = $3, status = 2 WHERE mdtrt_id = $2), event AS (INSERT INTO "
                "outbox (event) VALUES ($4)) INSERT INTO settlements VALUES ($3, $2, $4)",
                visit["psn_no"],
                mdtrt_id,
                setl_id,
                secrets.token_bytes(600),
            )
        return _padded({"setl_id": setl_id, "lines": len(lines)}, _SIZES["2304"][1] // 2)

    await wiring.serve({"Admit": admit, "Upload": upload, "Settle": settle})


def _padded(fields: dict[str, Any], size: int) -> bytes:
    """`fields` as JSON grown to about `size` bytes."""
    return json.dumps({**fields, "padding": "x" * max(0, size - 40)}).encode()


async def _gateway(wiring: _Wiring) -> None:
    database = await wiring.statements()
    cache = redis.Redis.from_url(wiring.redis_url)
    upstream = {
        "1101": wiring.caller("identity", "Person"),
        "2401": wiring.caller("settlement", "Admit"),
        "2301": wiring.caller("settlement", "Upload"),
        "2304": wiring.caller("settlement", "Settle"),
    }
    tracer = wiring.tracer

    async def answer(body: bytes) -> bytes:
        message = json.loads(body)
        infno, msgid = message["infno"], message["msgid"]
        await cache.set(f"{wiring.key_prefix}:nonce:{msgid}", "1", nx=True, ex=600)
        await database.run(
            "INSERT INTO messages VALUES ('H1', $1, $2, 0, $3, NULL, now()) ON CONFLICT DO NOTHING",
            msgid,
            infno,
            body,
        )
        output = await upstream[infno](body)
        encoded = json.dumps(
            {"infcode": 0, "inf_refmsgid": msgid, "output": output.decode()}
        ).encode()
        await database.run(
            "UPDATE messages SET state = 1, response = $2 "
            "WHERE fixmedins_code = 'H1' AND msgid = $1 AND state = 0",
            msgid,
            encoded,
        )
        return encoded

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        more = True
        while more:
            part = await receive()
            body += part.get("body", b"")
            more = part.get("more_body", False)
        if "telemetry" in wiring.layers:
            with tracer.start_as_current_span("gateway", kind=SpanKind.SERVER):
                encoded = await answer(body)
        else:
            encoded = await answer(body)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": encoded})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=wiring.ports["gateway"],
        loop="none",
        http="httptools",
        log_config=None,
        access_log=False,
        lifespan="off",
    )
    await uvicorn.Server(config).serve()


_ROLE_MAINS = {
    "identity": _identity,
    "catalogue": _catalogue,
    "settlement": _settlement,
    "gateway": _gateway,
}


@dataclass(frozen=True)
class FloorRun:
    """What `run_floor` measured."""

    visits: int
    seconds: float
    cpu_ms_per_visit: dict[str, float]  # each role, "postgres" and "load generator"
    layers: frozenset[str]

    def report(self) -> str:
        """The lines `medsettle floor` prints."""
        parts = ", ".join(f"{name} {ms:.1f}" for name, ms in self.cpu_ms_per_visit.items())
        total = sum(self.cpu_ms_per_visit.values())
        added = " + ".join(sorted(self.layers)) or "no software"
        return (
            f"visit floor ({added}): {self.visits} visits in {self.seconds:.1f} s = "
            f"{self.visits / self.seconds:.1f}/s\n"
            f"CPU per visit (ms): {parts}; together {total:.1f}"
        )


async def _prepare_database(postgres_url: str, redis_url: str, database: str) -> str:
    """Create the skeleton's database afresh with its patients; its URL."""
    admin = await asyncpg.connect(f"{postgres_url.rstrip('/')}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{database}"')
    finally:
        await admin.close()
    database_url = f"{postgres_url.rstrip('/')}/{database}"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(_SCHEMA)
        await connection.executemany(
            "INSERT INTO persons VALUES ($1, $2, $3)",
            [(f"P{index}", f"C{index}", secrets.token_bytes(300)) for index in range(_PATIENTS)],
        )
        await connection.executemany(
            "INSERT INTO filings VALUES ($1, $2, '110000')",
            [(f"F{index}", f"P{index}") for index in range(_PATIENTS)],
        )
    finally:
        await connection.close()
    cache = redis.Redis.from_url(redis_url)
    try:
        await cache.set(f"{database}:version", "1")
        await cache.mset(
            {f"{database}:item:{index}": b"c" * _CLASSIFIED_LINE for index in range(50)}
        )
    finally:
        await cache.aclose()
    return database_url


async def _drop_database(postgres_url: str, redis_url: str, database: str) -> None:
    admin = await asyncpg.connect(f"{postgres_url.rstrip('/')}/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    finally:
        await admin.close()
    cache = redis.Redis.from_url(redis_url)
    try:
        keys = [key async for key in cache.scan_iter(f"{database}:*")]
        if keys:
            await cache.delete(*keys)
    finally:
        await cache.aclose()


def _messages(visit: str, lines: int) -> list[bytes]:
    """The four requests of one visit, each of its measured size."""
    certno = f"C{int(visit.rpartition('v')[2]) % _PATIENTS}"
    fee_lines = [
        {"feedetl_sn": f"{visit}-{index}", "det_item_fee_sumamt": "12.30", "pad": "p" * 170}
        for index in range(lines)
    ]
    bodies = []
    for infno, (size, _) in _SIZES.items():
        message: dict[str, Any] = {
            "infno": infno,
            "msgid": secrets.token_hex(15),
            "mdtrt_id": visit,
            "certno": certno,
        }
        if infno == "2301":
            message["lines"] = fee_lines
        encoded = json.dumps(message)
        bodies.append(json.dumps({**message, "pad": "p" * max(0, size - len(encoded))}).encode())
    return bodies


async def _drive(gateway_port: int, concurrency: int, duration_s: float, lines: int) -> int:
    """Visits completed by `concurrency` closed loops in `duration_s`."""
    url = f"http://127.0.0.1:{gateway_port}/"
    headers = {"content-type": "application/json"}
    completed = 0
    async with aiohttp.ClientSession() as session:
        for _ in range(200):  # wait for every process to answer a whole visit
            try:
                for body in _messages(f"W{secrets.token_hex(4)}v0", lines):
                    async with session.post(url, data=body, headers=headers) as reply:
                        reply.raise_for_status()
                break
            except (aiohttp.ClientError, OSError):
                await asyncio.sleep(0.1)
        deadline = time.monotonic() + duration_s

        async def loop(worker: int) -> None:
            nonlocal completed
            number = 0
            while time.monotonic() < deadline:
                number += 1
                for body in _messages(f"L{worker}x{secrets.token_hex(3)}v{number}", lines):
                    async with session.post(url, data=body, headers=headers) as reply:
                        reply.raise_for_status()
                        await reply.read()
                completed += 1

        await asyncio.gather(*(loop(worker) for worker in range(concurrency)))
    return completed


async def run_floor(
    postgres_url: str,
    redis_url: str,
    *,
    concurrency: int,
    duration_s: float,
    lines: int = 50,
    layers: frozenset[str] = frozenset(),
    database: str = DATABASE,
) -> FloorRun:
    """Start the skeleton with these of LAYERS, drive it, stop it and drop its database
    (`database`, which also prefixes its Redis keys)."""
    unknown = layers - LAYERS.keys()
    if unknown:
        raise ValueError(f"unknown layers {sorted(unknown)}; known: {sorted(LAYERS)}")
    database_url = await _prepare_database(postgres_url, redis_url, database)
    base = free_port_block(len(ROLES))
    ports = {role: base + index for index, role in enumerate(ROLES)}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for role in ROLES:
            processes[role] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "services.visit_floor",
                    role,
                    "--database-url",
                    database_url,
                    "--redis-url",
                    redis_url,
                    "--key-prefix",
                    database,
                    "--ports",
                    json.dumps(ports),
                    *(f"--with={layer}" for layer in sorted(layers)),
                ]
            )
        # One untimed visit first, so that every process has started and connected.
        await _drive(ports["gateway"], 1, 0.0, lines)
        before = {role: process_cpu_seconds(process.pid) for role, process in processes.items()}
        postgres_before = postgres_cpu_seconds(database)
        own_before = time.process_time()
        started = time.perf_counter()
        visits = await _drive(ports["gateway"], concurrency, duration_s, lines)
        seconds = time.perf_counter() - started
        spent = {
            role: process_cpu_seconds(process.pid) - before[role]
            for role, process in processes.items()
        }
        spent["postgres"] = postgres_spent(postgres_before, postgres_cpu_seconds(database))
        spent["load generator"] = time.process_time() - own_before
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=10)
        await _drop_database(postgres_url, redis_url, database)
    per_visit = {name: 1000 * value / max(visits, 1) for name, value in spent.items()}
    return FloorRun(visits, seconds, per_visit, layers)


def main() -> None:
    """One process of the skeleton: `python -m services.visit_floor ROLE ...`."""
    parser = argparse.ArgumentParser(description="one process of the visit floor skeleton")
    parser.add_argument("role", choices=ROLES)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--key-prefix", required=True)
    parser.add_argument("--ports", required=True, help="JSON: role -> port")
    parser.add_argument(
        "--with", dest="layers", action="append", choices=sorted(LAYERS), default=[]
    )
    args = parser.parse_args()
    exit_with_parent()
    wiring = _Wiring(
        args.role,
        args.database_url,
        args.redis_url,
        args.key_prefix,
        json.loads(args.ports),
        frozenset(args.layers),
    )
    uvloop.run(_ROLE_MAINS[args.role](wiring))


if __name__ == "__main__":
    main()
