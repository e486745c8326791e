"""Faust codecs for the device-state table: the compact binary of ``DeviceState.to_bytes``."""

from __future__ import annotations

from typing import Any

from faust.serializers import codecs

from streams.device_state import DeviceState


class DeviceStateCodec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        state: DeviceState = obj
        return state.to_bytes()

    def _loads(self, s: bytes) -> Any:
        return DeviceState.from_bytes(s)


class Utf8Codec(codecs.Codec):
    def _dumps(self, obj: Any) -> bytes:
        return obj.encode() if isinstance(obj, str) else bytes(obj)

    def _loads(self, s: bytes) -> Any:
        return s.decode()


def register() -> None:
    codecs.register("device_state", DeviceStateCodec())
    codecs.register("utf8", Utf8Codec())
