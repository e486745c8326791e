"""Fixture plugins registered in tests/conftest.py."""
