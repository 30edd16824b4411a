"""IdentityService over gRPC: proto <-> domain, one session per call."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
from medsettle.identity.v1 import identity_pb2, identity_service_pb2, identity_service_pb2_grpc
from medsettle.type.v1 import area_pb2
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.common.callers import Caller, caller_from_metadata
from services.common.driver import DriverPool
from services.common.errors import InvalidArgument, PermissionDenied
from services.common.uploads import complete_upload
from services.common.values import date_from_proto, date_to_proto, money, province_of, timestamp
from services.identity import logic
from services.identity.errors import (
    AreaNotFound,
    CardNotFound,
    CardNotReplaceable,
    CredentialTypeInvalid,
    PersonNotFound,
    PersonRecordInvalid,
    VoucherInvalid,
)
from services.identity.logic import CardRecord, CardStatus, InsuranceRecord, PersonRecord
from services.identity.repository import IdentityRepository
from services.identity.voucher import VoucherSigner

Context = grpc.aio.ServicerContext[Any, Any]
_CREDENTIAL = identity_service_pb2.CredentialType


def person_from_proto(message: identity_pb2.Person) -> PersonRecord:
    """The domain record of an uploaded person."""
    try:
        insurances = tuple(
            InsuranceRecord(
                insutype=row.insutype,
                psn_type=row.psn_type,
                status=logic.InsuranceStatus(row.status),
                insuplc_admdvs=row.insuplc_admdvs,
                balc_fen=row.balc.amount_fen,
                idet_types=tuple(row.idet_types),
            )
            for row in message.insurances
        )
        cards = tuple(
            CardRecord(card.card_no, card.card_sn, CardStatus(card.status), card.replaced_by)
            for card in message.cards
        )
    except ValueError:
        raise PersonRecordInvalid(
            f"person {message.psn_no}: insurance or card status is missing or unknown",
            psnNo=message.psn_no,
        ) from None
    return PersonRecord(
        psn_no=message.psn_no,
        psn_cert_type=message.psn_cert_type or "01",
        certno=message.certno.upper(),
        psn_name=message.psn_name,
        gend=message.gend,
        brdy=date_from_proto(message.brdy, f"person {message.psn_no} brdy"),
        naty=message.naty or "01",
        insurances=insurances,
        cards=cards,
    )


def person_to_proto(person: PersonRecord, *, with_cards: bool) -> identity_pb2.Person:
    """The wire form of a person (cards only where the caller may see them)."""
    return identity_pb2.Person(
        psn_no=person.psn_no,
        psn_cert_type=person.psn_cert_type,
        certno=person.certno,
        psn_name=person.psn_name,
        gend=person.gend,
        brdy=date_to_proto(person.brdy),
        naty=person.naty,
        insurances=[
            identity_pb2.Insurance(
                insutype=row.insutype,
                psn_type=row.psn_type,
                status=int(row.status),  # type: ignore[arg-type]
                insuplc_admdvs=row.insuplc_admdvs,
                balc=money(row.balc_fen),
                idet_types=row.idet_types,
            )
            for row in person.insurances
        ],
        cards=[
            identity_pb2.Card(
                card_no=card.card_no,
                card_sn=card.card_sn,
                status=int(card.status),  # type: ignore[arg-type]
                replaced_by=card.replaced_by,
            )
            for card in person.cards
        ]
        if with_cards
        else [],
    )


def _card_to_proto(card: CardRecord) -> identity_pb2.Card:
    return identity_pb2.Card(
        card_no=card.card_no,
        card_sn=card.card_sn,
        status=int(card.status),  # type: ignore[arg-type]
        replaced_by=card.replaced_by,
    )


class IdentityServicer(identity_service_pb2_grpc.IdentityServiceServicer):
    """Implements medsettle.identity.v1.IdentityService."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        signer: VoucherSigner,
        voucher_ttl: dt.timedelta,
        reads: async_sessionmaker[AsyncSession] | None = None,
        driver: DriverPool | None = None,
    ) -> None:
        self._sessions = sessions
        self._reads = reads or sessions  # the read-only lookups (services.common.db)
        self._driver = driver  # the same lookups on asyncpg directly (services.common.driver)
        self._signer = signer
        self._voucher_ttl = voucher_ttl

    async def _person_by_credential(
        self, repository: IdentityRepository, request: identity_service_pb2.VerifyCredentialRequest
    ) -> tuple[PersonRecord, dict[str, str]]:
        """The credential's holder (no cards: a card credential is checked here) and the names
        of their insured areas."""
        kind = request.credential_type
        if kind == _CREDENTIAL.CREDENTIAL_TYPE_ID_NUMBER:
            certno = request.credential_no.upper()
            logic.check_id_number(certno)
            by_certno = await repository.insured_person(certno=certno)
            if by_certno is None:
                raise PersonNotFound("no insured person has this ID number")
            return by_certno
        psn_no: str | None
        if kind == _CREDENTIAL.CREDENTIAL_TYPE_SOCIAL_SECURITY_CARD:
            found = await repository.card(request.credential_no)
            if found is None:
                raise PersonNotFound(
                    f"no insured person holds card {request.credential_no}",
                    cardNo=request.credential_no,
                )
            card, psn_no = found
            logic.check_card(card, request.card_sn)
        elif kind == _CREDENTIAL.CREDENTIAL_TYPE_E_VOUCHER:
            voucher_id = self._signer.verify(request.credential_no, dt.datetime.now(dt.UTC))
            psn_no = await repository.voucher_holder(voucher_id)
            if psn_no is None:
                raise VoucherInvalid("the e-voucher token is not valid")
        else:
            raise CredentialTypeInvalid("credential_type must be 01, 02 or 03")
        holder = await repository.insured_person(psn_no=psn_no)
        if holder is None:
            raise PersonNotFound("the credential's person is no longer registered")
        return holder

    async def VerifyCredential(
        self, request: identity_service_pb2.VerifyCredentialRequest, context: Context
    ) -> identity_service_pb2.VerifyCredentialResponse:
        async with self._reads() as session:
            person, area_names = await self._person_by_credential(
                IdentityRepository(session, self._driver), request
            )
        insured = logic.active_insurance(person)
        return identity_service_pb2.VerifyCredentialResponse(
            person=person_to_proto(person, with_cards=False),
            insured_area=area_pb2.Area(
                admdvs=insured.insuplc_admdvs,
                name=area_names.get(insured.insuplc_admdvs, ""),
                prov_admdvs=province_of(insured.insuplc_admdvs),
            ),
        )

    async def IssueVoucher(
        self, request: identity_service_pb2.IssueVoucherRequest, context: Context
    ) -> identity_service_pb2.IssueVoucherResponse:
        certno = request.certno.upper()
        logic.check_id_number(certno)
        now = dt.datetime.now(dt.UTC)
        async with self._sessions.begin() as session:
            repository = IdentityRepository(session)
            found = await repository.insured_person(certno=certno)
            person = found[0] if found else None
            if person is None or person.psn_name != request.psn_name:
                raise PersonNotFound("no insured person has this ID number and name")
            logic.active_insurance(person)
            expires_at = now + self._voucher_ttl
            voucher_id, token = self._signer.issue(expires_at)
            await repository.forget_expired_vouchers(now)
            await repository.add_voucher(voucher_id, person.psn_no, expires_at)
        return identity_service_pb2.IssueVoucherResponse(
            token=token, expire_time=timestamp(expires_at)
        )

    async def ReportCardLost(
        self, request: identity_service_pb2.ReportCardLostRequest, context: Context
    ) -> identity_pb2.Card:
        async with self._sessions.begin() as session:
            repository = IdentityRepository(session)
            found = await repository.card(request.card_no, for_update=True)
            if found is None:
                raise CardNotFound(f"no card {request.card_no}", cardNo=request.card_no)
            card, _ = found
            if card.status is not CardStatus.LOST:
                await repository.set_card(
                    card.card_no, status=CardStatus.LOST, replaced_by=card.replaced_by
                )
        return _card_to_proto(
            CardRecord(card.card_no, card.card_sn, CardStatus.LOST, card.replaced_by)
        )

    async def ReplaceCard(
        self, request: identity_service_pb2.ReplaceCardRequest, context: Context
    ) -> identity_pb2.Card:
        if not request.new_card_no or len(request.new_card_no) > 20 or not request.new_card_sn:
            raise InvalidArgument("new_card_no (at most 20 characters) and new_card_sn are needed")
        new_card = CardRecord(request.new_card_no, request.new_card_sn, CardStatus.NORMAL)
        async with self._sessions.begin() as session:
            repository = IdentityRepository(session)
            found = await repository.card(request.card_no, for_update=True)
            if found is None:
                raise CardNotFound(f"no card {request.card_no}", cardNo=request.card_no)
            old, psn_no = found
            existing = await repository.card(request.new_card_no)
            if old.replaced_by == request.new_card_no and existing is not None:
                return _card_to_proto(existing[0])  # the same replacement, asked again
            if old.status is CardStatus.NORMAL or old.replaced_by or existing is not None:
                raise CardNotReplaceable(
                    f"card {old.card_no} cannot be replaced by {request.new_card_no}: only a lost "
                    "or frozen card, once, by a card number not yet in use",
                    cardNo=old.card_no,
                )
            await repository.set_card(
                old.card_no, status=CardStatus.LOST, replaced_by=new_card.card_no
            )
            await repository.add_card(psn_no, new_card)
        return _card_to_proto(new_card)

    async def UpsertPersons(
        self,
        request_iterator: AsyncIterator[identity_service_pb2.UpsertPersonsRequest],
        context: Context,
    ) -> identity_service_pb2.UpsertPersonsResponse:
        caller = caller_from_metadata(context.invocation_metadata())
        counts = [0, 0, 0]
        # Each message is written as it arrives, inside one transaction for the whole upload:
        # memory stays at one message, and a failed or cancelled upload rolls back entirely.
        uploaded: set[str] = set()
        async with self._sessions.begin() as session:
            repository = IdentityRepository(session)
            tables = repository.growing_tables()
            async for message in complete_upload(request_iterator):
                if len(message.persons) > 1000:
                    raise InvalidArgument("at most 1,000 persons per message")
                persons: dict[str, PersonRecord] = {}
                for item in message.persons:
                    person = person_from_proto(item)
                    logic.validate_person(person)
                    for row in person.insurances:
                        caller.require_owns(row.insuplc_admdvs, f"person {person.psn_no}")
                    if person.psn_no in uploaded:
                        raise PersonRecordInvalid(
                            f"person {person.psn_no} appears twice", psnNo=person.psn_no
                        )
                    uploaded.add(person.psn_no)
                    persons[person.psn_no] = person
                written = await self._store_persons(repository, caller, persons)
                await tables.grew(len(persons))
                counts = [total + more for total, more in zip(counts, written, strict=True)]
        return identity_service_pb2.UpsertPersonsResponse(
            inserted_count=counts[0], updated_count=counts[1], unchanged_count=counts[2]
        )

    async def _store_persons(
        self, repository: IdentityRepository, caller: Caller, uploaded: dict[str, PersonRecord]
    ) -> tuple[int, int, int]:
        """Write persons in the caller's transaction: (inserted, updated, unchanged)."""
        existing = await repository.persons(list(uploaded))
        for person in existing.values():
            for row in person.insurances:
                caller.require_owns(row.insuplc_admdvs, f"person {person.psn_no}")
        certno_owners = await repository.psn_nos_by_certno(
            [person.certno for person in uploaded.values()]
        )
        card_owners = await repository.card_owners(
            [card.card_no for person in uploaded.values() for card in person.cards]
        )
        seen_certnos: dict[str, str] = {}
        for person in uploaded.values():
            other = certno_owners.get(person.certno, person.psn_no)
            if (
                other != person.psn_no
                or seen_certnos.setdefault(person.certno, person.psn_no) != person.psn_no
            ):
                raise PersonRecordInvalid(
                    f"person {person.psn_no}: the ID number is registered to another person",
                    psnNo=person.psn_no,
                )
            for card in person.cards:
                if card_owners.get(card.card_no, person.psn_no) != person.psn_no:
                    raise PersonRecordInvalid(
                        f"person {person.psn_no}: card {card.card_no} is someone else's",
                        psnNo=person.psn_no,
                    )
        changed = [p for p in uploaded.values() if existing.get(p.psn_no) != p]
        await repository.replace_persons(changed, stored=existing.keys())
        inserted = sum(1 for p in changed if p.psn_no not in existing)
        return inserted, len(changed) - inserted, len(uploaded) - len(changed)

    async def UpsertAreas(
        self, request: identity_service_pb2.UpsertAreasRequest, context: Context
    ) -> identity_service_pb2.UpsertAreasResponse:
        caller = caller_from_metadata(context.invocation_metadata())
        if not caller.is_national:
            raise PermissionDenied("only the national platform maintains the area list")
        rows = []
        for area in request.areas:
            if not (len(area.admdvs) == 6 and area.admdvs.isdigit()) or not area.name:
                raise InvalidArgument(f"area {area.admdvs!r}: a six-digit code and a name needed")
            rows.append((area.admdvs, area.name, province_of(area.admdvs)))
        async with self._sessions.begin() as session:
            repository = IdentityRepository(session)
            existing = await repository.areas([code for code, _, _ in rows])
            changed = [
                row
                for row in rows
                if (found := existing.get(row[0])) is None
                or (found.name, found.prov_admdvs) != row[1:]
            ]
            await repository.put_areas(changed)
        return identity_service_pb2.UpsertAreasResponse(
            written_count=len(changed), unchanged_count=len(rows) - len(changed)
        )

    async def GetArea(
        self, request: identity_service_pb2.GetAreaRequest, context: Context
    ) -> area_pb2.Area:
        async with self._reads() as session:
            area = await IdentityRepository(session).area(request.admdvs)
        if area is None:
            raise AreaNotFound(f"no area {request.admdvs}", admdvs=request.admdvs)
        return area_pb2.Area(admdvs=area.admdvs, name=area.name, prov_admdvs=area.prov_admdvs)

    async def GetPerson(
        self, request: identity_service_pb2.GetPersonRequest, context: Context
    ) -> identity_pb2.Person:
        async with self._reads() as session:
            found = await IdentityRepository(session, self._driver).insured_person(
                psn_no=request.psn_no
            )
        if found is None:
            raise PersonNotFound(f"no person {request.psn_no}", psnNo=request.psn_no)
        return person_to_proto(found[0], with_cards=False)
