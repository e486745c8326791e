"""Window aggregates as emitted, stored and served (SEMANTICS.md section 4)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

Period = Literal["hour", "day", "week", "month"]
PERIODS: tuple[Period, ...] = ("hour", "day", "week", "month")


class WindowAggregate(BaseModel):
    """One device's aggregate over one window ``[window_start, window_end)``.

    Beside the contract's fields it carries ``power_reading_count`` (readings that had
    ``power_w``, the weight of ``power_mean_w``) and ``covered_seconds`` (numerator of
    ``coverage``), so that week and month windows are exact combinations of day windows.
    """

    model_config = ConfigDict(frozen=True)

    device_id: str
    period: Period
    window_start: datetime
    window_end: datetime
    reading_count: int = Field(ge=0)
    power_reading_count: int = Field(ge=0)
    power_mean_w: float | None
    power_min_w: float | None
    power_max_w: float | None
    energy_kwh: float
    cost: Decimal
    currency: str
    coverage: float
    covered_seconds: float
    first_ts: datetime | None
    last_ts: datetime | None
    anomaly_score: float | None = None
    is_anomaly: bool | None = None
    revision: int = Field(ge=0)

    @classmethod
    def trusted(cls, values: dict[str, Any]) -> WindowAggregate:
        """The model of ``values`` without validation, for the stream's own output (about
        5 us a window saved). ``values`` must hold every field, in declaration order, each
        already of its field's type as validation would leave it (floats as ``float``, not
        ``int``; datetimes; a ``Decimal`` cost): then the result equals
        ``WindowAggregate(**values)`` (tests/models/test_window_trusted.py). It takes
        ``values`` over as the model's ``__dict__``."""
        window = cls.__new__(cls)
        _set = object.__setattr__
        _set(window, "__dict__", values)
        # every field is set: one set shared by all (pydantic copies it before a change)
        _set(window, "__pydantic_fields_set__", _ALL_FIELDS)
        _set(window, "__pydantic_extra__", None)
        _set(window, "__pydantic_private__", None)
        return window

    def json_bytes(self) -> bytes:
        """``model_dump_json().encode()``, byte for byte, in a third of the time: the
        fields' values in declaration order through orjson (UTC datetimes with ``Z``,
        decimals as strings, non-finite floats as null, as pydantic writes them)."""
        return orjson.dumps(self.__dict__, default=_json_default, option=orjson.OPT_UTC_Z)


# A window's JSON starts so (its first field); between two windows in the JSON of a list of
# them stands "}," and that: no string can hold it (a quote inside a string is escaped, and
# a closing quote is never followed by a letter).
_OPEN = b'{"device_id":'
_BETWEEN = b"}," + _OPEN


def json_many(windows: Sequence[WindowAggregate]) -> list[bytes]:
    """``[w.json_bytes() for w in windows]``, byte for byte, from one orjson call: the list's
    JSON cut between the windows. A call per window costs several times more (each
    allocates its own output buffer)."""
    if len(windows) < 2:
        return [w.json_bytes() for w in windows]
    text = orjson.dumps(
        [w.__dict__ for w in windows], default=_json_default, option=orjson.OPT_UTC_Z
    )
    pieces = text[1:-1].split(_BETWEEN)
    if len(pieces) != len(windows) or not text.startswith(b"[" + _OPEN):
        return [w.json_bytes() for w in windows]  # not our field order: cut nothing
    last = len(pieces) - 1
    return [
        (piece if k == 0 else _OPEN + piece) + (b"" if k == last else b"}")
        for k, piece in enumerate(pieces)
    ]


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


_ALL_FIELDS: set[str] = set(WindowAggregate.model_fields)


class EncodedWindows(list[WindowAggregate]):
    """Windows with each one's ``json_bytes()`` in ``json`` (same order): made once for the
    metrics topic, reused by the PostgreSQL sink."""

    __slots__ = ("json",)

    def __init__(self, windows: Iterable[WindowAggregate], json: list[bytes]) -> None:
        super().__init__(windows)
        self.json = json
