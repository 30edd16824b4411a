"""Generate Python, gRPC and mypy stubs from protos/medsettle into protos/gen.

Run through `make protos`. The output is committed; tests/contract fails when it is stale.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
SOURCE = PROTO_ROOT / "medsettle"


def proto_files() -> list[Path]:
    """Every medsettle .proto, in a stable order so output never depends on the file system."""
    return sorted(SOURCE.rglob("*.proto"))


def _plugins() -> dict[str, Path]:
    """mypy-protobuf's protoc plugins, found beside this interpreter even when PATH lacks them."""
    scripts = Path(sys.executable).parent
    return {
        name: scripts / name
        for name in ("protoc-gen-mypy", "protoc-gen-mypy_grpc")
        if (scripts / name).exists()
    }


def generate(out_dir: Path) -> None:
    """Write generated modules for every medsettle proto into out_dir (replacing its medsettle/)."""
    target = out_dir / "medsettle"
    if target.exists():
        shutil.rmtree(target)
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        *(f"--plugin={name}={path}" for name, path in _plugins().items()),
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *(str(path.relative_to(PROTO_ROOT)) for path in proto_files()),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Packages need __init__.py so mypy and hatch see them; the generator writes none.
    for directory in [target, *(p for p in target.rglob("*") if p.is_dir())]:
        (directory / "__init__.py").touch()


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else PROTO_ROOT / "gen")
