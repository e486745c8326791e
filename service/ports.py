"""TCP port checks, so a busy port fails start-up with a message naming the setting to change."""

from __future__ import annotations

import socket


class PortInUse(Exception):
    """A port the service wants to listen on is taken by another process."""

    def __init__(self, host: str, port: int, what: str, env_var: str | None = None) -> None:
        hint = f"; set {env_var} to another port" if env_var else ""
        super().__init__(f"port {port} on {host} ({what}) is already in use{hint}")
        self.host = host
        self.port = port
        self.what = what
        self.env_var = env_var


def ensure_port_free(host: str, port: int, what: str, env_var: str | None = None) -> None:
    """Raise PortInUse unless ``host:port`` can be bound right now.

    ``what`` names the component ("Kafka broker"), ``env_var`` the setting that moves it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # SO_REUSEADDR mirrors what servers do, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise PortInUse(host, port, what, env_var) from exc


def port_accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (for tests; another process may still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port
