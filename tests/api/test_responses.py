"""JSON rendering edge cases and method handling of shared paths."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import orjson
from starlette.testclient import TestClient

from api.responses import dumps
from models.api import decimal_text


def test_integers_beyond_64_bits_are_written_exactly() -> None:
    content = {"n": 2**70, "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "c": Decimal("1.50")}
    assert orjson.loads(dumps({"at": content["at"]}))["at"] == "2026-01-02T03:04:05.000006Z"
    doc = json.loads(dumps(content))  # orjson cannot read it back either
    assert doc == {
        "n": 2**70,
        "at": "2026-01-02T03:04:05.000006Z",
        "c": decimal_text(Decimal("1.50")),
    }


def test_a_405_lists_every_method_of_the_path(client: TestClient) -> None:
    response = client.request("DELETE", "/api/v1/jobs")
    assert response.status_code == 405
    allowed = {m.strip() for m in response.headers["allow"].split(",")}
    assert allowed == {"GET", "HEAD", "POST"}
