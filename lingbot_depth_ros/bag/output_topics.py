"""The output bag of `bag process`: input topics copied byte for byte, plus the node's outputs
(topics, types and QoS of a node in the root namespace), stamped like the input colour image
and logged at the time the input pair was complete."""

from __future__ import annotations

import logging

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from ..core import output_topics as table
from ..core import serialized
from ..core.frame import CompletionResult
from ..core.outputs import OutputBuilder
from ..core.config import NodeConfig
from .frames import AssembledFrame
from .reader import BagError, BagReader
from .writer import BagWriter

log = logging.getLogger(__name__)


def _root(topic: table.OutputTopic, camera: str = "") -> str:
    """The output's name for a node in the root namespace (of a rig's `camera`)."""
    return f"/{camera}/{topic.name}" if camera else "/" + topic.name


DEPTH, DEPTH_INFO = _root(table.DEPTH), _root(table.DEPTH_INFO)
POINTS, SOURCE_MASK, RGBD = _root(table.POINTS), _root(table.SOURCE_MASK), _root(table.RGBD)
_ZERO = QosTime(sec=0, nsec=0)


def bag_qos(qos: table.TopicQos) -> Qos:
    """The rosbags form of an output's QoS, as a recorder of the node would store it."""
    return Qos(history=QosHistory.KEEP_LAST, depth=qos.depth,
               reliability=QosReliability.RELIABLE if qos.reliable else QosReliability.BEST_EFFORT,
               durability=QosDurability.TRANSIENT_LOCAL if qos.latched else QosDurability.VOLATILE,
               deadline=_ZERO, lifespan=_ZERO, liveliness=QosLiveliness.AUTOMATIC,
               liveliness_lease_duration=_ZERO, avoid_ros_namespace_conventions=False)


def output_topics(config: NodeConfig, cameras: tuple[str, ...] = ("",)) -> dict[str, str]:
    """Topic -> message type of every per-frame output the node would publish with `config`
    (for each of a rig's `cameras`)."""
    return {_root(t, c): t.msgtype for c in cameras for t in table.enabled_outputs(config)}


def check_output_types(config: NodeConfig, typestore) -> None:
    """Raise BagError before any output exists when an enabled output's type is undefined."""
    for topic, msgtype in output_topics(config).items():
        if msgtype not in typestore.types:
            raise BagError(f"{msgtype} for {topic} is not defined (msg/CompletedRGBD.msg not found "
                           "in the checkout or under AMENT_PREFIX_PATH); give -p publish_rgbd:=false")


class OutputWriter:
    """Registers the output bag's topics and writes copies and per-frame outputs."""

    def __init__(self, writer: BagWriter, reader: BagReader, config: NodeConfig,
                 builder: OutputBuilder, model_id: str = "", mode: str = "completion",
                 cameras: tuple[str, ...] = ("",)) -> None:
        self.writer, self.config, self.builder = writer, config, builder
        self.model_id, self.mode = model_id, mode
        self.outputs = output_topics(config, cameras)
        #: input topic -> why it is not copied
        self.skipped: dict[str, str] = {}
        self._copied_topics: set[str] = set()
        self.copied = 0
        self.written = {topic: 0 for topic in self.outputs}
        self._register_copies(reader)
        for camera in cameras:
            for topic in table.enabled_outputs(config):
                writer.add_topic(_root(topic, camera), topic.msgtype, qos=[bag_qos(topic.qos(config))])

    def _register_copies(self, reader: BagReader) -> None:
        for name, topic in reader.topics.items():
            if name in self.outputs:
                self.skipped[name] = "replaced by this run's output"
            elif not topic.known:
                self.skipped[name] = f"no definition of {topic.msgtype}"
            elif len({c.msgtype for c in topic.connections}) > 1:
                self.skipped[name] = "several message types on one topic"
            else:
                self.writer.add_topic(name, topic.msgtype,
                                      qos=topic.connections[0].ext.offered_qos_profiles)
                self._copied_topics.add(name)
        for name, why in self.skipped.items():
            log.warning("not copying %s: %s", name, why)

    def copies(self, topic: str) -> bool:
        return topic in self._copied_topics

    def copy(self, topic: str, log_time_ns: int, raw: bytes) -> None:
        self.writer.write_raw(topic, log_time_ns, raw)
        self.copied += 1

    def write_frame(self, item: AssembledFrame, result: CompletionResult,
                    engine: tuple[str, str] | None = None, camera: str = "") -> None:
        """Write one frame's outputs (under a rig's `camera`); `engine` (model id, mode)
        where the engine changed since this writer was made (a fallback mid-bag)."""
        frame, info = item.frame, item.info
        model, mode = engine if engine is not None else (self.model_id, self.mode)
        outputs = self.builder.build(frame, result, color=item.color, info=info,
                                     model=model, mode=mode,
                                     paired_at_ns=item.paired_at_ns, with_cloud=info is not None,
                                     with_rgbd=info is not None)
        # The node's serialized forms (core.serialized), pixels handed through uncopied.
        t, stamp, frame_id = item.log_time_ns, outputs.stamp_ns, outputs.frame_id
        depth, depth_info, mask, points, rgbd = (
            _root(topic, camera) for topic in (table.DEPTH, table.DEPTH_INFO, table.SOURCE_MASK,
                                               table.POINTS, table.RGBD))
        if depth in self.outputs:
            self._write_raw(depth, t, serialized.image_parts(stamp, frame_id, outputs.depth))
            if info is not None:
                self._write_raw(depth_info, t, serialized.camera_info_cdr(stamp, frame_id, info))
        if mask in self.outputs:
            self._write_raw(mask, t, serialized.image_parts(stamp, frame_id, outputs.source_mask))
        if outputs.cloud is not None:
            self._write_raw(points, t, serialized.cloud_parts(stamp, frame_id, outputs.cloud))
        if outputs.color is not None:
            self._write_raw(rgbd, t, serialized.completed_rgbd_parts(outputs))
        self.writer.flush()  # the builder reuses its output buffers for the next frame

    def _write_raw(self, topic: str, log_time_ns: int, parts: list) -> None:
        self.writer.write_raw(topic, log_time_ns, parts)
        self.written[topic] += 1
