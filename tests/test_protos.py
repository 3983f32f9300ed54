"""The committed gRPC modules match a fresh generation from protos/."""

from __future__ import annotations

import filecmp
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "protos"))

import generate  # noqa: E402

GENERATED = Path(__file__).resolve().parents[1] / "service" / "grpc_gen"


def _files(root: Path) -> set[str]:
    return {str(path.relative_to(root)) for path in root.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts}


def test_generated_modules_match_protos(tmp_path: Path) -> None:
    fresh = tmp_path / "grpc_gen"
    generate.generate(fresh)

    assert _files(fresh) == _files(GENERATED), "run: python protos/generate.py"
    differing = [name for name in sorted(_files(fresh))
                 if not filecmp.cmp(fresh / name, GENERATED / name, shallow=False)]
    assert differing == [], f"stale generated files {differing}; run: python protos/generate.py"
