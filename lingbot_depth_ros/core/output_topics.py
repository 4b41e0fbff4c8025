"""The node's output topics in one table, ROS-free: name, message type, when it is published,
and its QoS. The node creates its publishers from it (ros/node.py), `bag process` registers
its output topics with it (bag/output_topics.py) and the replay records it (ros/replay.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
COMPLETED_RGBD = "lingbot_depth_ros/msg/CompletedRGBD"
STRING = "std_msgs/msg/String"


@dataclass(frozen=True)
class TopicQos:
    """A publisher's QoS in plain terms (KEEP_LAST history of `depth`)."""

    depth: int
    reliable: bool = True
    #: transient local: a late subscriber still gets the last `depth` messages (latched)
    latched: bool = False


@dataclass(frozen=True)
class OutputTopic:
    #: relative name (a node's namespace or a remap moves it)
    name: str
    msgtype: str
    #: config -> whether the node publishes it
    enabled: Callable[[object], bool]
    #: config -> its QoS
    qos: Callable[[object], TopicQos]
    #: written per frame (False: the engine status, once per change)
    per_frame: bool = True


def _frame_qos(config) -> TopicQos:
    return TopicQos(depth=config.output_queue_depth)


DEPTH = OutputTopic("depth_completed", IMAGE, lambda c: c.publish_depth, _frame_qos)
DEPTH_INFO = OutputTopic("depth_completed/camera_info", CAMERA_INFO, lambda c: c.publish_depth,
                         _frame_qos)
SOURCE_MASK = OutputTopic("depth_completed/source_mask", IMAGE, lambda c: c.publish_source_mask,
                          _frame_qos)
POINTS = OutputTopic("depth_completed/points", POINT_CLOUD2, lambda c: c.publish_cloud, _frame_qos)
RGBD = OutputTopic("depth_completed/rgbd", COMPLETED_RGBD, lambda c: c.publish_rgbd, _frame_qos)
ENGINE_TOPIC = OutputTopic("depth_completed/engine", STRING, lambda c: True,
                           lambda c: TopicQos(depth=1, latched=True), per_frame=False)

#: every output, in publishing order
OUTPUT_TOPICS: tuple[OutputTopic, ...] = (DEPTH, DEPTH_INFO, SOURCE_MASK, POINTS, RGBD, ENGINE_TOPIC)
#: the per-frame outputs
FRAME_OUTPUTS: tuple[OutputTopic, ...] = tuple(t for t in OUTPUT_TOPICS if t.per_frame)


def enabled_outputs(config, per_frame_only: bool = True) -> tuple[OutputTopic, ...]:
    """The outputs the node publishes with `config`."""
    topics = FRAME_OUTPUTS if per_frame_only else OUTPUT_TOPICS
    return tuple(t for t in topics if t.enabled(config))
