"""A local VictoriaMetrics server standing in for InfluxDB 2 (``make run``, tests).

It accepts the InfluxDB v2 write API (``/api/v2/write``) that influxdb-client uses; read the
points back with ``/api/v1/export``. Two differences from InfluxDB matter here: a field becomes
the series ``<measurement>_<field>``, and a point written twice at the same timestamp is kept
twice (InfluxDB keeps the last write). Debian packages the binary as ``victoria-metrics``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

from service.ports import ensure_port_free

logger = logging.getLogger(__name__)

BINARY = "victoria-metrics"
HOST = "127.0.0.1"
START_TIMEOUT_S = 30.0
# A local server: never go through an HTTP proxy from the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
STOP_TIMEOUT_S = 10.0


class EmbeddedVictoriaMetricsError(Exception):
    """The server is missing, did not start, or exited."""

    def __init__(self, data_dir: Path, detail: str) -> None:
        super().__init__(f"embedded VictoriaMetrics in {data_dir}: {detail}")
        self.data_dir = data_dir
        self.detail = detail


class EmbeddedVictoriaMetrics:
    """VictoriaMetrics on ``127.0.0.1:port`` keeping its data in ``data_dir``.

    Retention is 100 years, so replayed historical windows are kept rather than dropped
    (the default is one month).
    """

    def __init__(self, data_dir: Path, port: int) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.port = port
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        """Whether the ``victoria-metrics`` binary is on PATH."""
        return shutil.which(BINARY) is not None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> str:
        """Start the server and return its base URL once ``/health`` answers."""
        if self._process is not None and self._process.poll() is None:
            return self.url
        binary = shutil.which(BINARY)
        if binary is None:
            raise EmbeddedVictoriaMetricsError(
                self.data_dir, f"{BINARY} not found on PATH (apt-get install victoria-metrics)"
            )
        ensure_port_free(HOST, self.port, "embedded VictoriaMetrics (InfluxDB stand-in)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.data_dir / "victoria-metrics.log"
        argv = [
            binary,
            f"-storageDataPath={self.data_dir / 'data'}",
            f"-httpListenAddr={HOST}:{self.port}",
            "-retentionPeriod=100y",
            "-loggerLevel=WARN",
        ]
        with log_path.open("ab") as log:
            # Own process group: a terminal Ctrl-C reaches `run`, which stops this server
            # last, after the worker has written its final points.
            self._process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_healthy(log_path)
        logger.info("VictoriaMetrics started on %s (data in %s)", self.url, self.data_dir)
        return self.url

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        logger.info("VictoriaMetrics on %s stopped", self.url)

    def _wait_healthy(self, log_path: Path) -> None:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-20:])
                self._process = None
                raise EmbeddedVictoriaMetricsError(self.data_dir, f"exited at start:\n{tail}")
            try:
                with _DIRECT.open(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        self.stop()
        raise EmbeddedVictoriaMetricsError(
            self.data_dir, f"no answer on {self.url}/health after {START_TIMEOUT_S:.0f} s"
        )

    def __enter__(self) -> EmbeddedVictoriaMetrics:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
