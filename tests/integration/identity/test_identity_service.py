"""IdentityService over gRPC on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from medsettle.identity.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from medsettle.type.v1 import area_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.common.bundle import BundleInvalid
from services.common.runtime import open_storage
from services.common.values import money
from services.demo.bundle import write_demo_bundle
from services.identity.bundle import load_persons
from services.identity.config import IdentitySettings
from services.identity.models import Base
from services.identity.server import MIGRATIONS_DIR, build_servicer, registrar
from tests.bundle_files import cell, set_cell
from tests.harness import national, province, refusal, serving
from tests.people import person

if TYPE_CHECKING:
    Stub = identity_service_pb2_grpc.IdentityServiceAsyncStub
CREDENTIAL = identity_service_pb2.CredentialType


@pytest.fixture
async def identity(
    database_url: str, tmp_path: Path, tracer_provider: TracerProvider
) -> AsyncIterator[Stub]:
    settings = IdentitySettings(database_url=database_url, data_dir=tmp_path, voucher_ttl_s=2)
    # As the service opens it: on PostgreSQL the person lookups run on asyncpg directly.
    storage = await open_storage(
        settings, Base.metadata, MIGRATIONS_DIR, driver_pool_size=settings.lookup_pool_size
    )
    assert (storage.driver is None) == (storage.engine.dialect.name == "sqlite")
    servicer = build_servicer(settings, storage)
    async with serving(settings, storage, registrar(servicer), tracer_provider) as channel:
        yield identity_service_pb2_grpc.IdentityServiceStub(channel)


async def upload(
    stub: Stub, *persons: identity_pb2.Person, caller: str = "130000"
) -> identity_service_pb2.UpsertPersonsResponse:
    async def messages() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
        yield identity_service_pb2.UpsertPersonsRequest(persons=list(persons), last=True)

    return await stub.UpsertPersons(messages(), metadata=province(caller))


async def upload_langfang(stub: Stub) -> None:
    """The area 131000 (廊坊市), where the test persons are insured."""
    await stub.UpsertAreas(
        identity_service_pb2.UpsertAreasRequest(
            areas=[area_pb2.Area(admdvs="131000", name="廊坊市")]
        ),
        metadata=national(),
    )


async def test_upsert_counts_inserted_updated_unchanged(identity: Stub) -> None:
    first = await upload(identity, person("P001", card_no="C001"), person("P002", serial=2))
    assert (first.inserted_count, first.updated_count, first.unchanged_count) == (2, 0, 0)
    again = await upload(
        identity, person("P001", card_no="C001"), person("P002", serial=2, balc_fen=5)
    )
    assert (again.inserted_count, again.updated_count, again.unchanged_count) == (0, 1, 1)


async def test_province_may_only_write_its_own_insured(identity: Stub) -> None:
    code, reason = await refusal(upload(identity, person("P001"), caller="510000"))
    assert (code, reason) == (grpc.StatusCode.PERMISSION_DENIED, "AREA_NOT_OWNED")
    code, reason = await refusal(
        identity.UpsertPersons(
            iter([identity_service_pb2.UpsertPersonsRequest(persons=[person("P001")], last=True)])
        )
    )
    assert (code, reason) == (grpc.StatusCode.UNAUTHENTICATED, "CALLER_UNKNOWN")


async def test_upload_with_a_bad_record_writes_nothing(identity: Stub) -> None:
    broken = person("P002", serial=2)
    broken.certno = broken.certno[:-1] + ("0" if broken.certno[-1] != "0" else "1")
    code, reason = await refusal(upload(identity, person("P001"), broken))
    assert (code, reason) == (grpc.StatusCode.INVALID_ARGUMENT, "PERSON_RECORD_INVALID")
    code, reason = await refusal(
        identity.VerifyCredential(
            identity_service_pb2.VerifyCredentialRequest(
                credential_type=CREDENTIAL.CREDENTIAL_TYPE_ID_NUMBER,
                credential_no=person("P001").certno,
            )
        )
    )
    assert reason == "PERSON_NOT_FOUND"


async def test_verify_by_id_number_and_card_returns_person_and_insured_area(
    identity: Stub,
) -> None:
    await upload_langfang(identity)
    registered = person("P001", card_no="C001", idet_types=("low_income",))
    await upload(identity, registered)
    by_id = await identity.VerifyCredential(
        identity_service_pb2.VerifyCredentialRequest(
            credential_type=CREDENTIAL.CREDENTIAL_TYPE_ID_NUMBER,
            credential_no=registered.certno,
        )
    )
    by_card = await identity.VerifyCredential(
        identity_service_pb2.VerifyCredentialRequest(
            credential_type=CREDENTIAL.CREDENTIAL_TYPE_SOCIAL_SECURITY_CARD,
            credential_no="C001",
            card_sn="SNC001",
        )
    )
    assert by_id == by_card
    assert by_id.person.psn_no == "P001"
    assert by_id.person.certno == registered.certno
    assert not by_id.person.cards
    [insurance] = by_id.person.insurances
    assert (insurance.insutype, insurance.psn_type, insurance.balc.amount_fen) == (
        "310",
        "retired",
        100_000,
    )
    assert list(insurance.idet_types) == ["low_income"]
    assert by_id.insured_area == area_pb2.Area(admdvs="131000", name="廊坊市", prov_admdvs="130000")


async def test_a_person_with_two_insurances_gets_the_active_one_s_area_and_both_records(
    identity: Stub,
) -> None:
    await upload_langfang(identity)
    registered = person("P001", insutype="390", psn_type="resident", balc_fen=0)
    # An employee record from a city whose area was never uploaded, suspended: the resident
    # record (390) settles, though the employee one (310) sorts first.
    registered.insurances.insert(
        0,
        identity_pb2.Insurance(
            insutype="310",
            psn_type="employed",
            status=identity_pb2.INSURANCE_STATUS_SUSPENDED,
            insuplc_admdvs="130100",
            balc=money(2_500),
        ),
    )
    await upload(identity, registered)
    verified = await identity.VerifyCredential(
        identity_service_pb2.VerifyCredentialRequest(
            credential_type=CREDENTIAL.CREDENTIAL_TYPE_ID_NUMBER,
            credential_no=registered.certno.lower(),
        )
    )
    assert verified.insured_area == area_pb2.Area(
        admdvs="131000", name="廊坊市", prov_admdvs="130000"
    )
    by_psn_no = await identity.GetPerson(
        identity_service_pb2.GetPersonRequest(psn_no="P001"), metadata=national()
    )
    assert by_psn_no == verified.person
    assert [(i.insutype, i.insuplc_admdvs, i.balc.amount_fen) for i in by_psn_no.insurances] == [
        ("310", "130100", 2_500),
        ("390", "131000", 0),
    ]


@pytest.mark.parametrize(
    ("request_fields", "code", "reason"),
    [
        (
            {"credential_type": 2, "credential_no": "110105194912310021"},
            "INVALID_ARGUMENT",
            "INVALID_ID_NUMBER",
        ),
        (
            {"credential_type": 2, "credential_no": "11010519491231002X"},
            "NOT_FOUND",
            "PERSON_NOT_FOUND",
        ),
        (
            {"credential_type": 3, "credential_no": "C999", "card_sn": "x"},
            "NOT_FOUND",
            "PERSON_NOT_FOUND",
        ),
        ({"credential_type": 3, "credential_no": "C001"}, "INVALID_ARGUMENT", "CARD_SN_REQUIRED"),
        (
            {"credential_type": 3, "credential_no": "C001", "card_sn": "bad"},
            "UNAUTHENTICATED",
            "CARD_SN_MISMATCH",
        ),
        (
            {"credential_type": 3, "credential_no": "C002", "card_sn": "SNC002"},
            "FAILED_PRECONDITION",
            "CARD_FROZEN",
        ),
        (
            {"credential_type": 3, "credential_no": "C003", "card_sn": "SNC003"},
            "FAILED_PRECONDITION",
            "INSURANCE_SUSPENDED",
        ),
        (
            {"credential_type": 3, "credential_no": "C004", "card_sn": "SNC004"},
            "FAILED_PRECONDITION",
            "INSURANCE_TERMINATED",
        ),
        (
            {"credential_type": 1, "credential_no": "forged.token"},
            "UNAUTHENTICATED",
            "VOUCHER_INVALID",
        ),
        (
            {"credential_type": 0, "credential_no": "x"},
            "INVALID_ARGUMENT",
            "CREDENTIAL_TYPE_INVALID",
        ),
    ],
)
async def test_verify_refusals_have_distinct_reasons(
    identity: Stub, request_fields: dict[str, object], code: str, reason: str
) -> None:
    await upload(
        identity,
        person("P001", serial=1, card_no="C001"),
        person("P002", serial=2, card_no="C002", card_status=identity_pb2.CARD_STATUS_FROZEN),
        person("P003", serial=3, card_no="C003", status=identity_pb2.INSURANCE_STATUS_SUSPENDED),
        person("P004", serial=4, card_no="C004", status=identity_pb2.INSURANCE_STATUS_TERMINATED),
    )
    found = await refusal(
        identity.VerifyCredential(identity_service_pb2.VerifyCredentialRequest(**request_fields))  # type: ignore[arg-type]
    )
    assert found == (getattr(grpc.StatusCode, code), reason)


async def test_lost_card_is_refused_at_once_and_its_replacement_works(identity: Stub) -> None:
    await upload(identity, person("P001", card_no="C001"))
    lost = await identity.ReportCardLost(identity_service_pb2.ReportCardLostRequest(card_no="C001"))
    assert lost.status == identity_pb2.CARD_STATUS_LOST
    old_card = identity_service_pb2.VerifyCredentialRequest(
        credential_type=CREDENTIAL.CREDENTIAL_TYPE_SOCIAL_SECURITY_CARD,
        credential_no="C001",
        card_sn="SNC001",
    )
    assert (await refusal(identity.VerifyCredential(old_card)))[1] == "CARD_LOST"
    replacement = identity_service_pb2.ReplaceCardRequest(
        card_no="C001", new_card_no="C001B", new_card_sn="SNB"
    )
    new = await identity.ReplaceCard(replacement)
    assert (new.card_no, new.status) == ("C001B", identity_pb2.CARD_STATUS_NORMAL)
    assert await identity.ReplaceCard(replacement) == new  # asked twice, replaced once
    verified = await identity.VerifyCredential(
        identity_service_pb2.VerifyCredentialRequest(
            credential_type=CREDENTIAL.CREDENTIAL_TYPE_SOCIAL_SECURITY_CARD,
            credential_no="C001B",
            card_sn="SNB",
        )
    )
    assert verified.person.psn_no == "P001"
    assert (await refusal(identity.VerifyCredential(old_card)))[1] == "CARD_LOST"
    assert await refusal(
        identity.ReplaceCard(
            identity_service_pb2.ReplaceCardRequest(
                card_no="C001B", new_card_no="C001C", new_card_sn="SNC"
            )
        )
    ) == (grpc.StatusCode.FAILED_PRECONDITION, "CARD_NOT_REPLACEABLE")


async def test_e_voucher_verifies_until_it_expires(
    identity: Stub, span_exporter: InMemorySpanExporter
) -> None:
    registered = person("P001")
    await upload(identity, registered)
    issued = await identity.IssueVoucher(
        identity_service_pb2.IssueVoucherRequest(
            certno=registered.certno, psn_name=registered.psn_name
        )
    )
    assert registered.certno not in issued.token and "P001" not in issued.token
    voucher = identity_service_pb2.VerifyCredentialRequest(
        credential_type=CREDENTIAL.CREDENTIAL_TYPE_E_VOUCHER, credential_no=issued.token
    )
    assert (await identity.VerifyCredential(voucher)).person.psn_no == "P001"
    wrong_name = identity_service_pb2.IssueVoucherRequest(certno=registered.certno, psn_name="别人")
    assert (await refusal(identity.IssueVoucher(wrong_name)))[1] == "PERSON_NOT_FOUND"
    await asyncio.sleep(2.1)  # the fixture's vouchers live 2 s
    assert (await refusal(identity.VerifyCredential(voucher)))[1] == "VOUCHER_EXPIRED"
    for span in span_exporter.get_finished_spans():
        assert registered.certno not in str(span.attributes)


async def test_areas_are_national_and_upserts_are_idempotent(identity: Stub) -> None:
    request = identity_service_pb2.UpsertAreasRequest(
        areas=[
            area_pb2.Area(admdvs="510000", name="四川省"),
            area_pb2.Area(admdvs="510100", name="成都市"),
        ]
    )
    assert (await refusal(identity.UpsertAreas(request, metadata=province("510000"))))[1] == (
        "PERMISSION_DENIED"
    )
    first = await identity.UpsertAreas(request, metadata=national())
    second = await identity.UpsertAreas(request, metadata=national())
    assert (first.written_count, second.written_count, second.unchanged_count) == (2, 0, 2)
    chengdu = await identity.GetArea(identity_service_pb2.GetAreaRequest(admdvs="510100"))
    assert chengdu == area_pb2.Area(admdvs="510100", name="成都市", prov_admdvs="510000")


async def test_an_upload_spans_messages_and_one_cancelled_midway_keeps_nothing(
    identity: Stub,
) -> None:
    sent = asyncio.Event()

    async def two_messages() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
        yield identity_service_pb2.UpsertPersonsRequest(persons=[person("P001")])
        yield identity_service_pb2.UpsertPersonsRequest(persons=[person("P002", serial=2)])
        sent.set()
        await asyncio.Event().wait()  # the uploader is still reading its file when it stops

    call = identity.UpsertPersons(two_messages(), metadata=province("130000"))
    await sent.wait()
    await asyncio.sleep(0.3)  # the service has written both messages in its open transaction
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0.3)  # the rollback happens as the service sees the cancellation
    for psn_no in ("P001", "P002"):
        found = identity.GetPerson(identity_service_pb2.GetPersonRequest(psn_no=psn_no))
        assert (await refusal(found))[1] == "PERSON_NOT_FOUND"
    counted = await upload_messages(identity, [person("P001")], [person("P002", serial=2)])
    assert (counted.inserted_count, counted.updated_count, counted.unchanged_count) == (2, 0, 0)


async def test_a_person_in_two_messages_of_one_upload_is_refused_and_nothing_is_written(
    identity: Stub,
) -> None:
    twice = upload_messages(
        identity, [person("P001"), person("P002", serial=2)], [person("P001", balc_fen=7)]
    )
    assert (await refusal(twice)) == (grpc.StatusCode.INVALID_ARGUMENT, "PERSON_RECORD_INVALID")
    found = identity.GetPerson(identity_service_pb2.GetPersonRequest(psn_no="P002"))
    assert (await refusal(found))[1] == "PERSON_NOT_FOUND"


async def test_an_id_number_taken_in_an_earlier_message_of_the_upload_is_refused(
    identity: Stub,
) -> None:
    impostor = person("P009")  # serial 1: the same ID number as P001
    refused = upload_messages(identity, [person("P001")], [impostor])
    assert (await refusal(refused))[1] == "PERSON_RECORD_INVALID"


async def test_an_upload_that_ends_before_its_last_message_is_refused_and_keeps_nothing(
    identity: Stub,
) -> None:
    unfinished = upload_messages(identity, [person("P001")], [person("P002", serial=2)], last=False)
    assert (await refusal(unfinished)) == (grpc.StatusCode.ABORTED, "UPLOAD_INCOMPLETE")
    found = identity.GetPerson(identity_service_pb2.GetPersonRequest(psn_no="P001"))
    assert (await refusal(found))[1] == "PERSON_NOT_FOUND"

    async def after_last() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
        yield identity_service_pb2.UpsertPersonsRequest(persons=[person("P001")], last=True)
        yield identity_service_pb2.UpsertPersonsRequest(persons=[person("P002", serial=2)])

    refused = identity.UpsertPersons(after_last(), metadata=province("130000"))
    assert (await refusal(refused))[1] == "INVALID_ARGUMENT"


async def upload_messages(
    stub: Stub, *messages: list[identity_pb2.Person], last: bool = True
) -> identity_service_pb2.UpsertPersonsResponse:
    """An upload of several messages, the final one marked last unless `last` is False."""

    async def stream() -> AsyncIterator[identity_service_pb2.UpsertPersonsRequest]:
        for number, persons in enumerate(messages, start=1):
            final = last and number == len(messages)
            yield identity_service_pb2.UpsertPersonsRequest(persons=persons, last=final)

    return await stub.UpsertPersons(stream(), metadata=province("130000"))


async def test_persons_csv_with_a_bad_row_after_the_first_message_went_out_loads_nothing(
    identity: Stub, tmp_path: Path
) -> None:
    bundle_dir = write_demo_bundle(tmp_path / "bundle", persons=2_500, seed=5)
    persons_file = bundle_dir / "persons.csv"
    set_cell(persons_file, 2_401, "gend", "3")
    sent: list[int] = []
    read: dict[str, str] = {}
    with pytest.raises(BundleInvalid) as raised:
        await load_persons(identity, persons_file, read, sent.append)
    assert [str(problem) for problem in raised.value.problems] == [
        "persons.csv:2401: gend: '3' must be one of 1, 2"
    ]
    # The first message went out before the bad row was read; the second was held back.
    assert sum(sent) == 1_000
    first = identity.GetPerson(
        identity_service_pb2.GetPersonRequest(psn_no=cell(persons_file, 2, "psn_no"))
    )
    assert (await refusal(first))[1] == "PERSON_NOT_FOUND"
    set_cell(persons_file, 2_401, "gend", "1")
    sent.clear()
    loaded = await load_persons(identity, persons_file, {}, sent.append)
    assert (loaded.inserted_count, sum(sent)) == (2_500, 2_500)
