"""rosbags' MCAP storage reader with fewer copies of each message: indexed, uncompressed chunks
are read once and sliced (docs/internals.md); compressed chunks and files without an index
take rosbags' own path. Messages come out in rosbags' order."""

from __future__ import annotations

import heapq
import os
import struct
import zlib

from rosbags.rosbag2 import ReaderError
from rosbags.rosbag2.storage_mcap import ChunkInfo, McapReader, Msg, msgsrc

_RECORD_HEAD = struct.Struct("<BQ")  # opcode, content length
_MESSAGE_HEAD = struct.Struct("<HIQQ")  # channel, sequence, log time, publish time
_MESSAGE = 0x05
#: chunk record fields before the records: start, end, uncompressed size, crc, compression
#: (length-prefixed), records length; the chunk's own opcode and length come first
_CHUNK_FIXED = 1 + 8 + 8 + 8 + 8 + 4 + 4 + 8


class LeanMcapReader(McapReader):
    """McapReader whose indexed, uncompressed chunks are read without extra copies."""

    def messages(self, connections, start=None, stop=None):
        assert self.bio
        if not self.chunks:  # no index: rosbags scans the file
            yield from super().messages(connections, start, stop)
            return
        channel_map = {conn.id: conn for conn in connections}
        sources = [self._chunk_messages(chunk, channel_map,
                                        chunk.message_start_time if start is None else start,
                                        chunk.message_end_time + 1 if stop is None else stop)
                   for chunk in self.chunks
                   if (start is None or start < chunk.message_end_time + 1)
                   and (stop is None or chunk.message_start_time < stop)
                   and any(chunk.channel_count.get(cid, 0) for cid in channel_map)]
        for timestamp, offset, connection, data in heapq.merge(*sources):
            if offset:  # offset 0: a chunk's placeholder, see _chunk_messages
                yield connection, timestamp, data

    def _chunk_messages(self, chunk: ChunkInfo, channel_map: dict, start: int, stop: int):
        """The chunk's messages in log-time order, read only once the merge reaches it: a
        placeholder at the chunk's start time comes first (as in rosbags' msgsrc)."""
        if chunk.compression:
            yield from msgsrc(chunk, channel_map, start, stop, self.bio)
            return
        yield Msg(chunk.message_start_time, 0, None, None)
        fd = self.bio.fileno()
        crc_at = chunk.chunk_start_offset + 1 + 8 + 8 + 8 + 8
        records_at = chunk.chunk_start_offset + _CHUNK_FIXED + len(chunk.compression)
        size = chunk.uncompressed_size
        crc = struct.unpack("<I", _pread(fd, 4, crc_at))[0]
        head = _pread(fd, min(size, _RECORD_HEAD.size + _MESSAGE_HEAD.size), records_at)
        if not crc and len(head) == _RECORD_HEAD.size + _MESSAGE_HEAD.size:
            op, length = _RECORD_HEAD.unpack_from(head)
            if op == _MESSAGE and _RECORD_HEAD.size + length == size:  # one message alone
                cid, _, log_time, _ = _MESSAGE_HEAD.unpack_from(head, _RECORD_HEAD.size)
                if start <= log_time < stop and cid in channel_map:
                    body = _pread(fd, size - len(head), records_at + len(head))
                    yield Msg(log_time, chunk.chunk_start_offset, channel_map[cid], body)
                return
        records = _pread(fd, size, records_at)
        if crc and zlib.crc32(records) != crc:
            raise ReaderError("Chunk checksum mismatch.")
        yield from sorted(_split(records, chunk.chunk_start_offset, channel_map, start, stop),
                          key=lambda msg: msg.timestamp)


def _split(records: bytes, chunk_offset: int, channel_map: dict, start: int, stop: int):
    """The wanted message records of one chunk's records, in file order."""
    pos, end = 0, len(records)
    while pos < end:
        op, length = _RECORD_HEAD.unpack_from(records, pos)
        body = pos + _RECORD_HEAD.size
        pos = body + length
        if pos > end:
            raise ReaderError(f"Truncated record in chunk at offset {chunk_offset}.")
        if op == _MESSAGE:
            cid, _, log_time, _ = _MESSAGE_HEAD.unpack_from(records, body)
            if start <= log_time < stop and cid in channel_map:
                yield Msg(log_time, chunk_offset, channel_map[cid],
                          records[body + _MESSAGE_HEAD.size:pos])


def _pread(fd: int, size: int, offset: int) -> bytes:
    """Exactly `size` bytes at `offset` (the GIL is released while the kernel copies)."""
    data = os.pread(fd, size, offset)
    if len(data) != size:
        raise ReaderError(f"Truncated record at offset {offset}: expected {size} bytes, "
                          f"got {len(data)}.")
    return data
