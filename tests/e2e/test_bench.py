"""`medsettle bench` on the running mesh: visits settle through the gateway, the echo chain runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.bundle_loader import load_bundle
from services.common.mesh import SERVICES, Mesh
from services.demo.bundle import long_term_patients, write_demo_bundle
from services.loadgen import echo_chain, run_bench

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


async def test_the_load_generator_settles_visits_without_errors(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = write_demo_bundle(tmp_path / "bundle", persons=60)
    assert (await load_bundle(bundle, mesh.config.endpoints())).ok
    assert long_term_patients(bundle)
    tally = await run_bench(
        mesh.config.endpoints(),
        bundle,
        concurrency=2,
        rate=0.0,
        duration_s=3.0,
        lines=10,
        hospitals=2,
    )
    assert tally.visits > 0
    assert not tally.errors
    assert {len(tally.seconds[infno]) >= tally.visits for infno in ("1101", "2401", "2301")} == {
        True
    }
    printed = capsys.readouterr().out
    assert "settlements (2304):" in printed
    # Every mesh process's CPU was read from its metrics endpoint, before and after.
    cpu_line = next(line for line in printed.splitlines() if line.startswith("CPU per"))
    for process in ("catalogue", "clearing", "filing", "gateway", "identity", "settlement"):
        assert f"{process} " in cpu_line
    assert "this load generator" in cpu_line
    assert "PostgreSQL not on this machine or not used" in cpu_line  # this mesh is on SQLite
    assert "ratio 2304 p50 / echo-chain p50:" in printed


async def test_the_echo_chain_answers_through_four_processes() -> None:
    seconds = await echo_chain(concurrency=2, duration_s=1.0)
    assert len(seconds) > 10


async def test_settle_only_times_2304_on_prepared_visits(
    mesh: Mesh, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = write_demo_bundle(tmp_path / "bundle", persons=60)
    assert (await load_bundle(bundle, mesh.config.endpoints())).ok
    tally = await run_bench(
        mesh.config.endpoints(),
        bundle,
        concurrency=2,
        rate=0.0,
        duration_s=1.0,
        lines=5,
        hospitals=2,
        settle_only=6,
    )
    assert (tally.visits, len(tally.seconds["2304"]), dict(tally.errors)) == (6, 6, {})
    printed = capsys.readouterr().out
    assert "2304 alone on 6 prepared visits" in printed
    [cpu_line] = [line for line in printed.splitlines() if line.startswith("CPU per settlement")]
    figures = dict(
        (name, float(ms)) for name, ms in re.findall(r"(\w+) (\d+\.\d)", cpu_line.split(";")[0])
    )
    assert set(figures) == {*SERVICES, "gateway"}
    assert figures["gateway"] > 0 and figures["settlement"] > 0  # the two that every 2304 crosses
    own = re.fullmatch(r".*; this load generator (\d+\.\d)", cpu_line)
    assert own is not None and float(own.group(1)) > 0
