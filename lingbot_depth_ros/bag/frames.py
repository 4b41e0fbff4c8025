"""Bag messages -> paired, validated RGBDFrames, with the node's pairing and input checks.

`iter_pairs` feeds the node's StampPairer in log-time order (the order a live node receives
them) and yields every pair; `FrameAssembler` decodes and validates a pair exactly as the
node's worker does (same errors, same camera info policy), so offline and live drop the same
frames for the same reasons. Offline every pair is processed: there is no "latest wins"
superseding, since nothing forces the bag to be read in real time.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from ..core.codec import COLOR_ENCODINGS, DEPTH_ENCODINGS, ImageFields, decode_fields
from ..core.depth import Infinities, check_registered, require_some_valid
from ..core.errors import EncodingError, LingbotDepthError, ShapeMismatchError, UnregisteredError
from ..core.frame import RGBDFrame
from ..core.outputs import CameraInfoFields, nominal_intrinsics
from ..core.pairing import DropCounter, Pair, StampPairer
from ..ros.params import NodeConfig
from .decode import IMAGE, decode_color, decode_depth, image_fields, stamp_ns
from .messages import camera_info_fields
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

    @property
    def images_in(self) -> int:
        return self.received["color"] + self.received["depth"]


def iter_pairs(reader: BagReader, topics: InputTopics, config: NodeConfig, drops: DropCounter,
               stats: PairStats, on_message: Callable | None = None,
               limit: int | None = None) -> Iterator[Pair]:
    """Yield every colour/depth pair of the bag (the first `limit`); `pair.color`/
    `pair.depth` are Received.

    `on_message(connection, log_time_ns, raw)` sees every message of the bag first (all
    topics when given, else only the input topics), e.g. to copy it to an output bag.
    The last pair is yielded without reading on, so `limit` pairs are read, not one more;
    images still waiting for a partner when the pairs stop are counted unpaired.
    """
    if limit is not None and limit < 1:
        return
    pairer = StampPairer(config.slop, config.pair_queue_size, drops, clock_ns=time.monotonic_ns)
    streams = {topics.color: "color", topics.depth: "depth"}
    if topics.info:
        streams[topics.info] = "camera_info"
    wanted = None if on_message is not None else topics.names()
    try:
        yield from _pairs(reader, streams, pairer, drops, stats, wanted, on_message, limit)
    finally:
        pairer.flush()


def _pairs(reader, streams, pairer, drops, stats, wanted, on_message, limit) -> Iterator[Pair]:
    for conn, log_time, raw in reader.messages(wanted):
        if on_message is not None:
            on_message(conn, log_time, raw)
        stream = streams.get(conn.topic)
        if stream is None:
            continue
        stats.received[stream] += 1
        try:
            msg = reader.deserialize(raw, conn.msgtype)
        except MessageDecodeError as exc:
            if stream != "camera_info":
                drops.add(exc.reason)
            log.warning("%s at %d: %s", conn.topic, log_time, exc)
            continue
        if stream == "camera_info":
            pairer.add_info(msg, stamp_ns(msg.header))
            continue
        add = pairer.add_color if stream == "color" else pairer.add_depth
        pair = add(stamp_ns(msg.header), Received(msg, conn.msgtype, log_time))
        if pair is not None:
            stats.pairs += 1
            yield pair
            if limit is not None and stats.pairs >= limit:
                return


@dataclass
class AssembledFrame:
    frame: RGBDFrame
    #: usable camera info of the colour camera, None without (then no cloud/camera info out)
    info: CameraInfoFields | None
    #: the colour image as received when it was a raw Image (CompletedRGBD.rgb), else None
    color: ImageFields | None
    #: log time at which the pair was complete (its later message)
    log_time_ns: int
    #: time.monotonic_ns when the pair formed (for latency_ms, as in the node)
    paired_at_ns: int
    #: REP 117 +Inf/-Inf of a 32FC1 depth, restored after completion (None when it has none)
    infinities: Infinities | None = None


class FrameAssembler:
    """Decodes and validates pairs like the node's worker (see ros/node.py _frame_of)."""

    def __init__(self, config: NodeConfig, completion_mode: bool = True) -> None:
        self.config = config
        self.completion_mode = completion_mode
        self.without_camera_info = 0
        self.distortion_warning = ""
        self._unregistered_said = False

    def assemble(self, pair: Pair) -> AssembledFrame:
        """Raises the node's input errors (EncodingError, ShapeMismatchError, ...)."""
        color, depth = pair.color, pair.depth
        # Encodings by name first, as the node does: a depth encoding on the colour topic must
        # read as a wrong encoding, not as a buffer of the wrong size.
        for received, allowed in ((color, COLOR_ENCODINGS), (depth, DEPTH_ENCODINGS)):
            if received.msgtype == IMAGE and received.msg.encoding not in allowed:
                raise EncodingError(f"encoding '{received.msg.encoding}' is not one of "
                                    f"{', '.join(allowed)}")
        self._check_registered(color.msg.header.frame_id, depth.msg.header.frame_id)
        rgb = decode_color(color.msg, color.msgtype)
        infinities = (Infinities.of(decode_fields(image_fields(depth.msg)), depth.msg.encoding)
                      if depth.msgtype == IMAGE else None)  # compressedDepth has no infinities
        metres = decode_depth(depth.msg, depth.msgtype, self.config.depth_scale,
                              self.config.valid_range)
        if metres.shape != rgb.shape[:2]:
            raise ShapeMismatchError(
                f"colour is {rgb.shape[1]}x{rgb.shape[0]} but depth is {metres.shape[1]}x"
                f"{metres.shape[0]}: use depth registered to colour")
        if self.completion_mode:
            require_some_valid(metres)
        info = self._camera_info(pair.info, *rgb.shape[:2])
        K = info.K if info is not None else nominal_intrinsics(*rgb.shape[:2])
        frame = RGBDFrame(rgb=np.ascontiguousarray(rgb), depth=metres, K=K,
                          stamp_ns=stamp_ns(color.msg.header), frame_id=color.msg.header.frame_id)
        received = image_fields(color.msg) if color.msgtype == IMAGE else None
        return AssembledFrame(frame, info, received, max(color.log_time_ns, depth.log_time_ns),
                              pair.paired_at_ns, infinities)

    def _check_registered(self, color_frame_id: str, depth_frame_id: str) -> None:
        try:
            check_registered(color_frame_id, depth_frame_id, self.config.assume_registered)
        except UnregisteredError as exc:
            if not self._unregistered_said:  # once, as the node does
                self._unregistered_said = True
                log.error("dropping every pair: %s", exc)
            raise

    def _camera_info(self, msg, height: int, width: int) -> CameraInfoFields | None:
        problem = "no camera info before this frame"
        if msg is not None:
            info = camera_info_fields(msg)
            problem = info.usability_problem(height, width)
            if not problem:
                if not self.distortion_warning and info.distortion_note():
                    self.distortion_warning = info.distortion_note()
                    log.warning(self.distortion_warning)
                return info
        if self.without_camera_info == 0:
            log.warning("%s: writing depth without cloud or camera info", problem)
        self.without_camera_info += 1
        return None


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
