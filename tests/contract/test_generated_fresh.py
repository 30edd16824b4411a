"""The committed protos/gen matches what `make protos` would write now."""

from __future__ import annotations

import filecmp
import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.contract

ROOT = Path(__file__).resolve().parents[2]


def _load_generator() -> object:
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _differences(left: Path, right: Path) -> list[str]:
    comparison = filecmp.dircmp(left, right, ignore=["__pycache__"])
    found = [f"only in committed: {name}" for name in comparison.left_only]
    found += [f"only in regenerated: {name}" for name in comparison.right_only]
    found += [f"differs: {name}" for name in comparison.diff_files]
    for name, sub in comparison.subdirs.items():
        found += [f"{name}/{item}" for item in _differences(Path(sub.left), Path(sub.right))]
    return found


def test_committed_generated_code_is_up_to_date(tmp_path: Path) -> None:
    generator = _load_generator()
    generator.generate(tmp_path)  # type: ignore[attr-defined]
    stale = _differences(ROOT / "protos" / "gen" / "medsettle", tmp_path / "medsettle")
    assert stale == [], "protos/gen is stale; run `make protos`: " + ", ".join(stale)
