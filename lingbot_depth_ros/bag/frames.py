"""Bag messages -> paired, validated RGBDFrames, with the node's pairing and input checks, so
offline and live drop the same frames for the same reasons. Offline every pair is processed
(no "latest wins": nothing forces the bag to be read in real time)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..core import pipeline
from ..core.errors import EncodingError, LingbotDepthError
from ..core.pairing import DropCounter, Pair, StampPairer
from ..core.pipeline import AssembledFrame
from ..core.outputs import CameraInfoFields
from ..core.stamped import StampedImage, stamp_ns
from ..core.config import NodeConfig
from .decode import (COMPRESSED, IMAGE, decode_color, decode_compressed_depth, decode_depth,
                     is_compressed_depth)
from .reader import BagReader, MessageDecodeError
from .topics import InputTopics

log = logging.getLogger(__name__)


@dataclass
class Received:
    """One image message as it came out of the bag."""

    msg: object
    msgtype: str
    log_time_ns: int


@dataclass
class PairStats:
    received: Counter = field(default_factory=Counter)  # "color" | "depth" | "camera_info"
    pairs: int = 0


def iter_pairs(reader: BagReader, topics: InputTopics, config: NodeConfig, drops: DropCounter,
               stats: PairStats, on_message: Callable | None = None,
               limit: int | None = None) -> Iterator[Pair]:
    """Yield every colour/depth pair of the bag in log-time order (the first `limit`, without
    reading on); `on_message(connection, log_time_ns, raw)` sees every message first (e.g. to
    copy it). Images still waiting for a partner at the end are counted unpaired."""
    camera = BagCamera("", topics, config, drops, stats)
    for _, pair in iter_rig_pairs(reader, [camera], on_message, limit):
        yield pair


@dataclass
class BagCamera:
    """One camera of a bag: its topics, configuration and counters."""

    name: str
    topics: InputTopics
    config: NodeConfig
    drops: DropCounter = field(default_factory=DropCounter)
    stats: PairStats = field(default_factory=PairStats)


def iter_rig_pairs(reader: BagReader, cameras: list[BagCamera], on_message: Callable | None = None,
                   limit: int | None = None) -> Iterator[tuple[BagCamera, Pair]]:
    """(camera, pair) for every colour/depth pair of every camera, in log-time order (the
    first `limit` pairs in all), each camera paired by its own pairer and counters."""
    if limit is not None and limit < 1:
        return
    pairers = [StampPairer(c.config.slop, c.config.pair_queue_size, c.drops, clock_ns=time.monotonic_ns)
               for c in cameras]
    streams: dict[str, tuple[int, str]] = {}
    for index, camera in enumerate(cameras):
        streams.update({camera.topics.color: (index, "color"), camera.topics.depth: (index, "depth")})
        if camera.topics.info:
            streams[camera.topics.info] = (index, "camera_info")
    wanted = None if on_message is not None else list(streams)
    try:
        yield from _pairs(reader, streams, cameras, pairers, wanted, on_message, limit)
    finally:
        for pairer in pairers:
            pairer.flush()


def _pairs(reader, streams, cameras, pairers, wanted, on_message, limit):
    pairs = 0
    for conn, log_time, raw in reader.messages(wanted):
        if on_message is not None:
            on_message(conn, log_time, raw)
        if conn.topic not in streams:
            continue
        index, stream = streams[conn.topic]
        camera, pairer = cameras[index], pairers[index]
        camera.stats.received[stream] += 1
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except MessageDecodeError as exc:
            if stream != "camera_info":
                camera.drops.add(exc.reason)
            log.warning("%s at %d: %s", conn.topic, log_time, exc)
            continue
        if stream == "camera_info":
            pairer.add_info(msg, stamp_ns(msg.header))
            continue
        add = pairer.add_color if stream == "color" else pairer.add_depth
        pair = add(stamp_ns(msg.header), Received(msg, conn.msgtype, log_time))
        if pair is not None:
            camera.stats.pairs += 1
            pairs += 1
            yield camera, pair
            if limit is not None and pairs >= limit:
                return


@dataclass
class _Compressed:
    """A bag's CompressedImage as the pipeline's EncodedImage (core/pipeline.py)."""

    received: Received

    @property
    def stamp_ns(self) -> int:
        return stamp_ns(self.received.msg.header)

    @property
    def frame_id(self) -> str:
        return self.received.msg.header.frame_id

    def decode_color(self) -> np.ndarray:
        return decode_color(self.received.msg, self.received.msgtype)

    def decode_depth(self) -> tuple[str, np.ndarray]:
        msg = self.received.msg
        if not is_compressed_depth(msg):
            decode_depth(msg, self.received.msgtype)  # raises the specific error
        return decode_compressed_depth(str(msg.format), msg.data)


def pipeline_image(received: Received) -> StampedImage | _Compressed:
    """A bag message as the pipeline takes it: a raw Image's fields uncopied."""
    msg = received.msg
    if received.msgtype == IMAGE:
        return StampedImage.from_msg(msg)
    if received.msgtype != COMPRESSED:
        raise EncodingError(f"cannot read {received.msgtype} (need {IMAGE} or {COMPRESSED})")
    return _Compressed(received)


class FrameAssembler(pipeline.FrameAssembler):
    """The pipeline's assembler (core/pipeline.py) over bag pairs of Received messages."""

    def __init__(self, config: NodeConfig, completion_mode: bool = True) -> None:
        super().__init__(config, completion_mode, warn=self._warn_first)

    def _warn_first(self, message: str) -> None:
        if self.without_camera_info == 1:  # once per run; the summary gives the count
            log.warning("%s", message)

    def assemble(self, pair: Pair) -> AssembledFrame:  # type: ignore[override]
        """Raises the node's input errors (EncodingError, ShapeMismatchError, ...)."""
        info = CameraInfoFields.from_msg(pair.info) if pair.info is not None else None
        return super().assemble(pipeline_image(pair.color), pipeline_image(pair.depth), info, pair.paired_at_ns,
                                max(pair.color.log_time_ns, pair.depth.log_time_ns))


def iter_frames(reader: BagReader, topics: InputTopics, config: NodeConfig, drops: DropCounter,
                stats: PairStats, assembler: FrameAssembler,
                limit: int | None = None) -> Iterator[AssembledFrame]:
    """Every pair that passes the node's input checks, decoded (at most `limit` pairs);
    the others are counted in `drops` (2 images per pair)."""
    for pair in iter_pairs(reader, topics, config, drops, stats, limit=limit):
        try:
            yield assembler.assemble(pair)
        except LingbotDepthError as exc:
            drops.add(exc.reason, 2)
            log.warning("dropped a frame pair (%s): %s", exc.reason, exc)
