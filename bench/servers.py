"""The embedded broker and PostgreSQL the benchmark runs on, and loading a topic."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from service.embedded.kafka import EmbeddedKafka
from service.embedded.postgres import EmbeddedPostgres
from service.ports import free_port
from storage.migrations import migrate

# Durability is not what the benchmark measures (as in the tests).
PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
RETENTION_MS = str(3650 * 24 * 3600 * 1000)


@dataclass
class Servers:
    bootstrap: str
    postgres: EmbeddedPostgres
    folder: Path

    async def fresh_database(self) -> str:
        """A new migrated database; returns its DSN."""
        name = f"bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(self.postgres.dsn("postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        dsn = self.postgres.dsn(name)
        await migrate(dsn)
        return dsn

    async def drop_database(self, dsn: str) -> None:
        name = dsn.split("/")[-1].split("?")[0]
        admin = await asyncpg.connect(self.postgres.dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.contextmanager
def postgres() -> Iterator[tuple[EmbeddedPostgres, Path]]:
    folder = Path(tempfile.mkdtemp(prefix="energy-bench-"))
    server = EmbeddedPostgres(folder / "pgdata", settings=PG_SETTINGS)
    server.start()
    try:
        yield server, folder
    finally:
        server.stop()
        if os.environ.get("BENCH_KEEP"):  # keep the workers' logs and data for a look
            print(f"bench: kept {folder}", flush=True)
        else:
            shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def broker(folder: Path) -> Iterator[str]:
    kafka = EmbeddedKafka(free_port(), log_file=folder / f"tansu-{uuid.uuid4().hex[:6]}.log")
    bootstrap = kafka.start()
    try:
        yield bootstrap
    finally:
        kafka.stop()


async def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """With ``retention.ms`` set: this broker describes only explicit configs, and Quix
    Streams' stateful steps need it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(topic, partitions, 1, topic_configs={"retention.ms": RETENTION_MS})]
        )
    finally:
        await admin.close()


async def load_topic(
    bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], partitions: int = 1
) -> None:
    """Write ``messages`` (key, value) to ``topic``, in order: to its one partition, or with
    several to the partition of each key (Kafka's default partitioner, as producers do)."""
    await create_topic(bootstrap, topic, partitions)
    partition = 0 if partitions == 1 else None
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_batch_size=1 << 20, linger_ms=5
    )
    await producer.start()
    try:
        inflight: list[asyncio.Future[object]] = []
        for key, value in messages:
            inflight.append(await producer.send(topic, value, key=key, partition=partition))
            if len(inflight) >= 20_000:
                await asyncio.gather(*inflight)
                inflight = []
        await asyncio.gather(*inflight)
    finally:
        await producer.stop()
