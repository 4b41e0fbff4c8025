"""Write rosbag2 recordings with ``rosbags``: a bag directory, or a single ``.mcap``/``.db3``
file. Assembled in ``<out>.partial/`` and moved into place only when closed cleanly."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, WriterError
from rosbags.typesys.store import Typestore

from ..core.errors import one_line_reason
from ..core.io import remove_path
from .mcap_writer import LeanWriter
from .messages import serialize_parts
from .reader import BagError

log = logging.getLogger(__name__)

STORAGES = ("mcap", "sqlite3")
_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}
_PLUGIN = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}
#: rosbag2 metadata version: 8 is what Jazzy writes and Kilted still reads
BAG_VERSION = 8


def storage_for(path: str | Path, storage: str | None, default: str = "mcap") -> str:
    """The storage to write `path` in: explicit, else from a .mcap/.db3 suffix, else default."""
    suffix_storage = _SUFFIX.get(Path(path).suffix.lower())
    if storage is None:
        return suffix_storage or default
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, got '{storage}'")
    if suffix_storage and suffix_storage != storage:
        raise ValueError(f"output {path} ends in {Path(path).suffix} but --storage is {storage}")
    return storage


class BagWriter:
    """A rosbag2 being written. Use as a context manager: a clean exit (or an interrupt)
    commits the bag to its final name, an exception removes what was staged."""

    def __init__(self, path: str | Path, storage: str, typestore: Typestore) -> None:
        self.path = Path(path)
        self.storage = storage_for(self.path, storage)
        self.single_file = self.path.suffix.lower() in _SUFFIX
        self.typestore = typestore
        if self.path.exists():
            raise BagError(f"output {self.path} exists already; remove it or choose another name")
        #: everything is written under here; a bag directory is OUT.partial/OUT (so its
        #: storage file already has its final name), a single file comes out of its bag folder
        self._staging = self.path.with_name(self.path.name + ".partial")
        self._bag_dir = self._staging if self.single_file else self._staging / self.path.name
        self._writer = LeanWriter(self._bag_dir, version=BAG_VERSION,
                                  storage_plugin=_PLUGIN[self.storage])
        self._connections: dict[str, Connection] = {}
        self.count = 0

    def __enter__(self) -> "BagWriter":
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None or issubclass(exc_type, KeyboardInterrupt):
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            remove_path(self._staging)  # left by a run that was killed
            if not self.single_file:
                self._staging.mkdir()
            self._writer.open()
        except (WriterError, OSError) as exc:
            self._writer = None
            remove_path(self._staging)
            raise BagError(f"cannot create output bag {self.path}: {_reason(exc)}") from exc

    def add_topic(self, topic: str, msgtype: str, qos: list[Qos] | tuple = (),
                  msgdef: str | None = None, rihs01: str | None = None) -> Connection:
        """Register a topic; `msgdef`/`rihs01` default to the typestore's definition."""
        if topic in self._connections:
            raise BagError(f"topic {topic} is written twice (input and output names collide?)")
        try:
            conn = self._writer.add_connection(
                topic, msgtype, typestore=self.typestore, msgdef=msgdef or None,
                rihs01=rihs01 or None, offered_qos_profiles=list(qos))
        except (WriterError, KeyError) as exc:
            raise BagError(f"cannot add topic {topic} ({msgtype}) to {self.path}: {exc}") from exc
        except _WRITE_ERRORS as exc:
            raise BagError(f"cannot write output bag {self.path}: {_reason(exc)}") from exc
        self._connections[topic] = conn
        return conn

    def write_raw(self, topic: str, log_time_ns: int, data: bytes | memoryview | list) -> None:
        """Write serialized bytes; a list of buffers is one message in parts (see
        messages.serialize_parts), passed on uncopied to MCAP storage, which may keep
        referring to them until flush(): change them only after that."""
        if isinstance(data, list) and self.storage != "mcap":
            data = b"".join(data)
        try:
            self._writer.write(self._connections[topic], int(log_time_ns), data)
        except _WRITE_ERRORS as exc:
            raise BagError(f"cannot write output bag {self.path}: {_reason(exc)}") from exc
        self.count += 1

    def write(self, topic: str, log_time_ns: int, msg) -> None:
        conn = self._connections[topic]
        parts = serialize_parts(self.typestore, msg, conn.msgtype)
        self.write_raw(topic, log_time_ns, parts if len(parts) > 1 else parts[0])

    def flush(self) -> None:
        """Hand every message written so far to the file (MCAP storage gathers them)."""
        flush = getattr(self._writer.storage, "flush", None) if self._writer else None
        if flush is not None:
            try:
                flush()
            except _WRITE_ERRORS as exc:
                raise BagError(f"cannot write output bag {self.path}: {_reason(exc)}") from exc

    def close(self) -> None:
        """Write the index and metadata and move the bag to its final name (idempotent);
        when that fails, nothing is left at the final name and BagError says why."""
        if self._writer is None:
            return
        writer, self._writer = self._writer, None
        if writer.storage is None:  # never opened
            return
        try:
            writer.close()
            if self.single_file:
                inner = next(p for p in self._staging.iterdir() if p.name != "metadata.yaml")
                inner.replace(self.path)
            else:
                self._bag_dir.replace(self.path)
        except _WRITE_ERRORS as exc:
            remove_path(self._staging)
            raise BagError(f"cannot finish output bag {self.path}: {_reason(exc)}") from exc
        remove_path(self._staging)
        log.debug("wrote %d messages to %s", self.count, self.path)

    def abort(self) -> None:
        """Drop what was staged (after an error): nothing appears at the final name."""
        writer, self._writer = self._writer, None
        if writer is not None and writer.storage is not None:
            try:
                writer.abort()
            except Exception as exc:  # a full disk can fail this too; the files go anyway
                log.debug("aborting %s: %s", self.path, exc)
        remove_path(self._staging)


#: what storage writes raise on a full disk or a vanished folder (sqlite3 has its own class)
_WRITE_ERRORS = (OSError, sqlite3.Error, WriterError)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, sqlite3.Error) and "full" in str(exc):
        return "no space left on the device (sqlite3: database or disk is full)"
    return one_line_reason(exc)

