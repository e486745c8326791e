"""A busy port fails with a message naming the port, the component and the setting."""

from __future__ import annotations

import socket

import pytest

from service.embedded.kafka import EmbeddedKafka
from service.ports import PortInUse, ensure_port_free, free_port


def test_free_port_is_free() -> None:
    ensure_port_free("127.0.0.1", free_port(), "test")


def test_port_in_use_names_port_component_and_variable() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        with pytest.raises(PortInUse) as raised:
            ensure_port_free("127.0.0.1", port, "Kafka broker", "KAFKA_PORT")
    message = str(raised.value)
    assert f"port {port} on 127.0.0.1 (Kafka broker) is already in use" in message
    assert "set KAFKA_PORT to another port" in message
    assert raised.value.port == port


def test_embedded_broker_refuses_a_busy_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        broker = EmbeddedKafka(port)
        with pytest.raises(PortInUse, match=f"port {port} .*KAFKA_PORT"):
            broker.start()
        assert not broker.running
