"""Read MCAP files that end early (a recorder killed before the summary and footer): every
complete record before the damage is kept; opened files say whether they were cut."""

from __future__ import annotations

import logging
import struct

from rosbags.rosbag2 import Reader, ReaderError
from rosbags.rosbag2.reader import DirectoryReader
from rosbags.rosbag2.storage_sqlite3 import Sqlite3Reader

from .mcap_reader import LeanMcapReader

log = logging.getLogger(__name__)

_RECORD_HEAD = struct.Struct("<BQ")  # opcode, content length


class TruncatedMcapReader(LeanMcapReader):
    """MCAP reader that falls back to the readable prefix of a truncated file."""

    truncated = False

    def _open(self) -> None:
        try:
            super()._open()
        except ReaderError as exc:
            if "end magic" not in str(exc):
                raise
            self._open_prefix()

    def _open_prefix(self) -> None:
        assert self.bio
        self.bio.seek(0, 2)
        size = self.bio.tell()
        # data_start was set by the header check in McapReader._open before it failed
        pos = self.data_start
        self.bio.seek(pos)
        while pos + _RECORD_HEAD.size <= size:
            head = self.bio.read(_RECORD_HEAD.size)
            _, length = _RECORD_HEAD.unpack(head)
            end = pos + _RECORD_HEAD.size + length
            if end > size:
                break
            pos = end
            self.bio.seek(pos)
        self.data_end = pos
        self.schemas.clear()
        self.channels.clear()
        self.chunks.clear()
        self.connections.clear()
        self.meta_scan()
        self.truncated = True
        assert self.statistics
        stats = self.statistics
        self.connections = [c._replace(msgcount=stats.channel_message_counts.get(c.id, 0))
                            for c in self.connections]
        count = stats.message_count
        self.metadata = self.metadata._replace(
            duration=stats.end_time - stats.start_time + 1 if count else 0,
            start_time=stats.start_time if count else 2**63 - 1,
            end_time=stats.end_time + 1 if count else 0, message_count=count)
        log.warning("%s is truncated (no MCAP footer): reading the %d messages before the cut",
                    self.path, count)


class _Directory(DirectoryReader):
    STORAGE_PLUGINS = {"mcap": TruncatedMcapReader, "sqlite3": Sqlite3Reader}


class RecoveringReader(Reader):
    """rosbags' rosbag2 Reader, reading truncated MCAP files up to the damage."""

    STORAGE_PLUGINS = {"dir": _Directory, ".mcap": TruncatedMcapReader, ".db3": Sqlite3Reader}

    @property
    def truncated(self) -> bool:
        storages = getattr(self.storage, "storages", None) or [self.storage]
        return any(getattr(s, "truncated", False) for s in storages)
