"""streams/ is pure arithmetic: it must not import I/O frameworks (STYLE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

FORBIDDEN = {
    "faust",
    "mode",
    "aiokafka",
    "asyncpg",
    "influxdb_client",
    "starlette",
    "uvicorn",
    "agents",
    "api",
    "storage",
    "service",
}
STREAMS = Path(__file__).resolve().parents[2] / "streams"


@pytest.mark.parametrize("path", sorted(STREAMS.glob("*.py")), ids=lambda p: p.name)
def test_streams_module_imports_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & FORBIDDEN, f"{path.name} imports {sorted(imported & FORBIDDEN)}"
