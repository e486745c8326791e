"""The console script: help for every command, exit code 2 naming a bad variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.cli import main
from service.commands.parser import COMMANDS


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["--help"])
    assert raised.value.code == 0
    out = capsys.readouterr().out
    for command, (summary, _) in COMMANDS.items():
        assert command in out
        assert summary.split(" (")[0][:30] in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_command_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main([command, "--help"])
    assert raised.value.code == 0
    assert f"energy-processing {command}" in capsys.readouterr().out


def test_unknown_command_is_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        main(["frobnicate"])
    assert raised.value.code == 2


def test_bad_variable_exits_2_naming_it(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_env.setenv("KAFKA_PORT", "not-a-port")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert "KAFKA_PORT" in err
    assert "Traceback" not in err


def test_migrate_without_database_url_exits_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate"]) == 2
    assert "DATABASE_URL" in capsys.readouterr().err


def test_api_without_a_jwt_key_exits_2(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["api"]) == 2
    err = capsys.readouterr().err
    assert "AUTH_JWT_SECRET" in err and "AUTH_JWT_PUBLIC_KEY" in err and "AUTH_DISABLED" in err
    assert "Traceback" not in err


def test_console_module_runs_as_a_process() -> None:
    env = {**os.environ, "TIMEZONE": "Nowhere/Land"}
    result = subprocess.run(
        [sys.executable, "-m", "service.cli", "topics"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "TIMEZONE" in result.stderr


def test_unreachable_broker_is_a_runtime_failure(
    clean_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from service.ports import free_port

    clean_env.setenv("KAFKA_BROKER_URL", f"127.0.0.1:{free_port()}")
    clean_env.setenv("LOG_FORMAT", "json")
    assert main(["produce", "-", "--batch", "1"]) == 1
