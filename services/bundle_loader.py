"""`medsettle load`: send a bundle directory through the services' provincial gRPC APIs.

Files load in bundle-format order (regions, institutions, catalogue, policies, persons, filings).
Each file is sent in one transaction, so a file loads whole or not at all; a file with problems
is reported (file, line, column) and the others still load. Small files are checked whole before
anything is sent; persons and filings (1.6 million rows each nationally) are sent as they are
read, and at the first problem their upload is left unfinished, which the service rolls back.
Loading the same bundle twice changes nothing. The loader acts as the national platform, which
may write every province's data.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Never

import grpc
from medsettle.catalogue.v1 import catalogue_service_pb2_grpc
from medsettle.filing.v1 import filing_service_pb2_grpc
from medsettle.identity.v1 import identity_service_pb2, identity_service_pb2_grpc
from medsettle.settlement.v1 import settlement_service_pb2_grpc
from tqdm import tqdm

from services.catalogue import bundle as catalogue_bundle
from services.common.bundle import BundleInvalid, count_lines
from services.filing import bundle as filing_bundle
from services.identity import bundle as identity_bundle
from services.settlement import bundle as settlement_bundle


@dataclass
class FileReport:
    """What happened to one file."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        """A summary for the terminal."""
        if self.problems:
            return f"{self.name}: NOT LOADED\n  " + "\n  ".join(self.problems)
        counts = ", ".join(f"{value} {key}" for key, value in self.counts.items())
        return f"{self.name}: {counts} ({self.seconds:.2f} s)"


@dataclass
class LoadReport:
    """What happened to a bundle."""

    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """True when every present file loaded."""
        return all(not report.problems for report in self.files)


def _bar(total: int, name: str) -> tqdm[Never]:
    return tqdm(total=total, desc=name, unit=" rows", leave=False, disable=None)


class BundleLoader:
    """Loads one bundle directory through gRPC stubs of the services."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        self._channels = {
            name: grpc.aio.insecure_channel(endpoints[name])
            for name in ("identity", "filing", "catalogue", "settlement")
        }
        self._catalogue = catalogue_service_pb2_grpc.CatalogueServiceStub(
            self._channels["catalogue"]
        )
        self._identity = identity_service_pb2_grpc.IdentityServiceStub(self._channels["identity"])
        self._filing = filing_service_pb2_grpc.FilingServiceStub(self._channels["filing"])
        self._settlement = settlement_service_pb2_grpc.SettlementServiceStub(
            self._channels["settlement"]
        )
        self._insured_area: dict[str, str] = {}

    async def close(self) -> None:
        """Close the channels."""
        for channel in self._channels.values():
            await channel.close()

    async def load(self, directory: Path) -> LoadReport:
        """Load every file present in directory."""
        started = time.perf_counter()
        report = LoadReport()
        steps: list[tuple[str, Callable[[Path], Awaitable[dict[str, int]]]]] = [
            ("regions.csv", self._regions),
            ("institutions.csv", self._institutions),
            ("catalogue.csv", self._catalogue_items),
            ("policies.json", self._policies),
            ("persons.csv", self._persons),
            ("filings.csv", self._filings),
        ]
        for name, step in steps:
            path = directory / name
            if path.exists():
                report.files.append(await self._file(path, step))
        report.seconds = time.perf_counter() - started
        return report

    async def _file(
        self, path: Path, step: Callable[[Path], Awaitable[dict[str, int]]]
    ) -> FileReport:
        file_report = FileReport(path.name)
        clock = time.perf_counter()
        try:
            file_report.counts = await step(path)
        except BundleInvalid as error:
            file_report.problems = [str(problem) for problem in error.problems]
        except grpc.aio.AioRpcError as error:
            file_report.problems = [f"{path.name}: refused by the service: {error.details()}"]
        file_report.seconds = time.perf_counter() - clock
        return file_report

    async def _regions(self, path: Path) -> dict[str, int]:
        reply = await identity_bundle.load_regions(
            self._identity, identity_bundle.read_regions(path)
        )
        return {"written": reply.written_count, "unchanged": reply.unchanged_count}

    async def _institutions(self, path: Path) -> dict[str, int]:
        reply = await catalogue_bundle.load_institutions(
            self._catalogue, catalogue_bundle.read_institutions(path)
        )
        return {"written": reply.written_count, "unchanged": reply.unchanged_count}

    async def _catalogue_items(self, path: Path) -> dict[str, int]:
        per_province = catalogue_bundle.province_counts(path)
        counts = {"provinces": len(per_province), "items": 0, "changed": 0}
        with _bar(sum(per_province.values()), path.name) as bar:
            for prov, items in catalogue_bundle.catalogue_by_province(path):
                version = await catalogue_bundle.load_catalogue(
                    self._catalogue, prov, items, bar.update
                )
                counts["items"] += version.item_count
                counts["changed"] += version.changed_count
        return counts

    async def _policies(self, path: Path) -> dict[str, int]:
        reply = await settlement_bundle.load_policies(
            self._settlement, settlement_bundle.read_policies(path)
        )
        return {"written": reply.written_count, "unchanged": reply.unchanged_count}

    async def _persons(self, path: Path) -> dict[str, int]:
        read: dict[str, str] = {}
        with _bar(count_lines(path) - 1, path.name) as bar:
            reply = await identity_bundle.load_persons(self._identity, path, read, bar.update)
        self._insured_area.update(read)  # only persons that loaded: filings of others are refused
        return {
            "inserted": reply.inserted_count,
            "updated": reply.updated_count,
            "unchanged": reply.unchanged_count,
        }

    async def _filings(self, path: Path) -> dict[str, int]:
        with _bar(count_lines(path) - 1, path.name) as bar:
            reply = await filing_bundle.load_filings(
                self._filing, path, self._insured_area, self._learn_insured_areas, bar.update
            )
        return {"created": reply.created_count, "unchanged": reply.unchanged_count}

    async def _learn_insured_areas(self, psn_nos: set[str]) -> None:
        """Ask identity for the insured area of persons not in this bundle's persons.csv."""
        for psn_no in sorted(psn_nos):
            try:
                person = await self._identity.GetPerson(
                    identity_service_pb2.GetPersonRequest(psn_no=psn_no), timeout=10
                )
            except grpc.aio.AioRpcError as error:
                if error.code() is grpc.StatusCode.NOT_FOUND:
                    continue  # reported by filing_request as "no such insured person"
                raise
            if person.insurances:
                self._insured_area[psn_no] = person.insurances[0].insuplc_admdvs


async def load_bundle(directory: Path, endpoints: dict[str, str]) -> LoadReport:
    """Load a bundle directory through the services at endpoints."""
    loader = BundleLoader(endpoints)
    try:
        return await loader.load(directory)
    finally:
        await loader.close()
