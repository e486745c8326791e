"""Shared fixtures: servers started on free ports for the test session (see tests/plugins/),
an environment without the developer's settings, and the root logger restored after tests
that configure logging (the CLI does)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from service.settings import Settings

pytest_plugins = ["tests.plugins.kafka", "tests.plugins.storage"]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Unset every variable Settings reads; returns monkeypatch for setting new ones."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    """CLI tests call configure_logging; give the next test the root logger it had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
