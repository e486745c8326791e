"""The opaque keyset cursor of ``GET /api/v1/metrics``: the last row's sort key, base64url JSON.

Every reader (PostgreSQL, in-memory) uses this one codec, so a cursor means the same position
in each, and anything that does not decode to a well-formed key is ``InvalidCursor``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from datetime import UTC, datetime
from typing import NamedTuple, cast

from models.metrics import PERIODS, Period, WindowAggregate
from storage.base import InvalidCursor, MetricsPage

_VERSION = "m1"
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # models.api.DEVICE_ID_PATTERN
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


def metrics_page(items: list[WindowAggregate], more: bool) -> MetricsPage:
    """A page of ``items`` (in sort order); when ``more`` rows follow, its cursor is the
    position after the last one."""
    next_cursor = None
    if more:
        last = items[-1]
        next_cursor = encode_cursor(CursorKey(last.device_id, last.period, last.window_start))
    return MetricsPage(items=items, next_cursor=next_cursor)


def decode_cursor(cursor: str) -> CursorKey:
    """The key inside ``cursor``; ``InvalidCursor`` if this service did not issue it."""
    if not cursor or len(cursor) > _MAX_LENGTH:
        raise InvalidCursor("cursor is empty or too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, RecursionError) as exc:  # deep nesting: RecursionError
        raise InvalidCursor("cursor is not valid") from exc
    if not (isinstance(value, list) and len(value) == 4 and value[0] == _VERSION):
        raise InvalidCursor("cursor is not valid")
    _, device_id, period, start = value
    # Only keys a stored row can have: a crafted cursor must not reach the database with a
    # NUL byte, a lone surrogate or an instant PostgreSQL cannot hold (that would be a 500).
    if (
        not isinstance(device_id, str)
        or _DEVICE_ID.fullmatch(device_id) is None
        or not isinstance(start, str)
        or period not in PERIODS
    ):
        raise InvalidCursor("cursor is not valid")
    try:
        window_start = datetime.fromisoformat(start)
        if window_start.tzinfo is None:
            raise InvalidCursor("cursor is not valid")
        window_start = window_start.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise InvalidCursor("cursor is not valid") from exc
    return CursorKey(device_id, cast("Period", period), window_start)
