"""`medsettle load` against the running mesh: counts, idempotence, a bad file loading nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from medsettle.filing.v1 import filing_service_pb2, filing_service_pb2_grpc
from medsettle.identity.v1 import identity_service_pb2, identity_service_pb2_grpc

from services.common.mesh import Mesh
from services.demo.bundle import write_demo_bundle
from tests.bundle_files import cell, set_cell

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def run_medsettle(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.common", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_load(bundle_dir: Path, mesh: Mesh) -> subprocess.CompletedProcess[str]:
    return run_medsettle("load", str(bundle_dir), "--endpoints", str(mesh.endpoints_path))


def test_loading_a_bundle_twice_changes_nothing_the_second_time(mesh: Mesh, tmp_path: Path) -> None:
    bundle_dir = write_demo_bundle(tmp_path / "bundle", persons=120, seed=7)
    first = run_load(bundle_dir, mesh)
    assert first.returncode == 0, first.stderr
    assert "persons.csv: 120 inserted, 0 updated, 0 unchanged" in first.stdout
    assert "filings.csv: 120 created, 0 unchanged" in first.stdout
    assert "institutions.csv: 1011 written, 0 unchanged" in first.stdout
    assert "catalogue.csv: 31 provinces, 558 items, 558 changed" in first.stdout
    assert "policies.json: 6066 written, 0 unchanged" in first.stdout
    second = run_load(bundle_dir, mesh)
    assert second.returncode == 0, second.stderr
    assert "persons.csv: 0 inserted, 0 updated, 120 unchanged" in second.stdout
    assert "filings.csv: 0 created, 120 unchanged" in second.stdout
    assert "institutions.csv: 0 written, 1011 unchanged" in second.stdout
    assert "catalogue.csv: 31 provinces, 558 items, 0 changed" in second.stdout
    assert "policies.json: 0 written, 6066 unchanged" in second.stdout
    assert "total" in second.stdout


@pytest.mark.asyncio(loop_scope="module")
async def test_a_file_with_one_bad_row_loads_nothing_and_names_the_cell(
    mesh: Mesh, tmp_path: Path
) -> None:
    bundle_dir = write_demo_bundle(tmp_path / "bundle", persons=30, seed=99, psn_prefix="Q")
    persons_file = bundle_dir / "persons.csv"
    certno = cell(persons_file, 6, "certno")
    set_cell(persons_file, 6, "certno", certno[:-1] + ("1" if certno[-1] == "0" else "0"))
    set_cell(persons_file, 10, "insutype", "311")
    first_psn_no = cell(persons_file, 2, "psn_no")
    result = run_load(bundle_dir, mesh)
    assert result.returncode == 1
    assert "persons.csv: NOT LOADED" in result.stdout
    assert "persons.csv:10: insutype: '311' must be one of 310, 390" in result.stdout
    endpoints = json.loads(mesh.endpoints_path.read_text())
    async with grpc.aio.insecure_channel(endpoints["identity"]) as channel:
        stub = identity_service_pb2_grpc.IdentityServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetPerson(identity_service_pb2.GetPersonRequest(psn_no=first_psn_no))
    assert raised.value.code() is grpc.StatusCode.NOT_FOUND
    # The persons are unknown, so filings.csv is refused too, row by row.
    assert "filings.csv: NOT LOADED" in result.stdout
    assert "psn_no: no such insured person" in result.stdout
    async with grpc.aio.insecure_channel(endpoints["filing"]) as channel:
        listed = await filing_service_pb2_grpc.FilingServiceStub(channel).ListFilings(
            filing_service_pb2.ListFilingsRequest(psn_no=first_psn_no)
        )
    assert list(listed.filings) == []


def test_the_demo_bundle_command_writes_every_file_and_counts_its_rows(tmp_path: Path) -> None:
    written = run_medsettle("demo-bundle", str(tmp_path / "demo"), "--persons", "25", "--seed", "3")
    assert written.returncode == 0, written.stderr
    lines = written.stdout.splitlines()
    assert lines[:6] == [
        "catalogue.csv: 558 rows",
        "filings.csv: 25 rows",
        "institutions.csv: 1,011 rows",
        "persons.csv: 25 rows",
        "policies.json: 6,066 entries",
        "regions.csv: 368 rows",
    ]
    assert lines[6].startswith("written in ")
    refused = run_medsettle("demo-bundle", str(tmp_path / "other"), "--scale", "galactic")
    assert refused.returncode == 2 and "invalid choice: 'galactic'" in refused.stderr
