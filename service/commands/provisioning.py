"""The commands that prepare a deployment: ``migrate`` (PostgreSQL schema) and ``topics`` (Kafka)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from service.commands.exit_codes import EXIT_OK
from service.settings import ConfigurationError, Settings

log = logging.getLogger("energy_processing")


def migrate_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    dsn = args.dsn or (settings.database_url.get_secret_value() if settings.database_url else None)
    if not dsn:
        raise ConfigurationError("DATABASE_URL is not set (or pass --dsn)")
    from storage.migrations import migrate

    asyncio.run(migrate(dsn))
    log.info("migrations applied")
    return EXIT_OK


def topics_command(
    settings: Settings, args: argparse.Namespace, parser: argparse.ArgumentParser
) -> int:
    from service.produce import default_bootstrap
    from service.topics import ensure_topics, wait_for_broker

    bootstrap = args.bootstrap or default_bootstrap(settings)

    async def create() -> None:
        await wait_for_broker(bootstrap, timeout=30.0)
        await ensure_topics(bootstrap, settings)

    asyncio.run(create())
    log.info("topics ready", extra={"bootstrap": bootstrap})
    return EXIT_OK
