"""rosbags' MCAP storage writer with fewer copies of each message: a large message is a chunk
of its own written from the caller's buffer, and records go out with one os.writev per flush
(docs/internals.md). The records are the ones rosbags writes."""

from __future__ import annotations

import os
import struct

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapWriter, PendingChunk, write_record
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Writer

_MESSAGE_HEAD = struct.Struct("<BQHIQQ")  # op 0x05, length, channel, sequence, log, publish
_CHUNK_HEAD = struct.Struct("<BQQQQI")  # op 0x06, length, start, end, uncompressed size, crc
_CHUNK_LIMIT = 1 << 20  # close a chunk past 1 MiB, as rosbags does
#: messages at least this big are written as a chunk of their own, without buffering
_DIRECT_MIN = 1 << 16
#: writes smaller than this are packed together; larger ones are kept as they are
_PACK_MAX = 1 << 14
#: gathered bytes that trigger a flush without being asked
_FLUSH_AT = 64 << 20
_IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class GatherFile:
    """A write-only file that keeps what it is given and writes it out with os.writev; a
    buffer passed to write() must not change until the next flush() (or close())."""

    def __init__(self, file) -> None:
        file.flush()  # whatever it buffered goes first
        self._file = file
        self._fd = file.fileno()
        self._pos = file.tell()
        self._parts: list = []
        self._small = bytearray()
        self._pending = 0

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if size < _PACK_MAX:
            self._small += view
        else:
            self._take_small()
            self._parts.append(view)
        self._pos += size
        self._pending += size
        if self._pending >= _FLUSH_AT:
            self.flush()
        return size

    def tell(self) -> int:
        return self._pos

    def _take_small(self) -> None:
        if self._small:
            self._parts.append(self._small)
            self._small = bytearray()

    def flush(self) -> None:
        self._take_small()
        parts, self._parts, self._pending = self._parts, [], 0
        done = 0  # parts fully written
        while done < len(parts):
            written = os.writev(self._fd, parts[done:done + _IOV_MAX])
            for part in parts[done:done + _IOV_MAX]:
                if written < len(part):  # a short write resumes mid-buffer
                    parts[done] = memoryview(part)[written:]
                    break
                written -= len(part)
                done += 1

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._file.close()


class LeanMcapWriter(McapWriter):
    """Uncompressed MCAP chunks written with one copy per message into the chunk and none
    from the chunk to the file."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bio = GatherFile(self.bio)

    def flush(self) -> None:
        """Hand everything written so far to the kernel; buffers passed in may then change."""
        self.bio.flush()

    def write(self, connection, timestamp: int, data) -> None:
        """`data`: the serialized message, or a list of buffers that make it up in order."""
        parts = data if isinstance(data, list) else [data]
        if self.compression:  # compressed chunks go through rosbags' own path
            super().write(connection, timestamp, b"".join(parts) if len(parts) > 1 else data)
            return
        size = sum(len(p) for p in parts)
        self.message_start_time = min(timestamp, self.message_start_time)
        self.message_end_time = max(timestamp, self.message_end_time)
        self.channel_stats[connection.id] += 1
        if size >= _DIRECT_MIN:
            self._write_alone(connection.id, timestamp, parts, size)
            return
        chunk = self.chunk
        chunk.message_start_time = min(timestamp, chunk.message_start_time)
        chunk.message_end_time = max(timestamp, chunk.message_end_time)
        chunk.msgs[connection.id].append((timestamp, chunk.bio.tell()))
        chunk.bio.write(_MESSAGE_HEAD.pack(0x05, 22 + size, connection.id, 0, timestamp, timestamp))
        for part in parts:
            chunk.bio.write(part)
        if chunk.bio.tell() > _CHUNK_LIMIT:
            self.close_chunk()

    def close_chunk(self) -> None:
        if self.compression:
            super().close_chunk()
            return
        chunk = self.chunk
        body = chunk.bio.getbuffer()
        size = len(body)
        # chunk record: start, end, uncompressed size, crc (0: none), compression "", size, body
        chunk_start = self.bio.tell()
        self.bio.write(_CHUNK_HEAD.pack(0x06, 8 + 8 + 8 + 4 + 4 + 8 + size, chunk.message_start_time,
                                        chunk.message_end_time, size, 0))
        self.bio.write((0).to_bytes(4, "little") + size.to_bytes(8, "little"))
        self.bio.write(body)
        del body  # the file holds the only export now, until it flushes
        chunk_end = self.bio.tell()
        offsets = self._write_message_indexes(chunk)
        self.chunks.append(self._chunk_index(chunk, chunk_start, chunk_end, offsets, size))
        self.chunk = PendingChunk(2**63 - 1, 0, type(chunk.bio)(), type(chunk.msgs)(list))

    def _write_alone(self, cid: int, timestamp: int, parts: list, size: int) -> None:
        """One message as one chunk, from `parts` to the file with no intermediate buffer."""
        if self.chunk.bio.tell():
            self.close_chunk()
        record = _MESSAGE_HEAD.size + size
        chunk_start = self.bio.tell()
        self.bio.write(_CHUNK_HEAD.pack(0x06, 8 + 8 + 8 + 4 + 4 + 8 + record, timestamp, timestamp,
                                        record, 0))
        self.bio.write((0).to_bytes(4, "little") + record.to_bytes(8, "little"))
        self.bio.write(_MESSAGE_HEAD.pack(0x05, 22 + size, cid, 0, timestamp, timestamp))
        for part in parts:
            self.bio.write(part)
        chunk_end = self.bio.tell()
        alone = PendingChunk(timestamp, timestamp, self.chunk.bio, {cid: [(timestamp, 0)]})
        offsets = self._write_message_indexes(alone)
        self.chunks.append(self._chunk_index(alone, chunk_start, chunk_end, offsets, record))

    def _write_message_indexes(self, chunk: PendingChunk) -> list[tuple[int, int]]:
        offsets = []
        for cid, msgs in chunk.msgs.items():
            offsets.append((cid, self.bio.tell()))
            # message index: channel, byte length of the (log time, offset) pairs, the pairs
            rec = type(chunk.bio)()  # write_record takes the record's length from tell()
            rec.write(struct.pack(f"<HI{2 * len(msgs)}Q", cid, len(msgs) * 16, *(v for pair in msgs for v in pair)))
            write_record(self.bio, 0x07, rec)
        return offsets

    def _chunk_index(self, chunk: PendingChunk, chunk_start: int, chunk_end: int,
                     offsets: list[tuple[int, int]], size: int):
        # chunk index: start and end time, chunk start and length, the (channel, message index
        # offset) pairs, message index length, compression "", compressed and uncompressed size
        head = struct.pack("<4QI", chunk.message_start_time, chunk.message_end_time, chunk_start,
                           chunk_end - chunk_start, len(offsets) * 10)
        pairs = b"".join(struct.pack("<HQ", cid, offset) for cid, offset in offsets)
        tail = struct.pack("<QI2Q", self.bio.tell() - chunk_end, 0, size, size)
        rec = type(chunk.bio)()
        rec.write(head + pairs + tail)
        return rec


class LeanWriter(Writer):
    """rosbags' rosbag2 Writer using LeanMcapWriter for MCAP storage."""

    STORAGE_PLUGINS = {StoragePlugin.SQLITE3: Sqlite3Writer, StoragePlugin.MCAP: LeanMcapWriter}
