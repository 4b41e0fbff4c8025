"""Reading and writing the serialized (CDR) form of ROS 2 messages, ROS-free.

The message layouts built on this are in core/serialized.py. Format: the 4-byte
encapsulation header (CDR, little- or big-endian), then the fields in order, each primitive
aligned to its size (at most 8) counted from the end of that header; strings are a uint32
length with the NUL included; sequences a uint32 count.
"""

from __future__ import annotations

import struct

from .errors import BufferSizeError, EncodingError

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

    def u32(self, value: int) -> None:
        self._pack("I", 4, int(value))

    def i32(self, value: int) -> None:
        self._pack("i", 4, int(value))

    def f32(self, value: float) -> None:
        self._pack("f", 4, float(value))

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
        self.i32(sec)
        self.u32(nanosec)
        self.string(frame_id)

    def blob(self, data) -> None:
        """uint8[]: the count, then the bytes of any buffer (numpy arrays included)."""
        view = memoryview(data).cast("B") if not isinstance(data, (bytes, bytearray)) else data
        self.u32(len(view))
        self._raw(view)

    def _raw(self, view) -> None:
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


class CdrReader:
    """Reads one serialized message in place; uint8[] fields come back as memoryviews."""

    def __init__(self, data, what: str) -> None:
        self._view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data.cast("B")
        self._what = what
        if len(self._view) < 4:
            raise BufferSizeError(f"{what}: serialized message of {len(self._view)} bytes has no CDR header")
        kind = self._view[1]
        if self._view[0] != 0 or kind not in (0, 1):
            raise EncodingError(f"{what}: not plain CDR (encapsulation {bytes(self._view[:2]).hex()})")
        self._endian = "<" if kind == 1 else ">"
        self._offset = 0
        self._base = 4

    def _take(self, size: int, alignment: int) -> int:
        self._offset += -self._offset % alignment
        start = self._base + self._offset
        if start + size > len(self._view):
            raise BufferSizeError(
                f"{self._what}: serialized message truncated ({len(self._view)} bytes, "
                f"field needs {start + size})")
        self._offset += size
        return start

    def _unpack(self, fmt: str, size: int, alignment: int):
        start = self._take(size, alignment)
        return struct.unpack_from(self._endian + fmt, self._view, start)

    def u8(self) -> int:
        return self._unpack("B", 1, 1)[0]

    def u32(self) -> int:
        return self._unpack("I", 4, 4)[0]

    def i32(self) -> int:
        return self._unpack("i", 4, 4)[0]

    def f64s(self, count: int | None = None) -> tuple[float, ...]:
        """float64[count], or a float64[] sequence when count is None."""
        n = self.u32() if count is None else count
        if n == 0:
            return ()
        return self._unpack(f"{n}d", 8 * n, 8)

    def string(self) -> str:
        n = self.u32()
        start = self._take(n, 1)
        return bytes(self._view[start:start + max(0, n - 1)]).decode("utf-8", errors="replace")

    def blob(self) -> memoryview:
        n = self.u32()
        start = self._take(n, 1)
        return self._view[start:start + n]

    def header(self) -> tuple[int, str]:
        sec = self.i32()
        nanosec = self.u32()
        return sec * 1_000_000_000 + nanosec, self.string()
