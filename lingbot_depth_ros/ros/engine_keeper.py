"""The node's engine: the pipeline's fallback policy (core/engine_fallback.py) with each
change published as one line on the latched `depth_completed/engine` topic."""

from __future__ import annotations

from typing import Callable

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from ..core.engine_fallback import EngineFallback
from .diagnostics import NodeStats
from ..core.config import NodeConfig


class EngineKeeper(EngineFallback):
    def __init__(self, node, config: NodeConfig, stats: NodeStats,
                 on_fatal: Callable[[str], None]) -> None:
        # Latched (transient local): a subscriber that comes later still reads the engine.
        latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.status_pub = node.create_publisher(String, "depth_completed/engine", latched)
        super().__init__(config, stats, node.get_logger(),
                         lambda text: self.status_pub.publish(String(data=text)), on_fatal)
