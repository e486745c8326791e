"""The opaque keyset cursor of ``GET /api/v1/metrics``: the last row's sort key, base64url JSON.

Every reader (PostgreSQL, in-memory) uses this one codec, so a cursor means the same position
in each, and anything that does not decode to a well-formed key is ``InvalidCursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import NamedTuple, cast

from models.metrics import PERIODS, Period
from storage.base import InvalidCursor

_VERSION = "m1"
_MAX_LENGTH = 2048


class CursorKey(NamedTuple):
    """The sort key of ``/api/v1/metrics``: rows after this one come next."""

    device_id: str
    period: Period
    window_start: datetime


def encode_cursor(key: CursorKey) -> str:
    text = json.dumps(
        [_VERSION, key.device_id, key.period, key.window_start.isoformat()], separators=(",", ":")
    )
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> CursorKey:
    """The key inside ``cursor``; ``InvalidCursor`` if this service did not issue it."""
    if not cursor or len(cursor) > _MAX_LENGTH:
        raise InvalidCursor("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if not (isinstance(value, list) and len(value) == 4 and value[0] == _VERSION):
        raise InvalidCursor("cursor is not valid")
    _, device_id, period, start = value
    if not isinstance(device_id, str) or not isinstance(start, str) or period not in PERIODS:
        raise InvalidCursor("cursor is not valid")
    try:
        window_start = datetime.fromisoformat(start)
    except ValueError as exc:
        raise InvalidCursor("cursor is not valid") from exc
    if window_start.tzinfo is None:
        raise InvalidCursor("cursor is not valid")
    return CursorKey(device_id, cast("Period", period), window_start)
