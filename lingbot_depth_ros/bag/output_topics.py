"""The output bag of `bag process`: input topics copied byte for byte, plus the node's outputs
(topics, types and QoS of a node in the root namespace), stamped like the input colour image
and logged at the time the input pair was complete."""

from __future__ import annotations

import logging

from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

from ..core import serialized
from ..core.frame import CompletionResult
from ..core.outputs import OutputBuilder
from ..core.config import NodeConfig
from .frames import AssembledFrame
from .messages import CAMERA_INFO, COMPLETED_RGBD, IMAGE, POINT_CLOUD2
from .reader import BagError, BagReader
from .writer import BagWriter

log = logging.getLogger(__name__)

DEPTH = "/depth_completed"
DEPTH_INFO = "/depth_completed/camera_info"
POINTS = "/depth_completed/points"
SOURCE_MASK = "/depth_completed/source_mask"
RGBD = "/depth_completed/rgbd"
#: every output of the node (names in the root namespace) and its type, in publishing order
NODE_OUTPUTS = {DEPTH: IMAGE, DEPTH_INFO: CAMERA_INFO, SOURCE_MASK: IMAGE, POINTS: POINT_CLOUD2,
                RGBD: COMPLETED_RGBD}
_ZERO = QosTime(sec=0, nsec=0)
#: the node's output QoS: reliable, volatile, keep last 5
NODE_OUTPUT_QOS = Qos(history=QosHistory.KEEP_LAST, depth=5, reliability=QosReliability.RELIABLE,
                      durability=QosDurability.VOLATILE, deadline=_ZERO, lifespan=_ZERO,
                      liveliness=QosLiveliness.AUTOMATIC, liveliness_lease_duration=_ZERO,
                      avoid_ros_namespace_conventions=False)


def output_topics(config: NodeConfig) -> dict[str, str]:
    """Topic -> message type of every output the node would publish with `config`."""
    enabled = {DEPTH: config.publish_depth, DEPTH_INFO: config.publish_depth,
               SOURCE_MASK: config.publish_source_mask, POINTS: config.publish_cloud,
               RGBD: config.publish_rgbd}
    return {topic: msgtype for topic, msgtype in NODE_OUTPUTS.items() if enabled[topic]}


def check_output_types(config: NodeConfig, typestore) -> None:
    """Raise BagError before any output exists when an enabled output's type is undefined."""
    for topic, msgtype in output_topics(config).items():
        if msgtype not in typestore.types:
            raise BagError(f"{msgtype} for {topic} is not defined (msg/CompletedRGBD.msg not found "
                           "in the checkout or under AMENT_PREFIX_PATH); give -p publish_rgbd:=false")


class OutputWriter:
    """Registers the output bag's topics and writes copies and per-frame outputs."""

    def __init__(self, writer: BagWriter, reader: BagReader, config: NodeConfig,
                 builder: OutputBuilder, model_id: str = "", mode: str = "completion") -> None:
        self.writer, self.config, self.builder = writer, config, builder
        self.model_id, self.mode = model_id, mode
        self.outputs = output_topics(config)
        #: input topic -> why it is not copied
        self.skipped: dict[str, str] = {}
        self._copied_topics: set[str] = set()
        self.copied = 0
        self.written = {topic: 0 for topic in self.outputs}
        self._register_copies(reader)
        for topic, msgtype in self.outputs.items():
            writer.add_topic(topic, msgtype, qos=[NODE_OUTPUT_QOS])

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

    def write_frame(self, item: AssembledFrame, result: CompletionResult) -> None:
        frame, info = item.frame, item.info
        outputs = self.builder.build(frame, result, color=item.color, info=info,
                                     model=self.model_id, mode=self.mode,
                                     paired_at_ns=item.paired_at_ns, with_cloud=info is not None,
                                     with_rgbd=info is not None)
        # The node's serialized forms (core.serialized), pixels handed through uncopied.
        t, stamp, frame_id = item.log_time_ns, outputs.stamp_ns, outputs.frame_id
        if DEPTH in self.outputs:
            self._write_raw(DEPTH, t, serialized.image_parts(stamp, frame_id, outputs.depth))
            if info is not None:
                self._write_raw(DEPTH_INFO, t, serialized.camera_info_cdr(stamp, frame_id, info))
        if SOURCE_MASK in self.outputs:
            self._write_raw(SOURCE_MASK, t, serialized.image_parts(stamp, frame_id, outputs.source_mask))
        if outputs.cloud is not None:
            self._write_raw(POINTS, t, serialized.cloud_parts(stamp, frame_id, outputs.cloud))
        if outputs.color is not None:
            self._write_raw(RGBD, t, serialized.completed_rgbd_parts(outputs))
        self.writer.flush()  # the builder reuses its output buffers for the next frame

    def _write_raw(self, topic: str, log_time_ns: int, parts: list) -> None:
        self.writer.write_raw(topic, log_time_ns, parts)
        self.written[topic] += 1
