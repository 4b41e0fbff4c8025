"""Writing the serialized (CDR) form of ROS 2 messages, ROS-free (format: docs/internals.md;
the message layouts are in core/serialized.py)."""

from __future__ import annotations

import struct

_LE_HEADER = b"\x00\x01\x00\x00"
#: byte blobs up to this size are packed with the small fields; larger ones stay parts
_INLINE_MAX = 4096


class CdrWriter:
    """Little-endian CDR of one message: small fields packed as they come, large byte
    blobs kept as separate parts so that `value()` copies them exactly once."""

    def __init__(self) -> None:
        self._parts: list = []
        self._small = bytearray(_LE_HEADER)
        self._offset = 0  # position in the payload (after the encapsulation header)

    def _align(self, size: int) -> None:
        pad = -self._offset % size
        if pad:
            self._small += b"\x00" * pad
            self._offset += pad

    def _pack(self, fmt: str, size: int, *values) -> None:
        self._align(size)
        self._small += struct.pack("<" + fmt, *values)
        self._offset += struct.calcsize("<" + fmt)

    def u8(self, value: int) -> None:
        self._pack("B", 1, int(value))

    def u32(self, *values: int) -> None:
        """uint32 fields in a row (one alignment: each is 4 bytes)."""
        self._pack(f"{len(values)}I", 4, *map(int, values))

    def f32(self, *values: float) -> None:
        self._pack(f"{len(values)}f", 4, *map(float, values))

    def f64s(self, values, sequence: bool) -> None:
        """float64[] (sequence=True: with its count) or float64[N]."""
        values = [float(v) for v in values]
        if sequence:
            self.u32(len(values))
        if values:
            self._pack(f"{len(values)}d", 8, *values)

    def string(self, text: str) -> None:
        data = text.encode("utf-8")
        self.u32(len(data) + 1)
        self._small += data + b"\x00"
        self._offset += len(data) + 1

    def header(self, stamp_ns: int, frame_id: str) -> None:
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        self._pack("iI", 4, sec, nanosec)
        self.string(frame_id)

    def blob(self, data) -> None:
        """uint8[]: the count, then the bytes of any buffer (numpy arrays included)."""
        view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
        self.u32(len(view))
        if len(view) <= _INLINE_MAX:
            self._small += view
        else:
            self._parts.append(self._small)
            self._parts.append(view)
            self._small = bytearray()
        self._offset += len(view)

    def parts(self) -> list:
        """The message as buffers to write one after the other (large blobs uncopied)."""
        return [*self._parts, self._small]

    def value(self) -> bytes:
        return b"".join(self.parts())

