"""rclpy QoS profiles of the output table's plain QoS (core/output_topics.py)."""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..core.output_topics import TopicQos


def qos_profile(qos: TopicQos) -> QoSProfile:
    """A fresh profile on every call: rclpy writes a topic's qos_overrides into the profile it
    is given, which must not leak into the next publisher."""
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=qos.depth,
        reliability=ReliabilityPolicy.RELIABLE if qos.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.latched else DurabilityPolicy.VOLATILE)
