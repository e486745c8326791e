"""Rendering is pure: only reports/data.py (and the job and CLI glue) touch the database."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPORTS = Path(__file__).resolve().parents[2] / "reports"
IO_MODULES = {"data.py", "job.py", "local.py", "context.py", "__init__.py"}
FORBIDDEN = {
    "asyncpg",
    "faust",
    "aiokafka",
    "influxdb_client",
    "starlette",
    "storage",
    "agents",
    "api",
}


@pytest.mark.parametrize(
    "path",
    sorted(p for p in REPORTS.glob("*.py") if p.name not in IO_MODULES),
    ids=lambda p: p.name,
)
def test_rendering_module_imports_no_io(path: Path) -> None:
    imported = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module not in {"reports.data", "reports.job", "reports.local"}, path.name
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"
