"""``energy-processing report``: the report job's files, written into a folder."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from service.cli import main
from service.settings import Settings
from tests.reports.factory import device_windows
from tests.reports.test_job import store

pytestmark = pytest.mark.integration


@pytest.fixture
def report_env(monkeypatch: pytest.MonkeyPatch, pg_database: str) -> Iterator[pytest.MonkeyPatch]:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("DATABASE_URL", pg_database)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield monkeypatch
    root.handlers[:] = handlers
    root.setLevel(level)


async def test_report_command_writes_the_files(
    report_env: pytest.MonkeyPatch, pg_pool: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    windows = device_windows("meter-a", date(2026, 3, 1), 2)
    await store(pg_pool, windows)
    out = tmp_path / "out"
    argv = ["report", "--start", "2026-03-01", "--end", "2026-03-03", "--out", str(out)]
    # main() runs its own event loop: give it a thread of its own.
    code = await asyncio.to_thread(main, argv)
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert sorted(p.name for p in out.iterdir()) == ["report.csv", "report.html", "report.json"]
    assert Decimal(result["cost"]) == sum(
        (w.cost for w in windows if w.period == "day"), Decimal(0)
    )


def test_report_command_rejects_bad_dates(
    report_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["report", "--start", "2026-03-02", "--end", "2026-03-01", "--out", str(tmp_path)])
    assert raised.value.code == 2
    assert "end: must be after start" in capsys.readouterr().err
