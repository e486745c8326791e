"""Decoding and validation of reading messages (SEMANTICS.md section 1).

A message value is one reading object or a JSON array of them. Every element is judged
on its own; a rejected element is returned with its own JSON text, a reason code and a
detail, so the caller can dead-letter it. Nothing here raises on bad input.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

from streams.timeparse import TimestampError, epoch_seconds_to_us, fast_rfc3339, parse_rfc3339

INVALID_JSON: Final = "invalid_json"
INVALID_SCHEMA: Final = "invalid_schema"
OUT_OF_RANGE: Final = "out_of_range"
FUTURE_TIMESTAMP: Final = "future_timestamp"
LATE: Final = "late"
REJECT_REASONS: Final = (INVALID_JSON, INVALID_SCHEMA, OUT_OF_RANGE, FUTURE_TIMESTAMP, LATE)

_DEVICE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# Device ids already seen to match _DEVICE_ID (the same few ids recur in every batch).
_GOOD_IDS: set[str] = set()
_GOOD_IDS_LIMIT = 200_000
_INF = math.inf


def _fine(value: Any) -> bool:
    """An absent or finite non-negative float: the full check would accept it as it is."""
    return value is None or (value.__class__ is float and 0.0 <= value < _INF)


_MAX_DETAIL_VALUE = 80


@dataclass(slots=True)
class Reading:
    """One valid reading; ``ts`` in microseconds since the epoch (UTC)."""

    device_id: str
    ts: int
    power_w: float | None
    energy_kwh: float | None
    # the message value (bytes) or, for an array element, the element object
    source: Any = None
    msg: int = 0  # index of the message within the caller's batch
    element: int | None = None  # index in its array message (a late rejection's DLQ header)


@dataclass(slots=True)
class Rejection:
    """A rejected message or array element, ready for the dead-letter topic."""

    reason: str
    detail: str
    raw: bytes
    device_id: str | None = None
    element_index: int | None = None
    ts: int | None = None
    msg: int = 0  # index of the message within the caller's batch


@dataclass(slots=True)
class Decoded:
    readings: list[Reading]
    rejections: list[Rejection]
    # Readings the message held (array elements count one by one; undecodable = 1).
    received: int


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # RFC 8259 (section 9) lets a parser limit nesting; orjson's limit is 1024 levels.
        if "depth limit" in str(exc):
            raise ValueError(f"nested deeper than 1024 levels ({exc})") from exc
    # orjson refuses a few things strict JSON allows (numbers beyond double range, very
    # deep nesting); the standard parser tells "bad JSON" from "valid JSON, bad value".
    text = raw.decode("utf-8")  # UnicodeDecodeError -> invalid_json by the caller
    return json.loads(text, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except RecursionError:
        return "<a deeply nested value>"
    return text if len(text) <= _MAX_DETAIL_VALUE else text[: _MAX_DETAIL_VALUE - 3] + "..."


def reading_bytes(reading: Reading) -> bytes:
    """The original JSON text of a reading: the message value, or its array element."""
    source = reading.source
    return source if isinstance(source, bytes) else _element_bytes(source)


_CONTRACT_FIELDS = ("device_id", "timestamp", "power_w", "energy_kwh", "voltage_v", "current_a")


def _element_bytes(element: Any, message: bytes | None = None) -> bytes:
    """An array element's own JSON text; ``message`` (the whole array) when the element
    cannot be re-encoded (nested deeper than the encoders allow)."""
    try:
        return orjson.dumps(element)
    except (TypeError, orjson.JSONEncodeError):
        pass
    try:
        return json.dumps(element, ensure_ascii=True, allow_nan=False).encode()
    except (RecursionError, ValueError):
        pass
    if isinstance(element, dict):  # keep what the contract defines; extras are ignored anyway
        known = {k: element[k] for k in _CONTRACT_FIELDS if k in element}
        try:
            return orjson.dumps(known)
        except (TypeError, orjson.JSONEncodeError):
            pass
    return message if message is not None else b"null"


class ReadingDecoder:
    """Validates messages against the contract with the configured limits."""

    __slots__ = ("future_tolerance_us", "max_power_w")

    def __init__(self, *, max_power_w: float, future_tolerance_us: int) -> None:
        self.max_power_w = max_power_w
        self.future_tolerance_us = future_tolerance_us

    def decode(self, raw: bytes, now_us: int, msg: int = 0) -> Decoded:
        """Judge one message value; ``now_us`` is the wall clock for the future check."""
        try:
            doc = _loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            detail = f"not valid JSON: {exc}"
            return Decoded([], [Rejection(INVALID_JSON, detail, raw, msg=msg)], 1)
        readings: list[Reading] = []
        rejections: list[Rejection] = []
        if isinstance(doc, dict):
            self._judge(doc, raw, None, msg, now_us, readings, rejections)
            return Decoded(readings, rejections, 1)
        if isinstance(doc, list):
            for index, element in enumerate(doc):
                if isinstance(element, dict):
                    self._judge(element, None, index, msg, now_us, readings, rejections, raw)
                else:
                    rejections.append(
                        Rejection(
                            INVALID_SCHEMA,
                            f"array element {index} is {type(element).__name__}, not a reading object",
                            _element_bytes(element, raw),
                            element_index=index,
                            msg=msg,
                        )
                    )
            return Decoded(readings, rejections, len(doc))
        detail = f"message is a JSON {type(doc).__name__}, expected a reading object or an array"
        return Decoded([], [Rejection(INVALID_SCHEMA, detail, raw, msg=msg)], 1)

    def _judge(
        self,
        doc: dict[str, Any],
        raw: bytes | None,
        index: int | None,
        msg: int,
        now_us: int,
        readings: list[Reading],
        rejections: list[Rejection],
        message: bytes | None = None,
    ) -> None:
        problem = self._validate(doc, now_us)
        if isinstance(problem, Reading):
            problem.source = raw if raw is not None else doc
            problem.msg = msg
            problem.element = index
            readings.append(problem)
            return
        reason, detail = problem
        device_id = doc.get("device_id")
        known = (
            device_id if isinstance(device_id, str) and _DEVICE_ID.fullmatch(device_id) else None
        )
        rejections.append(
            Rejection(
                reason,
                detail,
                raw if raw is not None else _element_bytes(doc, message),
                device_id=known,
                element_index=index,
                msg=msg,
            )
        )

    def _validate(self, doc: dict[str, Any], now_us: int) -> Reading | tuple[str, str]:
        # Fast path for the common shape (a known-good id, an ASCII timestamp string, float
        # values in range); anything else, or any doubt, takes the full checks below.
        device_id = doc.get("device_id")
        if device_id.__class__ is str and device_id in _GOOD_IDS:
            stamp = doc.get("timestamp")
            ts = fast_rfc3339(stamp) if stamp.__class__ is str else None
            if ts is not None and ts <= now_us + self.future_tolerance_us:
                power = doc.get("power_w")
                energy = doc.get("energy_kwh")
                if (
                    (
                        power is None
                        or (
                            power.__class__ is float
                            and 0.0 <= power <= self.max_power_w
                            and power < _INF
                        )
                    )
                    and (energy is None or (energy.__class__ is float and 0.0 <= energy < _INF))
                    and (power is not None or energy is not None)
                    and _fine(doc.get("voltage_v"))
                    and _fine(doc.get("current_a"))
                ):
                    return Reading(device_id, ts, power, energy)
        return self._validate_fully(doc, now_us)

    def _validate_fully(self, doc: dict[str, Any], now_us: int) -> Reading | tuple[str, str]:
        device_id = doc.get("device_id")
        if device_id is None:
            return INVALID_SCHEMA, "device_id is required"
        if not isinstance(device_id, str):
            return INVALID_SCHEMA, f"device_id must be a string, got {type(device_id).__name__}"
        if device_id not in _GOOD_IDS:
            if _DEVICE_ID.fullmatch(device_id) is None:
                return INVALID_SCHEMA, (
                    f"device_id {_short(device_id)} must be 1-128 characters of A-Z a-z 0-9 . _ : -"
                )
            if len(_GOOD_IDS) >= _GOOD_IDS_LIMIT:
                _GOOD_IDS.clear()
            _GOOD_IDS.add(device_id)
        stamp = doc.get("timestamp")
        if stamp is None:
            return INVALID_SCHEMA, "timestamp is required"
        try:
            if isinstance(stamp, str):
                ts = parse_rfc3339(stamp)
            elif isinstance(stamp, (int, float)) and not isinstance(stamp, bool):
                if not math.isfinite(stamp):
                    return OUT_OF_RANGE, f"timestamp {_short(stamp)} is not finite"
                ts = epoch_seconds_to_us(stamp)
            else:
                return INVALID_SCHEMA, (
                    f"timestamp must be an RFC 3339 string or epoch seconds, got {type(stamp).__name__}"
                )
        except TimestampError as exc:
            return INVALID_SCHEMA, str(exc)
        values: dict[str, float | None] = {}
        for field in ("power_w", "energy_kwh", "voltage_v", "current_a"):
            value = doc.get(field)
            if value is None:
                values[field] = None
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return INVALID_SCHEMA, f"{field} must be a number, got {type(value).__name__}"
            try:
                values[field] = float(value)
            except OverflowError:  # an integer beyond the double range
                return OUT_OF_RANGE, f"{field} {_short(value)} is out of range"
        power, energy = values["power_w"], values["energy_kwh"]
        if power is None and energy is None:
            return INVALID_SCHEMA, "at least one of power_w and energy_kwh is required"
        for field, value in values.items():
            if value is None:
                continue
            if not math.isfinite(value):
                return OUT_OF_RANGE, f"{field} {_short(doc[field])} is not finite"
            if value < 0:
                return OUT_OF_RANGE, f"{field} {_short(doc[field])} is negative"
        if power is not None and power > self.max_power_w:
            return (
                OUT_OF_RANGE,
                f"power_w {_short(doc['power_w'])} exceeds MAX_POWER_W {self.max_power_w:g}",
            )
        if ts > now_us + self.future_tolerance_us:
            ahead = (ts - now_us) / 1e6
            return (
                FUTURE_TIMESTAMP,
                f"timestamp {_short(stamp)} is {ahead:.0f} s ahead of the wall clock",
            )
        return Reading(device_id, ts, power, energy)
