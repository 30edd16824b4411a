"""CatalogueService over gRPC: proto <-> domain; cached reads, one transaction per write."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
from medsettle.catalogue.v1 import catalogue_pb2, catalogue_service_pb2, catalogue_service_pb2_grpc
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.catalogue import logic
from services.catalogue.cache import CatalogueReads, institution_key, mapping_key
from services.catalogue.errors import (
    CatalogueItemInvalid,
    CatalogueNotLoaded,
    InstitutionInvalid,
    InstitutionNotFound,
    ItemNotFound,
    LineInvalid,
    VersionNotFound,
)
from services.catalogue.mappers import (
    institution_to_proto,
    rule_item,
    stored_from_proto,
    stored_to_proto,
)
from services.catalogue.models import CatalogueVersionRow
from services.catalogue.repository import CatalogueRepository, StoredItem
from services.common.callers import caller_from_metadata
from services.common.errors import InvalidArgument
from services.common.paging import (
    PageTokenInvalid,
    decode_page_token,
    encode_page_token,
    page_size,
)
from services.common.uploads import complete_upload
from services.common.values import (
    InvalidDate,
    date_from_proto,
    money,
    optional_date,
    province_of,
    today_in_china,
)

Context = grpc.aio.ServicerContext[Any, Any]
_OPEN_COLUMN = {"21": "open_inpatient", "11": "open_outpatient", "14": "open_chronic"}
_MAX_LINES = 1000


def _area_prefix(admdvs: str) -> str:
    if not admdvs:
        return ""
    if len(admdvs) != 6 or not admdvs.isdigit():
        raise InvalidArgument("admdvs must be a six-digit area code")
    if admdvs.endswith("0000"):
        return admdvs[:2]
    return admdvs[:4] if admdvs.endswith("00") else admdvs


class CatalogueServicer(catalogue_service_pb2_grpc.CatalogueServiceServicer):
    """Implements medsettle.catalogue.v1.CatalogueService."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], reads: CatalogueReads) -> None:
        self._sessions = sessions
        self._reads = reads

    async def ClassifyFeeLines(
        self, request: catalogue_service_pb2.ClassifyFeeLinesRequest, context: Context
    ) -> catalogue_service_pb2.ClassifyFeeLinesResponse:
        if len(request.lines) > _MAX_LINES:
            raise InvalidArgument(f"at most {_MAX_LINES} lines per call")
        institution = await self._reads.institution(request.fixmedins_code)
        if institution is None:
            raise InstitutionNotFound(
                f"no designated institution {request.fixmedins_code}",
                fixmedinsCode=request.fixmedins_code,
            )
        prov = province_of(institution.admdvs)
        version = await self._reads.current_version(prov)
        if not version:
            raise CatalogueNotLoaded(f"province {prov} has no catalogue yet", provAdmdvs=prov)
        lines = []
        for line in request.lines:
            try:
                fee_date = date_from_proto(line.fee_date, f"line {line.feedetl_sn} fee_date")
            except InvalidDate as error:
                raise LineInvalid(error.message, feedetlSn=line.feedetl_sn) from None
            lines.append(
                logic.parse_line(
                    line.feedetl_sn, line.cnt, line.pric, line.amount.amount_fen, fee_date
                )
            )
        items = await self._reads.items(
            prov, version, [line.med_list_codg for line in request.lines]
        )
        own_codes = [
            line.medins_list_codg
            for line in request.lines
            if line.med_list_codg not in items and line.medins_list_codg
        ]
        mapped: dict[str, str] = {}
        if own_codes:
            mapped = await self._reads.mappings(request.fixmedins_code, own_codes)
            items.update(await self._reads.items(prov, version, list(mapped.values())))
        rules = {code: rule_item(item) for code, item in items.items()}
        results = []
        for line, parsed in zip(request.lines, lines, strict=True):
            code = line.med_list_codg
            if code not in rules:
                code = mapped.get(line.medins_list_codg, code)
            item = rules.get(code)
            split = logic.classify(item, parsed, institution.level, request.med_type)
            result = catalogue_service_pb2.ClassifiedLine(
                feedetl_sn=line.feedetl_sn,
                med_list_codg=code if item else "",
                amount=line.amount,
                fulamt_ownpay_amt=money(split.fulamt_ownpay),
                overlmt_amt=money(split.overlmt),
                preselfpay_amt=money(split.preselfpay),
                inscp_scp_amt=money(split.inscp),
                item_class=int(item.item_class) if item else 0,  # type: ignore[arg-type]
                selfpay_prop=str(split.selfpay_prop),
                non_payable_reason=int(split.reason or 0),  # type: ignore[arg-type]
                memo=logic.MEMO[split.reason] if split.reason else "",
                list_type=item.list_type if item else "",
            )
            if item is not None and item.price_cap_fen is not None:
                result.price_cap.CopyFrom(money(item.price_cap_fen))
            results.append(result)
        return catalogue_service_pb2.ClassifyFeeLinesResponse(
            lines=results,
            catalogue_version=version,
            prov_admdvs=prov,
            institution_level=institution.level,
        )

    async def UpsertCatalogue(
        self,
        request_iterator: AsyncIterator[catalogue_service_pb2.UpsertCatalogueRequest],
        context: Context,
    ) -> catalogue_pb2.CatalogueVersion:
        caller = caller_from_metadata(context.invocation_metadata())
        prov = ""
        uploaded: dict[str, StoredItem] = {}
        async for message in complete_upload(request_iterator):
            if len(message.items) > 1000:
                raise InvalidArgument("at most 1,000 items per message")
            if prov and message.prov_admdvs != prov:
                raise InvalidArgument("every message of an upload names the same province")
            prov = message.prov_admdvs
            for item in message.items:
                stored = _checked_item(item)
                if stored.med_list_codg in uploaded:
                    raise CatalogueItemInvalid(
                        f"item {stored.med_list_codg} appears twice", code=stored.med_list_codg
                    )
                uploaded[stored.med_list_codg] = stored
        if not prov or province_of(prov) != prov:
            raise InvalidArgument("prov_admdvs must be a province code (PP0000)")
        caller.require_owns(prov, "catalogue")
        try:
            version = await self._store_catalogue(prov, uploaded)
        except IntegrityError:
            raise InvalidArgument("a concurrent upload of this catalogue won; retry") from None
        await self._reads.publish_version(prov, version.version)
        return version

    async def _store_catalogue(
        self, prov: str, uploaded: dict[str, StoredItem]
    ) -> catalogue_pb2.CatalogueVersion:
        async with self._sessions.begin() as session:
            repository = CatalogueRepository(session)
            head = await repository.lock_head(prov)
            version = head + 1
            current = await repository.current_items(prov)
            changed = [
                item
                for code, item in uploaded.items()
                if code not in current or current[code][1].content() != item.content()
            ]
            if head and not changed and len(current) == len(uploaded):
                # The same catalogue again: keep the version, so reloading changes nothing.
                return catalogue_pb2.CatalogueVersion(version=head, item_count=len(uploaded))
            replaced = [
                current[item.med_list_codg][0] for item in changed if item.med_list_codg in current
            ]
            removed = [row_id for code, (row_id, _) in current.items() if code not in uploaded]
            await repository.close_items(replaced + removed, version)
            await repository.insert_items(prov, version, changed)
            await repository.add_version(
                CatalogueVersionRow(
                    prov_admdvs=prov,
                    version=version,
                    item_count=len(uploaded),
                    changed_count=len(changed),
                    removed_count=len(removed),
                    created_at=dt.datetime.now(dt.UTC),
                )
            )
            await repository.set_head(prov, version)
        async with self._sessions.begin() as session:
            await CatalogueRepository(session).refresh_statistics()
        return catalogue_pb2.CatalogueVersion(
            version=version,
            item_count=len(uploaded),
            changed_count=len(changed),
            removed_count=len(removed),
        )

    async def ListCatalogueVersions(
        self, request: catalogue_service_pb2.ListCatalogueVersionsRequest, context: Context
    ) -> catalogue_service_pb2.ListCatalogueVersionsResponse:
        size = page_size(request.page_size, 100, 1000)
        after = decode_page_token(request.page_token)
        if after and not after.isdigit():
            raise PageTokenInvalid("page_token was not issued by ListCatalogueVersions")
        async with self._sessions() as session:
            rows = await CatalogueRepository(session).versions(
                request.prov_admdvs, int(after or 0), size + 1
            )
        page = rows[:size]
        return catalogue_service_pb2.ListCatalogueVersionsResponse(
            versions=[
                catalogue_pb2.CatalogueVersion(
                    version=row.version,
                    item_count=row.item_count,
                    changed_count=row.changed_count,
                    removed_count=row.removed_count,
                )
                for row in page
            ],
            next_page_token=encode_page_token(str(page[-1].version)) if len(rows) > size else "",
        )

    async def DownloadCatalogue(
        self, request: catalogue_service_pb2.DownloadCatalogueRequest, context: Context
    ) -> AsyncIterator[catalogue_service_pb2.DownloadCatalogueResponse]:
        size = page_size(request.page_size, 500, 1000)
        prov = request.prov_admdvs
        async with self._sessions() as session:
            version = await CatalogueRepository(session).current_version(prov)
        if request.since_version < 0 or request.since_version > version:
            raise VersionNotFound(
                f"province {prov} has no catalogue version {request.since_version}",
                version=request.since_version,
            )
        after = ""
        items: list[StoredItem] = []
        while request.since_version < version:
            async with self._sessions() as session:
                items = await CatalogueRepository(session).changed_since(
                    prov, request.since_version, version, after, size
                )
            if len(items) < size:
                break
            yield catalogue_service_pb2.DownloadCatalogueResponse(
                version=version, items=[stored_to_proto(prov, item) for item in items]
            )
            after, items = items[-1].med_list_codg, []
        async with self._sessions() as session:
            removed = (
                await CatalogueRepository(session).removed_since(
                    prov, request.since_version, version
                )
                if request.since_version
                else []
            )
        yield catalogue_service_pb2.DownloadCatalogueResponse(
            version=version,
            items=[stored_to_proto(prov, item) for item in items],
            removed_codes=removed,
            last_page=True,
        )

    async def GetCatalogueItem(
        self, request: catalogue_service_pb2.GetCatalogueItemRequest, context: Context
    ) -> catalogue_pb2.CatalogueItem:
        prov = request.prov_admdvs
        version = request.version or await self._reads.current_version(prov)
        found = await self._reads.items(prov, version, [request.med_list_codg])
        if request.med_list_codg not in found:
            raise ItemNotFound(
                f"no item {request.med_list_codg} in {prov} catalogue version {version}",
                code=request.med_list_codg,
                version=version,
            )
        return stored_to_proto(prov, found[request.med_list_codg])

    async def UpsertInstitutions(
        self, request: catalogue_service_pb2.UpsertInstitutionsRequest, context: Context
    ) -> catalogue_service_pb2.UpsertInstitutionsResponse:
        caller = caller_from_metadata(context.invocation_metadata())
        if len(request.institutions) > 10_000:
            raise InvalidArgument("at most 10,000 institutions per call")
        rows: dict[str, dict[str, object]] = {}
        for institution in request.institutions:
            problem = logic.institution_problem(
                institution.fixmedins_code,
                institution.fixmedins_name,
                institution.admdvs,
                institution.level,
            )
            if problem:
                raise InstitutionInvalid(
                    f"institution {institution.fixmedins_code}: {problem}",
                    fixmedinsCode=institution.fixmedins_code,
                )
            caller.require_owns(institution.admdvs, f"institution {institution.fixmedins_code}")
            rows[institution.fixmedins_code] = _institution_row(institution)
        async with self._sessions.begin() as session:
            repository = CatalogueRepository(session)
            existing = await repository.institutions(list(rows))
            changed = [
                row
                for code, row in rows.items()
                if code not in existing
                or any(getattr(existing[code], key) != value for key, value in row.items())
            ]
            await repository.put_institutions(changed)
        await self._reads.forget([institution_key(str(row["fixmedins_code"])) for row in changed])
        return catalogue_service_pb2.UpsertInstitutionsResponse(
            written_count=len(changed), unchanged_count=len(rows) - len(changed)
        )

    async def GetInstitution(
        self, request: catalogue_service_pb2.GetInstitutionRequest, context: Context
    ) -> catalogue_pb2.Institution:
        institution = await self._reads.institution(request.fixmedins_code)
        if institution is None:
            raise InstitutionNotFound(
                f"no designated institution {request.fixmedins_code}",
                fixmedinsCode=request.fixmedins_code,
            )
        return institution

    async def SearchInstitutions(
        self, request: catalogue_service_pb2.SearchInstitutionsRequest, context: Context
    ) -> catalogue_service_pb2.SearchInstitutionsResponse:
        size = page_size(request.page_size, 50, 500)
        if request.open_for_med_type and request.open_for_med_type not in _OPEN_COLUMN:
            raise InvalidArgument("open_for_med_type must be 21, 11 or 14")
        if request.level and request.level not in (1, 2, 3):
            raise InvalidArgument("level must be 1, 2 or 3")
        async with self._sessions() as session:
            rows = await CatalogueRepository(session).search_institutions(
                area_prefix=_area_prefix(request.admdvs),
                level=request.level,
                open_column=_OPEN_COLUMN.get(request.open_for_med_type, ""),
                name_contains=request.name_contains[:100],
                on_date=optional_date(request, "on_date") or today_in_china(),
                after_code=decode_page_token(request.page_token),
                limit=size + 1,
            )
        page = rows[:size]
        return catalogue_service_pb2.SearchInstitutionsResponse(
            institutions=[institution_to_proto(row) for row in page],
            next_page_token=encode_page_token(page[-1].fixmedins_code) if len(rows) > size else "",
        )

    async def UpsertItemMappings(
        self, request: catalogue_service_pb2.UpsertItemMappingsRequest, context: Context
    ) -> catalogue_service_pb2.UpsertItemMappingsResponse:
        caller = caller_from_metadata(context.invocation_metadata())
        institution = await self._reads.institution(request.fixmedins_code)
        if institution is None:
            raise InstitutionNotFound(
                f"no designated institution {request.fixmedins_code}",
                fixmedinsCode=request.fixmedins_code,
            )
        caller.require_owns(institution.admdvs, f"mappings of {request.fixmedins_code}")
        if len(request.mappings) > 10_000:
            raise InvalidArgument("at most 10,000 mappings per call")
        mappings = {}
        for mapping in request.mappings:
            if (
                not 0 < len(mapping.medins_list_codg) <= 150
                or not 0 < len(mapping.med_list_codg) <= 50
            ):
                raise InvalidArgument(
                    "medins_list_codg (1..150 characters) and med_list_codg (1..50) are needed"
                )
            mappings[mapping.medins_list_codg] = mapping.med_list_codg
        async with self._sessions.begin() as session:
            await CatalogueRepository(session).put_mappings(request.fixmedins_code, mappings)
        await self._reads.forget([mapping_key(request.fixmedins_code, own) for own in mappings])
        return catalogue_service_pb2.UpsertItemMappingsResponse(written_count=len(mappings))

    async def GetCacheStats(
        self, request: catalogue_service_pb2.GetCacheStatsRequest, context: Context
    ) -> catalogue_service_pb2.GetCacheStatsResponse:
        stats = self._reads.cache.stats
        return catalogue_service_pb2.GetCacheStatsResponse(
            hits=stats.hits, misses=stats.misses, redis_errors=stats.redis_errors
        )


def _checked_item(item: catalogue_pb2.CatalogueItem) -> StoredItem:
    try:
        stored = stored_from_proto(item)
    except (ValueError, InvalidDate) as error:
        raise CatalogueItemInvalid(
            f"item {item.med_list_codg}: {error}", code=item.med_list_codg
        ) from None
    problem = logic.item_problem(
        stored.med_list_codg,
        stored.list_type,
        stored.name,
        stored.item_class,
        stored.selfpay_prop,
        stored.price_cap_fen,
        stored.min_level,
        stored.begin_date,
        stored.end_date,
    )
    if problem:
        raise CatalogueItemInvalid(
            f"item {stored.med_list_codg}: {problem}", code=stored.med_list_codg
        )
    return stored


def _institution_row(institution: catalogue_pb2.Institution) -> dict[str, object]:
    begin = optional_date(institution, "begin_date") or dt.date(2000, 1, 1)
    return {
        "fixmedins_code": institution.fixmedins_code,
        "fixmedins_name": institution.fixmedins_name,
        "admdvs": institution.admdvs,
        "level": institution.level,
        "open_inpatient": institution.open_inpatient,
        "open_outpatient": institution.open_outpatient,
        "open_chronic": institution.open_chronic,
        "begin_date": begin,
        "end_date": optional_date(institution, "end_date"),
    }
