"""What a report job needs from the jobs framework, and nothing more.

The framework's ``JobContext`` satisfies ``ReportContext`` structurally; tests pass a fake.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Protocol

from service.settings import Settings


class ReportContext(Protocol):
    """The running job as ``build_report`` sees it."""

    @property
    def job_id(self) -> uuid.UUID: ...

    @property
    def parameters(self) -> Mapping[str, Any]:
        """The job's parameters as submitted (see ``reports.parameters``)."""
        ...

    @property
    def settings(self) -> Settings: ...

    @property
    def pool(self) -> Any:
        """An asyncpg pool on the metrics database."""
        ...

    async def progress(self, percent: int) -> None: ...

    async def save_artifact(self, name: str, content_type: str, data: bytes) -> None: ...
