"""PostgreSQL connections for the storage drivers: the asyncpg pool, and its failures mapped
to storage errors.

Failures are mapped once, in ``map_error``: anything that says "the server is not reachable
right now" becomes ``SinkUnavailable`` (retry), anything that says "this data is wrong"
becomes ``SinkRejected``. The drivers take a built pool (``create_pool``) and never close
it: its owner does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg

from storage.base import SinkRejected, SinkUnavailable, StorageError

SINK_NAME = "postgres"


# asyncpg.DataError is the server's class 22; the client's encoding error is this one.
_ClientDataError: type[Exception] = asyncpg.exceptions._base.DataError

# Transient by nature: the server is away, restarting, overloaded, or chose a victim.
_TRANSIENT_POSTGRES_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.exceptions.PostgresConnectionError,  # class 08
    asyncpg.exceptions.OperatorInterventionError,  # class 57: shutdown, cannot connect now
    asyncpg.exceptions.InsufficientResourcesError,  # class 53: too many connections, disk full
    asyncpg.exceptions.TransactionRollbackError,  # class 40: serialization failure, deadlock
    asyncpg.exceptions.ReadOnlySQLTransactionError,  # a failover left us on a replica
)


def map_error(exc: BaseException, sink: str = SINK_NAME) -> StorageError | None:
    """The storage error ``exc`` stands for, or None when it is not a database failure."""
    if isinstance(exc, StorageError):
        return exc
    detail = f"{type(exc).__name__}: {exc}".strip()
    if isinstance(exc, _TRANSIENT_POSTGRES_ERRORS):
        return SinkUnavailable(sink, detail)
    if isinstance(exc, _ClientDataError | asyncpg.PostgresError):
        # Values the client cannot encode, and everything else the server refused (classes
        # 22, 23, 42: bad values, constraint violations, a schema that is not migrated).
        return SinkRejected(sink, detail)
    if isinstance(exc, asyncpg.InterfaceError | asyncpg.exceptions.InternalClientError):
        # Connection closed mid-operation, pool closed or closing.
        return SinkUnavailable(sink, detail)
    if isinstance(exc, OSError | TimeoutError):
        return SinkUnavailable(sink, detail)
    return None


@contextmanager
def mapped_errors(sink: str = SINK_NAME) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = map_error(exc, sink)
        if mapped is None or mapped is exc:
            raise
        raise mapped from exc


async def create_pool(
    dsn: str, *, min_size: int = 1, max_size: int = 10, connect_timeout: float = 10.0
) -> Any:
    """An asyncpg pool for ``dsn``; ``SinkUnavailable`` if the server cannot be reached."""
    with mapped_errors():
        return await asyncpg.create_pool(
            dsn, min_size=min_size, max_size=max_size, timeout=connect_timeout
        )
