"""``energy-processing run`` supervision: ready line, clean stop on SIGTERM, stop on a death.

The orchestrator runs in its own process (it installs signal handlers) with the real
embedded broker and the demo feed; worker and API are stand-ins, so this tests the
supervision, not those components.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from service.ports import free_port, port_accepts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]

DRIVER = textwrap.dedent(
    """
    import asyncio, sys
    from service.logging import configure_logging
    from service.run import Runner, run_async
    from service.settings import load_settings

    STANDINS = {
        "worker": sys.argv[1],
        "api": "import http.server, os\\n"
        "class H(http.server.BaseHTTPRequestHandler):\\n"
        "    def do_GET(self):\\n"
        "        self.send_response(200); self.end_headers(); self.wfile.write(b'ok')\\n"
        "    def log_message(self, *a): pass\\n"
        "http.server.HTTPServer(('127.0.0.1', int(os.environ['API_PORT'])), H).serve_forever()\\n",
    }

    async def no_migrations(dsn):
        return []

    settings = load_settings()
    configure_logging("INFO", "text")
    runner = Runner(
        settings,
        command_for=lambda name: [sys.executable, "-c", STANDINS[name]],
        migrate=no_migrations,
        reset_stats=no_migrations,
    )
    sys.exit(asyncio.run(run_async(settings, runner)))
    """
)


def _start(
    tmp_path: Path, worker_code: str, **env: str
) -> tuple[subprocess.Popen[str], dict[str, int]]:
    ports = {"kafka": free_port(), "api": free_port(), "web": free_port()}
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "KAFKA_BROKER_URL": "",
        "KAFKA_PORT": str(ports["kafka"]),
        "API_PORT": str(ports["api"]),
        "WORKER_WEB_PORT": str(ports["web"]),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "INFLUXDB_URL": "http://127.0.0.1:1",
        "DATA_DIR": str(tmp_path / "data"),
        "DEMO_DEVICES": "4",
        "AUTH_JWT_SECRET": "",
        "AUTH_JWT_PUBLIC_KEY": "",
        "AUTH_DISABLED": "",
        **env,
    }
    process = subprocess.Popen(
        [sys.executable, str(driver), worker_code],
        env=environment,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    return process, ports


def _read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 30) -> str:
    """Output up to and including the first line matching ``pattern``."""
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if re.search(pattern, line):
            return "".join(lines)
    process.kill()
    raise AssertionError(f"no line matching {pattern!r} in:\n{''.join(lines)}")


def _child_pids(output: str) -> dict[str, int]:
    pattern = r"(worker(?:-\d+)?|api): started \(pid (\d+)\)"
    return {m[0]: int(m[1]) for m in re.findall(pattern, output)}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_sigterm_stops_everything(tmp_path: Path) -> None:
    process, ports = _start(tmp_path, "import time; time.sleep(600)")
    output = _read_until(process, r"ready: API on http://127\.0\.0\.1:\d+")
    children = _child_pids(output)
    assert set(children) == {"worker", "api"}
    assert "embedded broker on" in output and "demo" in output
    assert "API authentication is OFF for local use (AUTH_DISABLED=true)" in output

    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output + rest
    assert all(_gone(pid) for pid in children.values())
    assert not port_accepts("127.0.0.1", ports["kafka"])
    assert not port_accepts("127.0.0.1", ports["api"])
    stop_order = re.findall(r"(demo stopped|api stopped|worker stopped|embedded broker)", rest)
    assert stop_order[:3] == ["demo stopped", "api stopped", "worker stopped"], rest


def test_workers_start_as_many_worker_processes_with_a_data_folder_each(tmp_path: Path) -> None:
    record = "import os, pathlib, time\n" + (
        "pathlib.Path(os.environ['DATA_DIR']).mkdir(parents=True)\n"
        "(pathlib.Path(os.environ['DATA_DIR']) / 'pid').write_text(str(os.getpid()))\n"
        "time.sleep(600)\n"
    )
    process, _ = _start(tmp_path, record, WORKERS="3", TOPIC_PARTITIONS="4", DEMO="0")
    output = _read_until(process, r"ready: API on http://127\.0\.0\.1:\d+")
    children = _child_pids(output)
    assert set(children) == {"worker-1", "worker-2", "worker-3", "api"}, output
    for number in (1, 2, 3):
        pid_file = tmp_path / "data" / f"worker-{number}" / "pid"
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert int(pid_file.read_text()) == children[f"worker-{number}"]

    process.send_signal(signal.SIGTERM)
    rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output + rest
    assert all(_gone(pid) for pid in children.values())
    stopped = re.findall(r"(worker-\d) stopped", rest)
    assert stopped == ["worker-3", "worker-2", "worker-1"], rest


def test_more_workers_than_partitions_is_a_configuration_error(tmp_path: Path) -> None:
    process, _ = _start(tmp_path, "pass", WORKERS="2", DEMO="0")
    output, _ = process.communicate(timeout=60)
    assert process.returncode != 0, output
    assert "WORKERS=2 needs TOPIC_PARTITIONS of at least 2 (it is 1)" in output
    assert "started (pid" not in output


def test_a_dying_child_stops_everything_with_exit_1(tmp_path: Path) -> None:
    process, ports = _start(tmp_path, "import time, sys; time.sleep(1.5); sys.exit(3)", DEMO="0")
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 1, output
    assert "worker exited with code 3; shutting everything down" in output
    assert all(_gone(pid) for pid in _child_pids(output).values())
    assert not port_accepts("127.0.0.1", ports["kafka"])


def test_busy_api_port_fails_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        process, _ = _start(tmp_path, "pass", API_PORT=str(port))
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    assert f"port {port} on 127.0.0.1 (API) is already in use; set API_PORT" in output
    assert "embedded broker" not in output
