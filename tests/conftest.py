"""Shared fixtures: servers started on free ports for the test session (see tests/plugins/)."""

from __future__ import annotations

pytest_plugins = ["tests.plugins.kafka", "tests.plugins.storage"]
