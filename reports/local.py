"""Build a report outside the jobs framework, into a folder (the ``report`` CLI command)."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reports.job import build_report
from service.settings import Settings
from storage.postgres import create_pool


@dataclass
class FolderContext:
    """A ``ReportContext`` that writes artifacts into a folder and progress to stderr."""

    pool: Any
    parameters: Mapping[str, Any]
    settings: Settings
    out: Path
    job_id: uuid.UUID = field(default_factory=uuid.uuid4)
    written: list[Path] = field(default_factory=list)

    async def progress(self, percent: int) -> None:
        print(f"report: {percent} %", file=sys.stderr, flush=True)

    async def save_artifact(self, name: str, content_type: str, data: bytes) -> None:
        path = self.out / name
        await asyncio.to_thread(path.write_bytes, data)
        self.written.append(path)


async def report_to_folder(
    dsn: str, settings: Settings, parameters: Mapping[str, Any], out: Path
) -> dict[str, Any]:
    """Write the requested files into ``out`` (an existing folder); return the job result."""
    pool = await create_pool(dsn, min_size=1, max_size=2)
    try:
        context = FolderContext(pool=pool, parameters=parameters, settings=settings, out=out)
        return await build_report(context)
    finally:
        await pool.close()
