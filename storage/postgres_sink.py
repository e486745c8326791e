"""The PostgreSQL sink: window aggregates upserted into ``metrics``, one transaction per
batch, through the cheapest path that carries the batch exactly."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import asyncpg

from models.metrics import WindowAggregate
from storage.metrics_copy import CREATE_STAGE, STAGE_COLUMNS, STAGE_TABLE, copy_data
from storage.metrics_sql import (
    INSERT_NEW_STAGED,
    UPSERT_METRICS,
    UPSERT_METRICS_JSON,
    UPSERT_METRICS_STAGED,
    UPSERT_REVISED_STAGED,
    metric_columns,
    metrics_json,
)
from storage.postgres import SINK_NAME, mapped_errors

logger = logging.getLogger(__name__)


def _row_count(status: Any) -> int:
    """The row count of a command status (``INSERT 0 12``)."""
    return int(str(status).rsplit(" ", 1)[-1])


def dedupe_windows(batch: Sequence[WindowAggregate]) -> list[WindowAggregate]:
    """One row per key (the highest revision; the later one on a tie), in key order.

    ON CONFLICT cannot touch a row twice in one statement, and a fixed order means two
    workers upserting overlapping batches lock rows in the same order (no deadlock).
    """
    latest: dict[tuple[str, str, Any], WindowAggregate] = {}
    for window in batch:
        key = (window.device_id, window.period, window.window_start)
        kept = latest.get(key)
        if kept is None or window.revision >= kept.revision:
            latest[key] = window
    return [latest[key] for key in sorted(latest)]


class PostgresSink:
    """Upserts window aggregates into ``metrics``, one transaction per batch: binary COPY into
    a temporary staging table, then a plain INSERT of the new windows (revision 0) and
    INSERT ... ON CONFLICT for the revised ones, or for all of them when a new one is
    stored already (else one statement with the batch as JSON or typed arrays)."""

    name = SINK_NAME

    def __init__(self, pool: Any, *, timeout: float = 30.0) -> None:
        self._pool = pool
        self._timeout = timeout
        self.rows_changed = 0
        """Rows inserted or replaced by a higher revision (replays do not count)."""
        self.staging = True
        """Whether batches go through the COPY staging table (off once the server refuses
        to create it)."""

    async def start(self) -> None:
        """Check that the server answers and the schema is migrated."""
        with mapped_errors():
            await self._pool.fetchval("SELECT 1 FROM metrics LIMIT 1", timeout=self._timeout)

    async def write(self, batch: Sequence[WindowAggregate]) -> None:
        rows = dedupe_windows(batch)
        if not rows:
            return
        with mapped_errors():
            changed = await self._staged_upsert(rows) if self.staging else None
            if changed is None:
                changed = await self._parameter_upsert(batch, rows)
        self.rows_changed += changed

    async def _staged_upsert(self, rows: list[WindowAggregate]) -> int | None:
        """The COPY path: rows inserted or replaced; None when it cannot carry ``rows`` (or
        the role cannot use it)."""
        data = copy_data(rows)
        if data is None:
            return None
        revisions = {window.revision == 0 for window in rows}
        try:
            return await self._copy_upsert(data, True in revisions, False in revisions)
        except asyncpg.exceptions.InsufficientPrivilegeError as exc:
            # A role without the TEMP privilege on the database: the other paths need no
            # temporary table (and report any other missing privilege).
            self.staging = False
            logger.warning("metrics upsert without a staging table from now on: %s", exc)
            return None

    async def _parameter_upsert(
        self, batch: Sequence[WindowAggregate], rows: list[WindowAggregate]
    ) -> int:
        """One statement with the rows as a JSON parameter, else as typed arrays: rows
        inserted or replaced."""
        encoded = getattr(batch, "json", None)  # EncodedWindows: each one's json_bytes()
        if encoded is not None:
            by_window = {id(window): data for window, data in zip(batch, encoded, strict=True)}
            encoded = [by_window[id(window)] for window in rows]
        payload = metrics_json(rows, encoded)
        if payload is not None:
            status = await self._pool.execute(UPSERT_METRICS_JSON, payload, timeout=self._timeout)
        else:
            columns = metric_columns(rows)
            status = await self._pool.execute(UPSERT_METRICS, *columns, timeout=self._timeout)
        return _row_count(status)

    async def _copy_upsert(self, data: bytes, new: bool, revised: bool) -> int:
        """COPY ``data`` (``copy_data``) into the session's staging table and upsert it, in
        one transaction: the staged rows go at commit, or with a rollback. ``new``: some
        rows have revision 0; ``revised``: some have a higher one."""
        acquire = getattr(self._pool, "acquire", None)
        if acquire is None:  # a connection rather than a pool
            return await self._copy_on(self._pool, data, new, revised)
        async with acquire(timeout=self._timeout) as connection:
            return await self._copy_on(connection, data, new, revised)

    async def _copy_on(self, connection: Any, data: bytes, new: bool, revised: bool) -> int:
        timeout = self._timeout
        async with connection.transaction():
            await connection.execute(CREATE_STAGE, timeout=timeout)
            await connection.copy_to_table(  # a memoryview: asyncpg reads bytes as a path
                STAGE_TABLE,
                source=memoryview(data),
                columns=STAGE_COLUMNS,
                format="binary",
                timeout=timeout,
            )
            if new:
                try:
                    async with connection.transaction():  # a savepoint
                        inserted = await connection.execute(INSERT_NEW_STAGED, timeout=timeout)
                except asyncpg.exceptions.UniqueViolationError:
                    pass  # some are stored already: the upsert decides, row by row
                else:
                    if not revised:
                        return _row_count(inserted)
                    upserted = await connection.execute(UPSERT_REVISED_STAGED, timeout=timeout)
                    return _row_count(inserted) + _row_count(upserted)
            return _row_count(await connection.execute(UPSERT_METRICS_STAGED, timeout=timeout))

    async def close(self) -> None:
        """Nothing to release: the pool belongs to whoever built it."""
