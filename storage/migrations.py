"""Versioned SQL migrations (``storage/migrations/NNNN_name.sql``), applied in order, once.

Each migration runs in its own transaction and is recorded in ``schema_migrations`` with a
checksum of its file. An advisory lock serialises concurrent callers (several workers
starting at once): the first applies, the others wait and then find nothing to do. A
migration whose file changed after it was applied stops start-up: history must not be edited;
add a new migration instead.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import asyncpg

from storage.base import StorageError

logger = logging.getLogger(__name__)

# Any fixed 64-bit number works; this one is "energy migrations" by convention of this project.
ADVISORY_LOCK_KEY = 0x656E6572_6779_4D31
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(StorageError):
    """The migrations on disk or in the database are inconsistent."""


class MigrationChecksumMismatch(MigrationError):
    """An applied migration's file changed since it was applied."""

    def __init__(self, version: int, name: str, applied: str, on_disk: str) -> None:
        super().__init__(
            f"migration {version:04d}_{name} was applied with checksum {applied[:12]}… but the "
            f"file now has {on_disk[:12]}…; do not edit applied migrations, add a new one"
        )
        self.version = version
        self.name = name
        self.applied_checksum = applied
        self.file_checksum = on_disk


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str
    checksum: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


def load_migrations(folder: Traversable | Path | None = None) -> list[Migration]:
    """The migrations in ``folder`` (default: those shipped in ``storage/migrations``),
    ordered by version."""
    if folder is None:
        folder = resources.files("storage") / "migrations"
    migrations: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"migration file {entry.name!r} is not named NNNN_name.sql")
        # A checkout with CRLF line ends must not look like an edited migration.
        body = entry.read_bytes().replace(b"\r\n", b"\n")
        migration = Migration(
            version=int(match["version"]),
            name=match["name"],
            sql=body.decode("utf-8"),
            checksum=hashlib.sha256(body).hexdigest(),
        )
        if migration.version in migrations:
            other = migrations[migration.version]
            raise MigrationError(f"two migrations with version {migration.version}: "
                                 f"{other.label} and {migration.label}")  # fmt: skip
        migrations[migration.version] = migration
    return [migrations[version] for version in sorted(migrations)]


async def migrate(dsn: str, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations on a connection of its own; return the applied labels."""
    connection = await asyncpg.connect(dsn)
    try:
        return await migrate_connection(connection, migrations)
    finally:
        await connection.close()


async def migrate_pool(pool: Any, migrations: list[Migration] | None = None) -> list[str]:
    """Apply pending migrations using one connection of an asyncpg pool."""
    async with pool.acquire() as connection:
        return await migrate_connection(connection, migrations)


async def migrate_connection(
    connection: Any, migrations: list[Migration] | None = None
) -> list[str]:
    """Apply pending migrations on ``connection`` under the advisory lock."""
    wanted = load_migrations() if migrations is None else migrations
    if not await connection.fetchval("SELECT pg_try_advisory_lock($1)", ADVISORY_LOCK_KEY):
        logger.info("another process is migrating the database; waiting for it")
        await connection.execute("SELECT pg_advisory_lock($1)", ADVISORY_LOCK_KEY)
    try:
        await connection.execute(_CREATE_TABLE)
        rows = await connection.fetch("SELECT version, name, checksum FROM schema_migrations")
        applied = {int(row["version"]): row for row in rows}
        _verify(wanted, applied)
        done: list[str] = []
        for migration in wanted:
            if migration.version in applied:
                continue
            try:
                async with connection.transaction():
                    await connection.execute(migration.sql)
                    await connection.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES ($1, $2, $3)",
                        migration.version,
                        migration.name,
                        migration.checksum,
                    )
            except asyncpg.PostgresError as exc:
                raise MigrationError(f"migration {migration.label} failed: {exc}") from exc
            logger.info("applied migration %s", migration.label)
            done.append(migration.label)
        return done
    finally:
        await connection.execute("SELECT pg_advisory_unlock($1)", ADVISORY_LOCK_KEY)


def _verify(wanted: list[Migration], applied: dict[int, Any]) -> None:
    known = {migration.version: migration for migration in wanted}
    for version, row in sorted(applied.items()):
        migration = known.get(version)
        if migration is None:
            # A newer release migrated this database; older code can usually still run
            # against an additive schema, so say so and carry on.
            logger.warning(
                "database has migration %04d_%s that this release does not know",
                version,
                row["name"],
            )
        elif row["checksum"] != migration.checksum:
            raise MigrationChecksumMismatch(
                version, migration.name, row["checksum"], migration.checksum
            )
