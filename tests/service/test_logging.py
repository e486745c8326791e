"""Structured logging: JSON lines with extras, or text with key=value pairs."""

from __future__ import annotations

import io
import json
import logging

from service.logging import configure_logging


def _emit(fmt: str, level: str = "INFO") -> str:
    stream = io.StringIO()
    configure_logging(level, fmt, stream=stream)  # type: ignore[arg-type]
    log = logging.getLogger("agents.readings")
    log.info("window emitted", extra={"device_id": "meter-1", "job_id": 42, "energy_kwh": 1.5})
    log.debug("hidden at INFO")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("sink failed", extra={"sink": "postgres"})
    logging.getLogger("aiokafka.consumer").info("noisy library line")
    return stream.getvalue()


def test_json_lines_are_valid_json_with_extras() -> None:
    lines = _emit("json").splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 2
    first, second = entries
    assert first["level"] == "INFO"
    assert first["logger"] == "agents.readings"
    assert first["msg"] == "window emitted"
    assert first["ts"].endswith("Z")
    assert (first["device_id"], first["job_id"], first["energy_kwh"]) == ("meter-1", 42, 1.5)
    assert second["sink"] == "postgres"
    assert "ValueError: boom" in second["exc"]


def test_text_is_one_readable_line_with_extras() -> None:
    output = _emit("text")
    first = output.splitlines()[0]
    assert "INFO" in first and "agents.readings: window emitted" in first
    assert first.endswith("device_id=meter-1 job_id=42 energy_kwh=1.5")
    assert "ValueError: boom" in output
    assert "noisy library line" not in output


def test_debug_shows_library_logs() -> None:
    output = _emit("text", level="DEBUG")
    assert "hidden at INFO" in output
    assert "noisy library line" in output


def test_text_quotes_values_with_spaces() -> None:
    stream = io.StringIO()
    configure_logging("INFO", "text", stream=stream)
    logging.getLogger("t").info("x", extra={"detail": "two words"})
    assert stream.getvalue().rstrip().endswith('detail="two words"')
