"""The serialized form of a device's anomaly baseline: compact binary (version 2), exact to
the bit, with the JSON of version 1 still read so existing changelogs load after an upgrade.

Version 2, all integers little-endian::

    0x02                          version (a JSON document never starts with it)
    flags                         bit i set: header int i present (first, hour, day)
    int64 x (present + 1)         first_start, last_hour, last_day if present; day_ordinal
    raw deflate of                bitmap of the float32 slots whose bits are not all zero,
                                  their most significant bytes, the counts' high bytes,
                                  the counts' low bytes
    3 x nonzero bytes             the other three byte planes of those floats, stored
    crc32                         of everything before it

Untouched slots are exactly zero, so a young baseline is mostly bitmap; a mature one is
mostly the low mantissa bytes, which are noise to a compressor and are stored as they are
(deflating them would triple the time and save nothing). Grouping the high bytes lets
deflate see the few exponents a device's slots share. Deflate level 1 with a 1 KB window:
level 6 saves about 1 % for a third more time.
"""

from __future__ import annotations

import base64
import struct
import sys
import zlib
from array import array
from typing import Any, Final, NamedTuple

import numpy as np
import orjson

BASELINE_VERSION: Final = 2

_V2: Final = b"\x02"
_HEADER_INTS: Final = 3  # optional: first_start, last_hour, last_day
_INT64: Final = struct.Struct("<q")
_CRC: Final = struct.Struct("<I")
_LEVEL: Final = 1
_WBITS: Final = -10  # raw deflate (the crc32 guards it), 1 KB window: the input is smaller
_MEM_LEVEL: Final = 4
_BIG_ENDIAN: Final = sys.byteorder == "big"


class BaselineFields(NamedTuple):
    first_start: int | None
    last_hour: int | None
    last_day: int | None
    day_ordinal: int
    floats: array[float]  # "f", float32
    counts: array[int]  # "H", uint16


def encode(fields: BaselineFields) -> bytes:
    """Version 2 bytes of a baseline; ``decode`` gives back the same bits."""
    flags = 0
    ints = []
    for i, value in enumerate(fields[:_HEADER_INTS]):
        if value is not None:
            flags |= 1 << i
            ints.append(value)
    ints.append(fields.day_ordinal)
    try:
        header = struct.pack(f"<B{len(ints)}q", flags, *ints)
    except struct.error as exc:
        raise ValueError(f"anomaly baseline header {ints} does not fit 64-bit ints") from exc
    bits = np.frombuffer(fields.floats, np.uint32)
    present = bits != 0
    kept = _little(bits[present].tobytes(), 4)
    counts = _little(fields.counts.tobytes(), 2)
    deflate = zlib.compressobj(_LEVEL, zlib.DEFLATED, _WBITS, _MEM_LEVEL)
    packed = (
        _V2
        + header
        + deflate.compress(
            np.packbits(present).tobytes() + kept[3::4] + counts[1::2] + counts[0::2]
        )
        + deflate.flush()
        + kept[2::4]
        + kept[1::4]
        + kept[0::4]
    )
    return packed + _CRC.pack(zlib.crc32(packed))


def decode(data: bytes | str, float_count: int, count_count: int) -> BaselineFields:
    """A baseline from ``encode`` output or from version 1 JSON (bytes or text); a
    ValueError says what is wrong with anything else."""
    if isinstance(data, str) or data[:1] == b"{":
        return _decode_v1(data, float_count, count_count)
    if data[:1] != _V2:
        raise ValueError(f"unknown anomaly baseline version {data[:1]!r}")
    if len(data) < 2 + _INT64.size + _CRC.size:
        raise ValueError(f"anomaly baseline truncated ({len(data)} bytes)")
    body = memoryview(data)[: -_CRC.size]
    if zlib.crc32(body) != _CRC.unpack_from(data, len(body))[0]:
        raise ValueError("anomaly baseline corrupt (checksum mismatch)")
    flags = data[1]
    if flags >> _HEADER_INTS:
        raise ValueError(f"anomaly baseline has unknown header flags {flags:#x}")
    header: list[int | None] = [None] * _HEADER_INTS
    offset = 2
    for i in range(_HEADER_INTS):
        if flags & 1 << i:
            header[i] = _INT64.unpack_from(body, offset)[0]
            offset += _INT64.size
    if len(body) < offset + _INT64.size:
        raise ValueError("anomaly baseline truncated in its header")
    day_ordinal = _INT64.unpack_from(body, offset)[0]
    offset += _INT64.size
    inflate = zlib.decompressobj(_WBITS)
    try:
        packed = inflate.decompress(body[offset:])
    except zlib.error as exc:
        raise ValueError(f"anomaly baseline corrupt: {exc}") from exc
    if not inflate.eof:
        raise ValueError("anomaly baseline truncated in its compressed part")
    bitmap_size = (float_count + 7) // 8
    present = np.unpackbits(np.frombuffer(packed, np.uint8, min(bitmap_size, len(packed))))
    nonzero = int(np.count_nonzero(present))
    tail = inflate.unused_data
    if (
        len(packed) != bitmap_size + nonzero + 2 * count_count
        or present[float_count:].any()
        or len(tail) != 3 * nonzero
    ):
        raise ValueError("anomaly baseline has the wrong size")
    kept = bytearray(4 * nonzero)
    kept[3::4] = packed[bitmap_size : bitmap_size + nonzero]
    kept[2::4] = tail[:nonzero]
    kept[1::4] = tail[nonzero : 2 * nonzero]
    kept[0::4] = tail[2 * nonzero :]
    if nonzero == float_count:
        float_bytes = _little(bytes(kept), 4)
    else:
        bits = np.zeros(float_count, np.uint32)
        bits[present[:float_count].view(bool)] = np.frombuffer(_little(bytes(kept), 4), np.uint32)
        float_bytes = bits.tobytes()
    start = bitmap_size + nonzero
    counts = bytearray(2 * count_count)
    counts[1::2] = packed[start : start + count_count]
    counts[0::2] = packed[start + count_count :]
    return BaselineFields(
        header[0],
        header[1],
        header[2],
        day_ordinal,
        array("f", float_bytes),
        array("H", _little(bytes(counts), 2)),
    )


def _decode_v1(data: bytes | str, float_count: int, count_count: int) -> BaselineFields:
    """Version 1: JSON with base64 of the little-endian arrays."""
    try:
        doc: dict[str, Any] = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"anomaly baseline corrupt: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("v") != 1:
        version = doc.get("v") if isinstance(doc, dict) else None
        raise ValueError(f"unknown anomaly baseline version {version!r}")
    try:
        float_bytes = base64.b64decode(doc["f"], validate=True)
        count_bytes = base64.b64decode(doc["n"], validate=True)
        header = (doc["first"], doc["hour"], doc["day"], doc["ord"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"anomaly baseline corrupt: {exc!r}") from exc
    if len(float_bytes) != 4 * float_count or len(count_bytes) != 2 * count_count:
        raise ValueError("anomaly baseline has the wrong size")
    floats = array("f", _little(float_bytes, 4))
    counts = array("H", _little(count_bytes, 2))
    return BaselineFields(*header, floats, counts)


def _little(native: bytes, width: int) -> bytes:
    """Native-order items of ``width`` bytes as little-endian (and back: the same swap)."""
    if _BIG_ENDIAN:  # pragma: no cover - no big-endian machine runs the tests
        swapped = array("I" if width == 4 else "H", native)
        swapped.byteswap()
        return swapped.tobytes()
    return native
