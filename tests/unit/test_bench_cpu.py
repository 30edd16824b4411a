"""How `medsettle bench` finds PostgreSQL's share of the CPU: the mesh's backends, from /proc."""

from __future__ import annotations

import os
from pathlib import Path

from services.loadgen import mesh_database_prefix, postgres_cpu_seconds, process_cpu_seconds

TICKS = os.sysconf("SC_CLK_TCK")


def _process(proc: Path, pid: int, title: str, utime: int, stime: int) -> None:
    entry = proc / str(pid)
    entry.mkdir(parents=True)
    (entry / "cmdline").write_bytes(title.replace(" ", "\0").encode() + b"\0")
    # The command name may hold spaces and parentheses; utime and stime are fields 14 and 15.
    after = ["S", "1", "1", "1", "0", "-1", "4194304", "10", "0", "0", "0", str(utime), str(stime)]
    (entry / "stat").write_text(f"{pid} (postgres: a (b)) " + " ".join(after + ["0"] * 8))


def test_the_mesh_databases_are_found_only_on_a_postgresql_server_of_this_machine() -> None:
    local = "postgresql+asyncpg://postgres@127.0.0.1:5432/medsettle_gateway"
    assert mesh_database_prefix({"gateway_database": local}) == "medsettle_"
    assert mesh_database_prefix({"gateway_database": local.replace("127.0.0.1", "db.prod")}) is None
    assert mesh_database_prefix({"gateway_database": "sqlite+aiosqlite:////d/g.sqlite"}) is None
    assert mesh_database_prefix({}) is None


def test_only_backends_of_the_mesh_databases_are_counted_with_user_and_system_time(
    tmp_path: Path,
) -> None:
    _process(
        tmp_path, 100, "postgres: 15/main: postgres medsettle_gateway 127.0.0.1(4) idle", 1234, 566
    )
    _process(tmp_path, 101, "postgres: postgres medsettle_settlement [local] idle", 10, 5)
    _process(tmp_path, 102, "postgres: 15/main: postgres other_db 127.0.0.1(5) idle", 900, 900)
    _process(tmp_path, 103, "postgres: 15/main: walwriter", 77, 77)
    _process(tmp_path, 104, "python -m services.settlement medsettle_x", 500, 500)
    (tmp_path / "self").mkdir()
    found = postgres_cpu_seconds("medsettle_", tmp_path)
    assert found == {100: (1234 + 566) / TICKS, 101: 15 / TICKS}


def test_a_process_cpu_is_its_user_and_system_time(tmp_path: Path) -> None:
    _process(tmp_path, 200, "python -m services.visit_floor gateway", 300, 45)
    assert process_cpu_seconds(200, tmp_path) == (300 + 45) / TICKS
