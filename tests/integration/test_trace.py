"""One settlement through the gateway is one trace, across every hop (in-memory exporter).

Every service, the outbox relay and the gateway (uvicorn) run in this process with one tracer
provider, so the test sees every span and checks the tree's edges. For the settlement: gateway →
settlement → filing (with their database spans) → outbox → clearing (the relay's batched call
linked to each event's span); settlement runs here without following filing's change stream, so
it asks filing, as it does whenever that stream is not current. The person's details come from
the 1101 just before, whose trace reaches identity and its database. For the admission: gateway
→ settlement → identity and filing. For the fee upload: gateway → settlement → catalogue.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from gateway.app import create_app
from gateway.config import GatewaySettings
from gateway.credentials import issue_credentials
from gateway.his_client import His
from gateway.message_lookup import find_message_trace
from services.bundle_loader import load_bundle
from services.catalogue import server as catalogue_server
from services.catalogue.config import CatalogueSettings
from services.clearing import server as clearing_server
from services.clearing.config import ClearingSettings
from services.common.channels import make_channel
from services.common.ports import free_port_block
from services.common.runtime import Storage, open_storage, stop_tasks
from services.common.server import Registrar, start_server
from services.common.tracing import make_tracer_provider
from services.demo.bundle import long_term_patients, write_demo_bundle
from services.filing import server as filing_server
from services.filing.config import FilingSettings
from services.identity import server as identity_server
from services.identity.config import IdentitySettings
from services.settlement import server as settlement_server
from services.settlement.config import SettlementSettings
from services.settlement.outbox import OutboxRelay, clearing_delivery
from services.settlement.upstreams import Upstreams as SettlementUpstreams

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Traced:
    """The running world, its span exporter and a signed-in hospital client."""

    exporter: InMemorySpanExporter
    his: His
    certno: str
    name: str
    gateway_database: str


async def _serve(
    stack: AsyncExitStack, name: str, register: Registrar, provider: TracerProvider
) -> str:
    running = await start_server(
        register,
        host="127.0.0.1",
        port=0,
        tracer=provider.get_tracer(name),
        error_domain=f"{name}.medsettle",
        max_concurrent_rpcs=64,
    )
    stack.push_async_callback(running.stop, 0)
    return f"127.0.0.1:{running.port}"


async def _storage(
    stack: AsyncExitStack, settings: Any, server: Any, provider: TracerProvider
) -> Storage:
    storage = await open_storage(
        settings,
        server.Base.metadata,
        server.MIGRATIONS_DIR,
        provider.get_tracer(settings.service_name),
    )
    stack.push_async_callback(storage.close)
    return storage


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def traced(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Traced]:
    root = tmp_path_factory.mktemp("traced")
    exporter = InMemorySpanExporter()
    provider = make_tracer_provider("medsettle-test", exporter)
    async with AsyncExitStack() as stack:
        targets: dict[str, str] = {}
        for settings, server in (
            (IdentitySettings(data_dir=root), identity_server),
            (FilingSettings(data_dir=root), filing_server),
            (CatalogueSettings(data_dir=root), catalogue_server),
        ):
            storage = await _storage(stack, settings, server, provider)
            servicer = server.build_servicer(settings, storage)
            targets[settings.service_name] = await _serve(
                stack, settings.service_name, server.registrar(servicer), provider
            )
        clearing_storage = await _storage(
            stack, ClearingSettings(data_dir=root), clearing_server, provider
        )
        targets["clearing"] = await _serve(
            stack,
            "clearing",
            clearing_server.registrar(
                clearing_server.build_servicer(clearing_storage, provider.get_tracer("clearing"))
            ),
            provider,
        )
        tracer = provider.get_tracer("settlement")
        settlement_storage = await _storage(
            stack, SettlementSettings(data_dir=root), settlement_server, provider
        )
        upstreams = SettlementUpstreams.connect(targets, tracer, 10)
        stack.push_async_callback(upstreams.close)
        clearing_channel = make_channel(targets["clearing"], tracer=tracer, default_timeout_s=10)
        stack.push_async_callback(clearing_channel.close)
        relay = OutboxRelay(
            settlement_storage.sessions,
            clearing_delivery(clearing_channel),
            linger_s=0.1,
            tracer=tracer,
        )
        relay_task = asyncio.create_task(relay.run())
        targets["settlement"] = await _serve(
            stack,
            "settlement",
            settlement_server.registrar(
                settlement_server.build_servicer(settlement_storage, upstreams, relay)
            ),
            provider,
        )
        bundle = write_demo_bundle(root / "bundle", persons=40)
        report = await load_bundle(bundle, targets)
        assert report.ok, [f.line() for f in report.files]
        patient = long_term_patients(bundle)[0]
        certno, name, hospital = patient.certno, patient.name, patient.hospital
        gateway_settings = GatewaySettings.model_validate(
            {"data_dir": root, **{f"{name}_target": target for name, target in targets.items()}}
        )
        issued = await issue_credentials(
            hospital, targets["catalogue"], gateway_settings.sqlalchemy_url()
        )
        port = free_port_block(1)
        web = uvicorn.Server(
            uvicorn.Config(
                create_app(gateway_settings, provider),
                host="127.0.0.1",
                port=port,
                log_config=None,
                access_log=False,
                lifespan="on",
            )
        )
        web_task = asyncio.create_task(web.serve())
        while not web.started:
            await asyncio.sleep(0.02)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            his = His(client, hospital, issued["paasid"], issued["secret"])
            his.area = hospital[1:7]
            await his.sign_in()
            yield Traced(exporter, his, certno, name, gateway_settings.sqlalchemy_url())
        web.should_exit = True
        await web_task
        await stop_tasks([relay_task])


def _trace(exporter: InMemorySpanExporter, trace_id: str) -> list[ReadableSpan]:
    return [
        span
        for span in exporter.get_finished_spans()
        if span.context is not None and format(span.context.trace_id, "032x") == trace_id
    ]


def _child(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> ReadableSpan:
    """The one span named `name` whose parent is `parent`."""
    assert parent.context is not None
    found = [
        span
        for span in spans
        if span.name == name
        and span.parent is not None
        and span.parent.span_id == parent.context.span_id
    ]
    assert len(found) == 1, (name, [(s.name, s.parent) for s in spans])
    return found[0]


def _served(spans: list[ReadableSpan], parent: ReadableSpan, name: str) -> ReadableSpan:
    """The server span of the call `name` made under `parent` (client span, then server span)."""
    return _child(spans, _child(spans, parent, name), name)


def _is(link: Link, span: ReadableSpan) -> bool:
    """Whether a link points at this span."""
    return span.context is not None and link.context.span_id == span.context.span_id


def _has_database_child(spans: list[ReadableSpan], parent: ReadableSpan) -> bool:
    assert parent.context is not None
    return any(
        span.name.startswith("db ")
        and span.parent is not None
        and span.parent.span_id == parent.context.span_id
        for span in spans
    )


async def _call(his: His, infno: str, payload: dict[str, Any]) -> tuple[dict[str, Any], str]:
    reply = await his.post(his.envelope(infno, payload))
    answer: dict[str, Any] = reply.json(parse_float=Decimal)
    assert answer["infcode"] == 0, answer["err_msg"]
    return answer["output"], reply.headers["x-trace-id"]


async def test_one_settlement_is_one_trace_from_the_gateway_to_clearing(traced: Traced) -> None:
    his = traced.his
    credential = {"mdtrt_cert_type": "02", "mdtrt_cert_no": traced.certno}
    now = time.strftime("%Y-%m-%d %H:%M:%S")
    person, person_trace = await _call(his, "1101", {"data": credential})
    psn_no, insutype = person["baseinfo"]["psn_no"], person["insuinfo"][0]["insutype"]
    admitted, admission_trace = await _call(
        his,
        "2401",
        {
            "mdtrtinfo": {
                "psn_no": psn_no,
                "insutype": insutype,
                "begntime": now,
                **credential,
                "med_type": "21",
                "ipt_no": "ZY-TRACE-1",
            }
        },
    )
    mdtrt_id = admitted["result"]["mdtrt_id"]
    line = {
        "feedetl_sn": "1",
        "mdtrt_id": mdtrt_id,
        "psn_no": psn_no,
        "fee_ocur_time": now,
        "med_list_codg": "XD0000",
        "medins_list_codg": "OWN-XD0000",
        "det_item_fee_sumamt": Decimal("300.00"),
        "cnt": Decimal("3"),
        "pric": Decimal("100.00"),
    }
    _, upload_trace = await _call(his, "2301", {"feedetail": [line]})
    settle = {
        "data": {
            "psn_no": psn_no,
            **credential,
            "medfee_sumamt": Decimal("300.00"),
            "psn_setlway": "01",
            "mdtrt_id": mdtrt_id,
            "acct_used_flag": "0",
            "insutype": insutype,
        }
    }
    _, settle_trace = await _call(his, "2304", settle)

    # The outbox delivers in the background; the trace ends in clearing. Clearing's span can
    # end before the relay's delivery span, which ends once the call has returned.
    for _ in range(100):
        spans = _trace(traced.exporter, settle_trace)
        if {"outbox/deliver", "clearing/record_ledger_event"} <= {s.name for s in spans}:
            break
        await asyncio.sleep(0.05)
    (root,) = [s for s in spans if s.parent is None]
    assert (root.name, root.kind) == ("gateway/2304", SpanKind.SERVER)
    settle_served = _served(spans, root, "SettlementService/SettleVisit")
    assert settle_served.kind == SpanKind.SERVER and _has_database_child(spans, settle_served)
    filing_served = _served(spans, settle_served, "FilingService/FindEffectiveFiling")
    assert _has_database_child(spans, filing_served)
    # setlinfo names the person from the 1101 just before (gateway.persons): no identity call.
    assert [s.name for s in spans if s.name.startswith("IdentityService/")] == []
    delivery = _child(spans, settle_served, "outbox/deliver")
    recorded = _child(spans, delivery, "clearing/record_ledger_event")
    assert recorded.kind == SpanKind.CONSUMER
    assert (recorded.attributes or {})["medsettle.recorded"] is True
    # The relay's call carries events of many settlements: it is its own trace, linked both ways.
    everything = list(traced.exporter.get_finished_spans())
    (relay_pass,) = [s for s in everything if any(_is(link, delivery) for link in s.links)]
    assert relay_pass.name == "outbox/relay"
    batch_served = _served(everything, relay_pass, "ClearingService/RecordLedgerEvents")
    assert [_is(link, batch_served) for link in recorded.links] == [True]
    # The call's one statement records all its events, this one among them.
    assert _has_database_child(everything, batch_served)

    upload = _trace(traced.exporter, upload_trace)
    (upload_root,) = [s for s in upload if s.parent is None]
    upload_served = _served(upload, upload_root, "SettlementService/UploadFees")
    _served(upload, upload_served, "CatalogueService/ClassifyFeeLines")

    # Identity answers the gateway's 1101 (from its database), then settlement's admission.
    read = _trace(traced.exporter, person_trace)
    (read_root,) = [s for s in read if s.parent is None]
    assert _has_database_child(read, _served(read, read_root, "IdentityService/VerifyCredential"))
    admission = _trace(traced.exporter, admission_trace)
    (admission_root,) = [s for s in admission if s.parent is None]
    admit_served = _served(admission, admission_root, "SettlementService/AdmitVisit")
    for name in ("IdentityService/VerifyCredential", "FilingService/FindEffectiveFiling"):
        _served(admission, admit_served, name)

    # No personal data in any span of the run.
    for span in traced.exporter.get_finished_spans():
        text = f"{span.name} {dict(span.attributes or {})}"
        assert traced.certno not in text and traced.name not in text


async def test_an_answer_s_inf_refmsgid_or_msgid_leads_to_the_trace_of_its_first_delivery(
    traced: Traced,
) -> None:
    his = traced.his
    envelope = his.envelope(
        "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": traced.certno}}
    )
    first = await his.post(envelope)
    repeat = await his.post(envelope)  # the same msgid again: the stored answer, a new trace
    refmsgid = first.json()["inf_refmsgid"]
    assert repeat.json()["inf_refmsgid"] == refmsgid
    assert repeat.headers["x-trace-id"] != first.headers["x-trace-id"]

    by_answer = await find_message_trace(refmsgid, traced.gateway_database)
    by_msgid = await find_message_trace(envelope["msgid"], traced.gateway_database)
    assert by_answer is not None and by_answer == by_msgid
    assert by_answer["trace_id"] == first.headers["x-trace-id"]
    assert (by_answer["infno"], by_answer["state"], by_answer["inf_refmsgid"]) == (
        "1101",
        "DONE",
        refmsgid,
    )
    (root,) = [s for s in _trace(traced.exporter, by_answer["trace_id"]) if s.parent is None]
    assert (root.attributes or {})["medsettle.inf_refmsgid"] == refmsgid
    assert await find_message_trace("0" * 30, traced.gateway_database) is None


async def test_the_gateway_s_own_span_is_the_only_root_and_fastapi_adds_none(
    traced: Traced,
) -> None:
    _, trace_id = await _call(
        traced.his, "1101", {"data": {"mdtrt_cert_type": "02", "mdtrt_cert_no": traced.certno}}
    )
    spans = _trace(traced.exporter, trace_id)
    assert [s.name for s in spans if s.parent is None] == ["gateway/1101"]
    # FastAPI is handed the same provider, so its spans would land here if it made any.
    assert [
        s.name
        for s in traced.exporter.get_finished_spans()
        if s.instrumentation_scope is not None and s.instrumentation_scope.name == "fastapi"
    ] == []
