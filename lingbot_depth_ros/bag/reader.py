"""Open rosbag2 recordings (sqlite3 or MCAP, directory or single file) with ``rosbags``: types
from the bag, else the chosen distribution; CompletedRGBD from ``msg/``. Every failure to
read is a BagError line, never a rosbags/sqlite traceback."""

from __future__ import annotations

import logging
import sqlite3
import struct
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import apsw
from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag2 import ReaderError
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.serde import SerdeError
from rosbags.typesys import Stores, TypesysError, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from ..core.errors import error_class
from ..paths import data_roots
from .recover import RecoveringReader

log = logging.getLogger(__name__)

#: ROS 2 distributions whose standard message definitions we ship (via rosbags)
DISTRO_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY,
                 "kilted": Stores.ROS2_KILTED}
DISTROS = ("auto", *DISTRO_STORES)
COMPLETED_RGBD = "lingbot_depth_ros/msg/CompletedRGBD"
_MSG_NAME = "CompletedRGBD.msg"
#: what a broken bag file raises inside rosbags and the storage libraries
_READ_ERRORS = (ReaderError, apsw.Error, sqlite3.Error, struct.error, EOFError, OSError,
                KeyError, ValueError, AssertionError, IndexError)
#: what rosbags' CDR deserializer raises on short or garbled message bytes
_CDR_ERRORS = (SerdeError, struct.error, IndexError, ValueError, UnicodeDecodeError, AssertionError)


BagError = error_class("BagError", "bad_bag", None,
                       "A bag cannot be opened or read (missing, truncated, corrupt, unsupported).")
TopicError = error_class("TopicError", "missing_topic", None,
                         "A topic the tool needs is missing from the bag or has an unusable type.")
MessageDecodeError = error_class("MessageDecodeError", "undecodable_message", None,
                                 "One message's bytes do not deserialize as its declared type.")


def _msg_file_candidates() -> list[Path]:
    """msg/ of the source checkout, then share/lingbot_depth_ros/msg of ament prefixes and of
    this Python's prefix (a pip install)."""
    return [root / "msg" / _MSG_NAME for root in data_roots()]


@lru_cache(maxsize=1)
def completed_rgbd_types() -> dict:
    """The CompletedRGBD definition as a rosbags types dict; {} (and a warning) when no
    CompletedRGBD.msg can be found, so everything but the rgbd output still works."""
    for path in _msg_file_candidates():
        if path.is_file():
            return get_types_from_msg(path.read_text(), COMPLETED_RGBD)
    log.warning("no %s found (looked in %s): bags cannot hold %s", _MSG_NAME,
                ", ".join(str(p.parent) for p in _msg_file_candidates()), COMPLETED_RGBD)
    return {}


#: typestores built so far, by the definitions that went in; registering a distribution's
#: few hundred types takes long enough (docs/benchmarks.md) that every bag opened again
#: (replays, benchmarks) should not pay it again; nothing registers into a store once built
_TYPESTORES: dict[tuple[str, str, str], Typestore] = {}
_TYPESTORE_CACHE_SIZE = 8


def build_typestore(distro: str, embedded: dict | None = None) -> Typestore:
    """Standard types of `distro`, overridden by the bag's `embedded` ones, plus CompletedRGBD.

    The same definitions give the same (shared, never modified) store."""
    key = (distro, repr(sorted((embedded or {}).items())),
           repr(sorted(completed_rgbd_types().items())))
    store = _TYPESTORES.get(key)
    if store is None:
        store = _new_typestore(distro, embedded)
        if len(_TYPESTORES) >= _TYPESTORE_CACHE_SIZE:
            _TYPESTORES.pop(next(iter(_TYPESTORES)))
        _TYPESTORES[key] = store
    return store


def _new_typestore(distro: str, embedded: dict | None) -> Typestore:
    try:
        store = DISTRO_STORES[distro]
    except KeyError:
        raise ValueError(f"unknown ROS distribution '{distro}' (choose from {', '.join(DISTROS)})") from None
    types = dict(get_typestore(store).fielddefs)
    types.update(embedded or {})
    for name, definition in completed_rgbd_types().items():
        types.setdefault(name, definition)
    typestore = get_typestore(Stores.EMPTY)
    typestore.register(types)
    return typestore


def embedded_types(connections: list[Connection]) -> dict:
    """Types the bag defines itself (MCAP schemas, sqlite3 message_definitions); broken
    definitions are skipped with a warning (their topics then count as unknown types)."""
    types: dict = {}
    for conn in connections:
        fmt, text = conn.msgdef.format, conn.msgdef.data
        try:
            if fmt == MessageDefinitionFormat.MSG and text:
                types.update(get_types_from_msg(text, conn.msgtype))
            elif fmt == MessageDefinitionFormat.IDL and text:
                sep = "=" * 80 + "\n"
                for part in (text.split(sep)[1:] if text.startswith(sep) else [text]):
                    types.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
        except (TypesysError, IndexError, ValueError) as exc:
            log.warning("bag's definition of %s (topic %s) is unreadable: %s", conn.msgtype, conn.topic, exc)
    return types


@dataclass(frozen=True)
class BagTopic:
    name: str
    msgtype: str
    count: int
    connections: tuple[Connection, ...]
    #: False when neither the bag nor the distribution defines the type
    known: bool


class BagReader:
    """A rosbag2 opened for reading. Use as a context manager."""

    def __init__(self, path: str | Path, distro: str = "auto") -> None:
        self.path = Path(path)
        if distro not in DISTROS:
            raise ValueError(f"unknown ROS distribution '{distro}' (choose from {', '.join(DISTROS)})")
        self.requested_distro = distro
        self.distro = distro
        self._reader: RecoveringReader | None = None
        self.typestore: Typestore | None = None
        self.topics: dict[str, BagTopic] = {}

    def __enter__(self) -> "BagReader":
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> None:
        if not self.path.exists():
            raise BagError(f"bag {self.path} does not exist")
        try:
            reader = RecoveringReader(self.path)
            reader.open()
        except _READ_ERRORS as exc:
            raise BagError(f"cannot open bag {self.path}: {_describe(exc)}") from exc
        self._reader = reader
        try:
            connections = list(reader.connections)
            own = embedded_types(connections)
            self.distro = self._pick_distro(getattr(reader, "ros_distro", None), bool(own))
            self.typestore = build_typestore(self.distro, own)
        except (TypesysError, ValueError) as exc:
            self.close()
            raise BagError(f"bag {self.path} has conflicting message definitions: {exc}") from exc
        self.topics = self._collect_topics(connections)

    def _pick_distro(self, recorded: str | None, has_definitions: bool) -> str:
        if self.requested_distro != "auto":
            return self.requested_distro
        if recorded in DISTRO_STORES:
            return recorded
        # Bags without definitions come from recorders before Iron, i.e. Humble; for the rest
        # the bag defines its types itself and the newest store only fills gaps.
        choice = "kilted" if has_definitions else "humble"
        log.info("bag names no known ROS distribution (%r); using %s message definitions",
                 recorded, choice)
        return choice

    def _collect_topics(self, connections: list[Connection]) -> dict[str, BagTopic]:
        grouped: dict[str, list[Connection]] = {}
        for conn in connections:
            grouped.setdefault(conn.topic, []).append(conn)
        readable = self._readable_counts()
        topics = {}
        for name, conns in sorted(grouped.items()):
            msgtype = conns[0].msgtype
            count = sum(c.msgcount for c in conns) if readable is None else readable[name]
            topics[name] = BagTopic(name=name, msgtype=msgtype, count=count,
                                    connections=tuple(conns),
                                    known=msgtype in self.typestore.types)
        return topics

    def _readable_counts(self) -> Counter | None:
        """Per-topic counts of a truncated bag's readable part (metadata.yaml counts all)."""
        if not self._reader.truncated:
            return None
        storages = getattr(self._reader.storage, "storages", None) or [self._reader.storage]
        counts: Counter = Counter()
        for storage in storages:
            for conn in storage.connections:
                counts[conn.topic] += conn.msgcount
        return counts

    def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader.is_open:
            try:
                reader.close()
            except _READ_ERRORS as exc:  # closing a broken file must not hide the first error
                log.debug("closing %s: %s", self.path, exc)

    # -- facts ----------------------------------------------------------------------------
    @property
    def storage(self) -> str:
        """'mcap' or 'sqlite3'."""
        assert self._reader is not None, "bag is not open"
        storage = self._reader.storage
        inner = getattr(storage, "storages", None) or [storage]
        return "mcap" if isinstance(inner[0], McapReader) else "sqlite3"

    @property
    def truncated(self) -> bool:
        """True when the file ends early and only the part before the cut is read."""
        assert self._reader is not None, "bag is not open"
        return self._reader.truncated

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics.values())

    def topic(self, name: str) -> BagTopic:
        try:
            return self.topics[name]
        except KeyError:
            raise TopicError(f"bag {self.path} has no topic '{name}' (it has: "
                             f"{', '.join(self.topics) or 'no topics'})") from None

    # -- messages -------------------------------------------------------------------------
    def messages(self, topics: list[str] | None = None) -> Iterator[tuple[Connection, int, bytes]]:
        """(connection, log time ns, CDR bytes) in log-time order; a file that breaks off
        mid-way raises BagError after the messages before the damage."""
        assert self._reader is not None, "bag is not open"
        conns = [c for t in (topics if topics is not None else self.topics)
                 for c in self.topics[t].connections]
        if topics is not None and not conns:
            return
        try:
            yield from self._reader.messages(connections=conns)
        except _READ_ERRORS as exc:
            raise BagError(f"bag {self.path} is damaged: {_describe(exc)}") from exc

    def deserialize(self, raw: bytes, msgtype: str):
        try:
            return self.typestore.deserialize_cdr(raw, msgtype)
        except KeyError:
            raise MessageDecodeError(f"message type {msgtype} is not defined") from None
        except _CDR_ERRORS as exc:
            raise MessageDecodeError(f"a {msgtype} message does not deserialize: {_describe(exc)}") from exc


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 300 else text[:300] + "..."
