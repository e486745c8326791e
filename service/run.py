"""``energy-processing run``: the whole service on one machine with one command.

Embedded servers start only where no URL is configured (Kafka, PostgreSQL, InfluxDB via
VictoriaMetrics). Then topics and migrations, then ``WORKERS`` workers and the API as child
processes, then the demo feed in this process. SIGINT/SIGTERM, or any component dying, stops
everything in reverse order of start; no process is left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import httpx

from service.embedded.kafka import EmbeddedKafka
from service.endpoints import bootstrap_servers
from service.ports import ensure_port_free
from service.settings import Settings
from service.topics import ensure_topics, wait_for_broker

log = logging.getLogger("energy_processing.run")

READY_TIMEOUT = 120.0
CHILD_STOP_TIMEOUT = {"api": 10.0, "worker": 30.0}
EMBEDDED_INFLUX_TOKEN = "local-dev-token"  # VictoriaMetrics ignores it; the client wants one


class Shutdown(Exception):
    """A stop was requested (signal) before start-up finished."""


class ComponentDied(Exception):
    """A child process or the demo feed ended on its own."""

    def __init__(self, component: str, detail: str) -> None:
        super().__init__(f"{component} {detail}")
        self.component = component


@dataclass
class Child:
    """A child process in its own process group, so a terminal Ctrl-C reaches only us."""

    name: str
    process: subprocess.Popen[bytes]
    command: str  # the service command it runs (several workers share one)

    def exit_code(self) -> int | None:
        return self.process.poll()

    def signal(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signum)


def service_command(component: str) -> list[str]:
    """How a child process is started: this interpreter running ``energy-processing <component>``."""
    return [sys.executable, "-m", "service.cli", component]


async def reset_worker_stats(dsn: str) -> object:
    """The embedded broker starts empty, so do the processing counters: drop the rows that
    workers of an earlier ``run`` left (PostgreSQL keeps its data across runs)."""
    import asyncpg

    connection = await asyncpg.connect(dsn)
    try:
        return await connection.execute("DELETE FROM worker_stats")
    finally:
        await connection.close()


async def apply_migrations(dsn: str) -> object:
    from storage.migrations import migrate

    return await migrate(dsn)


@dataclass
class Runner:
    """Starts the components, watches them, stops them newest first.

    ``command_for`` and ``migrate`` are replaceable so tests can supervise stand-ins.
    """

    settings: Settings
    command_for: Callable[[str], list[str]] = service_command
    migrate: Callable[[str], Awaitable[object]] = apply_migrations
    reset_stats: Callable[[str], Awaitable[object]] = reset_worker_stats
    stop_requested: asyncio.Event = field(default_factory=asyncio.Event)
    force: asyncio.Event = field(default_factory=asyncio.Event)
    _stops: list[tuple[str, Callable[[], Awaitable[None]]]] = field(default_factory=list)
    _children: list[Child] = field(default_factory=list)
    _demo: asyncio.Task[int] | None = None
    _signals: int = 0

    # -- signals ---------------------------------------------------------------------
    def on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            log.info("stopping (%s); press Ctrl-C again to kill", signal.Signals(signum).name)
            self.stop_requested.set()
        else:
            log.warning("second signal: killing what is left")
            self.force.set()

    def checkpoint(self) -> None:
        if self.stop_requested.is_set():
            raise Shutdown

    # -- start -----------------------------------------------------------------------
    async def start(self) -> None:
        settings = self.settings
        ensure_port_free(settings.api_host, settings.api_port, "API", "API_PORT")
        settings.data_dir.mkdir(parents=True, exist_ok=True)

        bootstrap = await self._start_kafka()
        self.checkpoint()
        dsn = await self._start_postgres()
        self.checkpoint()
        influx = await self._start_influx()
        self.checkpoint()

        await ensure_topics(bootstrap, settings)
        log.info("topics ready", extra={"partitions": settings.topic_partitions})
        self.checkpoint()
        await self.migrate(dsn)
        log.info("database migrated")
        if not settings.kafka_broker_url:
            await self.reset_stats(dsn)
        self.checkpoint()

        env = dict(os.environ)
        env.update(
            KAFKA_BROKER_URL=bootstrap,
            DATABASE_URL=dsn,
            LOG_LEVEL=settings.log_level,
            LOG_FORMAT=settings.log_format,
        )
        for key in ("INFLUXDB_URL", "INFLUXDB_TOKEN", "INFLUXDB_ORG", "INFLUXDB_BUCKET"):
            env.pop(key, None)
        env.update(influx)
        if settings.workers == 1:
            self._spawn("worker", env)
        else:  # one consumer group: they split the partitions; a Faust data folder each
            for number in range(1, settings.workers + 1):
                data_dir = str(settings.data_dir / f"worker-{number}")
                self._spawn("worker", {**env, "DATA_DIR": data_dir}, f"worker-{number}")
        self._spawn("api", self._api_env(env))
        if settings.demo:
            from service.demo import run_demo

            demo_stop = asyncio.Event()
            self._demo = asyncio.create_task(run_demo(settings, bootstrap, demo_stop))

            async def stop_demo() -> None:
                demo_stop.set()
                if self._demo is not None:
                    await asyncio.wait({self._demo}, timeout=10.0)

            self._stops.append(("demo", stop_demo))
        else:
            log.info("demo feed off (DEMO=false)")

    async def _start_kafka(self) -> str:
        settings = self.settings
        if settings.kafka_broker_url:
            bootstrap = ",".join(bootstrap_servers(settings))
            await wait_for_broker(bootstrap, timeout=30.0)
            log.info("kafka: %s (KAFKA_BROKER_URL)", bootstrap)
            return bootstrap
        broker = EmbeddedKafka(settings.kafka_port, log_file=settings.data_dir / "kafka.log")
        bootstrap = await asyncio.to_thread(broker.start)
        self._stops.append(("Kafka broker", lambda: asyncio.to_thread(broker.stop)))
        log.info("kafka: embedded broker on %s (memory only: topics are lost on exit)", bootstrap)
        return bootstrap

    async def _start_postgres(self) -> str:
        settings = self.settings
        if settings.database_url is not None:
            dsn = settings.database_url.get_secret_value()
            log.info("postgres: %s (DATABASE_URL)", redact(dsn))
            return dsn
        from service.embedded.postgres import EmbeddedPostgres

        server = EmbeddedPostgres(data_dir=settings.data_dir / "postgres")
        dsn = await asyncio.to_thread(server.start)
        self._stops.append(("PostgreSQL", lambda: asyncio.to_thread(server.stop)))
        data_dir = settings.data_dir / "postgres"
        log.info("postgres: embedded server, %s (data in %s)", redact(dsn), data_dir)
        return dsn

    async def _start_influx(self) -> dict[str, str]:
        """Environment for the InfluxDB sink: empty when it is off."""
        settings = self.settings
        config = {
            "INFLUXDB_ORG": settings.influxdb_org,
            "INFLUXDB_BUCKET": settings.influxdb_bucket,
        }
        if settings.influxdb_url:
            log.info("influxdb: %s (INFLUXDB_URL)", settings.influxdb_url)
            token = settings.influxdb_token.get_secret_value()
            return {**config, "INFLUXDB_URL": settings.influxdb_url, "INFLUXDB_TOKEN": token}
        from service.embedded.victoria import EmbeddedVictoriaMetrics

        if not EmbeddedVictoriaMetrics.available():
            log.info(
                "influxdb: sink off (INFLUXDB_URL unset and no victoria-metrics binary installed)"
            )
            return {}
        server = EmbeddedVictoriaMetrics(
            data_dir=settings.data_dir / "victoria-metrics", port=settings.influxdb_embedded_port
        )
        url = await asyncio.to_thread(server.start)
        self._stops.append(("VictoriaMetrics", lambda: asyncio.to_thread(server.stop)))
        log.info("influxdb: embedded VictoriaMetrics (InfluxDB v2 write API) on %s", url)
        return {**config, "INFLUXDB_URL": url, "INFLUXDB_TOKEN": EMBEDDED_INFLUX_TOKEN}

    def _api_env(self, env: dict[str, str]) -> dict[str, str]:
        """The API's environment: authentication off for local use unless a key is set."""
        settings = self.settings
        if settings.auth_disabled or (
            settings.auth_jwt_secret is None and settings.auth_jwt_public_key is None
        ):
            log.warning(
                "API authentication is OFF for local use (AUTH_DISABLED=true): every endpoint "
                "on port %d is open; set AUTH_JWT_SECRET or AUTH_JWT_PUBLIC_KEY to turn it on",
                settings.api_port,
            )
            return {**env, "AUTH_DISABLED": "true"}
        key = "AUTH_JWT_SECRET" if settings.auth_jwt_secret is not None else "AUTH_JWT_PUBLIC_KEY"
        log.info("API authentication is on: JWT bearer tokens checked with %s", key)
        return env

    def _spawn(self, command: str, env: dict[str, str], name: str | None = None) -> None:
        process = subprocess.Popen(
            self.command_for(command),
            env=env,
            stdin=subprocess.DEVNULL,
            process_group=0,
        )
        child = Child(name or command, process, command)
        self._children.append(child)
        self._stops.append((child.name, lambda: self._stop_child(child)))
        log.info("%s: started (pid %d)", child.name, process.pid)

    # -- supervise -------------------------------------------------------------------
    async def supervise(self) -> None:
        """Wait for a stop request; raise ComponentDied if a component ends on its own."""
        ready_url = f"http://{_connect_host(self.settings.api_host)}:{self.settings.api_port}"
        ready = False
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=2.0) as client:
            while not self.stop_requested.is_set():
                self._check_components()
                if not ready:
                    ready = await _answers(client, ready_url + "/ready")
                    if ready:
                        log.info("ready: API on %s", ready_url)
                    elif time.monotonic() > deadline:
                        log.warning("API not ready after %.0f s; still waiting", READY_TIMEOUT)
                        deadline = time.monotonic() + READY_TIMEOUT
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), timeout=0.25)

    def _check_components(self) -> None:
        for child in self._children:
            code = child.exit_code()
            if code is not None:
                raise ComponentDied(child.name, f"exited with code {code}")
        if self._demo is not None and self._demo.done():
            error = None if self._demo.cancelled() else self._demo.exception()
            raise ComponentDied("demo", f"stopped: {error!r}" if error else "stopped")

    # -- stop ------------------------------------------------------------------------
    async def stop(self) -> None:
        """Stop what was started, newest first."""
        while self._stops:
            name, stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                log.exception("stopping %s failed", name)
            else:
                log.debug("%s stopped", name)

    async def _stop_child(self, child: Child) -> None:
        timeout = CHILD_STOP_TIMEOUT.get(child.command, 10.0)
        if child.exit_code() is None:
            child.signal(signal.SIGTERM)
            if not await self._wait_child(child, timeout):
                log.warning("%s did not stop within %.0f s; killing it", child.name, timeout)
                child.signal(signal.SIGKILL)
        await asyncio.to_thread(child.process.wait)
        # The group may hold grandchildren that outlived the child: do not leave them.
        child.signal(signal.SIGKILL)
        log.info("%s stopped (exit code %s)", child.name, child.process.returncode)

    async def _wait_child(self, child: Child, grace: float) -> bool:
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and not self.force.is_set():
            if child.exit_code() is not None:
                return True
            await asyncio.sleep(0.05)
        return child.exit_code() is not None


async def _answers(client: httpx.AsyncClient, url: str) -> bool:
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def _connect_host(bind_host: str) -> str:
    return "127.0.0.1" if bind_host in ("0.0.0.0", "", "::") else bind_host


def redact(dsn: str) -> str:
    """``dsn`` without its password, for logs."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


async def run_async(settings: Settings, runner: Runner | None = None) -> int:
    runner = runner or Runner(settings)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, runner.on_signal, signum)
    code = 0
    try:
        await runner.start()
        await runner.supervise()
    except Shutdown:
        pass
    except ComponentDied as exc:
        log.error("%s; shutting everything down", exc)
        code = 1
    except Exception as exc:
        from service.cli import _is_expected_failure

        if _is_expected_failure(exc):
            log.error("start-up failed: %s", exc)
        else:
            log.exception("start-up failed")
        code = 1
    finally:
        await runner.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    log.info("stopped")
    return code


def run(settings: Settings) -> int:
    """Run everything until SIGINT/SIGTERM; the exit code is 1 if a component failed."""
    return asyncio.run(run_async(settings))
