"""The committed bindings in proto/python must be what `make proto` generates from proto/."""

import filecmp
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_generated_bindings_are_current(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
        capture_output=True,
    )
    committed = REPO / "proto" / "python" / "workbench"
    fresh = tmp_path / "workbench"
    assert _files(fresh) == _files(committed), "proto/python is stale: run `make proto` and commit"
    stale = [name for name in _files(fresh) if not filecmp.cmp(fresh / name, committed / name, shallow=False)]
    assert stale == [], f"proto/python is stale ({stale}): run `make proto` and commit"
