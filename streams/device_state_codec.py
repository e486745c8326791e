"""The serialized form of a device's state (``DeviceState.dump()``): compact binary (version
2), exact to the bit, with the JSON of version 1 still read so existing changelogs load
after an upgrade.

Version 2::

    0x02                          version (a JSON document never starts with it)
    raw deflate of                the orjson text of the field list, as version 1 stored it
    crc32                         of everything before it, little-endian

The field list carries its own version first (``STATE_VERSION``, checked by
``DeviceState.load``); this byte versions only the encoding. orjson writes the shortest text
that reads back as the same double, so finite floats (-0.0 included) and 64-bit ints come
back to the bit (it would write nan and infinities as null: the fold's sums of validated
readings are finite). The text repeats itself a lot (microsecond timestamps sharing their
leading digits, week and month sums that are often copies of each other): deflate level 1
leaves about 40 % of the JSON of the benchmark's devices, for about 14 µs more to write
and 6 µs more to read. Level 6 saves another 4-7 % for a fifth to a half more time; a
preset dictionary (a typical state) 12-29 %, but it would be part of the format forever; a
field-aware layout (timestamps relative to ``max_ts``) under 10 %. The checksum turns a
damaged record into a ValueError instead of a state with a changed digit: deflate and JSON
alone do not.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any, Final

import orjson

STATE_FORMAT_VERSION: Final = 2

_V2: Final = b"\x02"
_CRC: Final = struct.Struct("<I")
_LEVEL: Final = 1
_WBITS: Final = -10  # raw deflate (the crc32 guards it), 1 KB window: most states are smaller
_READ_WBITS: Final = -15  # any window: a later writer may pick a larger one
_MEM_LEVEL: Final = 4  # deflate's set-up dominates for records this small; 8 is slower


def encode(fields: list[Any]) -> bytes:
    """Version 2 bytes of a state's field list; ``decode`` gives back an equal list."""
    try:
        text = orjson.dumps(fields)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"device state cannot be serialized: {exc}") from exc
    deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL)
    packed = _V2 + deflate.compress(text) + deflate.flush()
    return packed + _CRC.pack(zlib.crc32(packed))


def decode(data: bytes | str) -> list[Any]:
    """A state's field list from ``encode`` output or from version 1 JSON (bytes or text);
    a ValueError says what is wrong with anything else."""
    if isinstance(data, str) or data[:1] == b"[":
        return _parse(data)
    if not data:
        raise ValueError("device state is empty")
    if data[:1] != _V2:
        raise ValueError(f"unknown device state version {data[:1]!r}")
    if len(data) < len(_V2) + 2 + _CRC.size:  # the shortest deflate stream has 2 bytes
        raise ValueError(f"device state truncated ({len(data)} bytes)")
    body = memoryview(data)[: -_CRC.size]
    if zlib.crc32(body) != _CRC.unpack_from(data, len(body))[0]:
        raise ValueError("device state corrupt (checksum mismatch)")
    inflate = zlib.decompressobj(_READ_WBITS)
    try:
        text = inflate.decompress(body[len(_V2) :])
    except zlib.error as exc:
        raise ValueError(f"device state corrupt: {exc}") from exc
    if not inflate.eof or inflate.unused_data:
        raise ValueError("device state has the wrong size")
    return _parse(text)


def _parse(text: bytes | str) -> list[Any]:
    try:
        fields = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"device state corrupt: {exc}") from exc
    if not isinstance(fields, list):
        raise ValueError(f"device state is not a field list but {type(fields).__name__}")
    return fields
