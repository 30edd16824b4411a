"""Benchmark: `medsettle load` of a bundle with N persons and N filings (default 10,000).

Starts the mesh on free ports (embedded SQLite by default, or --postgres-url), writes the demo
bundle, loads it twice (the second load must change nothing) and prints the times.

    .venv/bin/python bench/load_bundle.py [--persons 10000] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import uvloop

from services.bundle_loader import load_bundle
from services.common.mesh import Mesh, MeshConfig, drop_databases
from services.demo.bundle import write_demo_bundle


async def main(persons: int, postgres_url: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        config = MeshConfig.on_free_ports(data_dir, postgres_url=postgres_url, log_to_files=True)
        config.database_prefix = f"medsettle_bench_{config.base_port}"
        mesh = Mesh(config)
        endpoints = await mesh.start()
        try:
            clock = time.perf_counter()
            bundle_dir = write_demo_bundle(data_dir / "bundle", persons=persons)
            print(
                f"wrote a bundle of {persons} persons and filings in "
                f"{time.perf_counter() - clock:.2f} s"
            )
            for attempt in ("first load", "second load (must change nothing)"):
                report = await load_bundle(bundle_dir, endpoints)
                print(f"{attempt}: {report.seconds:.2f} s")
                for file_report in report.files:
                    print("  " + file_report.line())
        finally:
            await mesh.stop()
            await drop_databases(config)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=10_000)
    parser.add_argument("--postgres-url", default="")
    args = parser.parse_args()
    uvloop.run(main(args.persons, args.postgres_url))
