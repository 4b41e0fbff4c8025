"""The node's engine: the pipeline's fallback policy (engines/fallback.py) with each
change published as one line on the latched `depth_completed/engine` topic."""

from __future__ import annotations

from typing import Callable

from std_msgs.msg import String

from ..core.config import NodeConfig
from ..core.output_topics import ENGINE_TOPIC
from ..engines.base import Engine
from ..engines.fallback import EngineFallback
from .diagnostics import NodeStats
from .output_qos import qos_profile


class EngineKeeper(EngineFallback):
    def __init__(self, node, config: NodeConfig, stats: NodeStats,
                 on_fatal: Callable[[str], None], engine: Engine | None = None) -> None:
        # Latched (transient local): a subscriber that comes later still reads the engine.
        self.status_pub = node.create_publisher(String, ENGINE_TOPIC.name,
                                                qos_profile(ENGINE_TOPIC.qos(config)))
        super().__init__(config, stats, node.get_logger(),
                         lambda text: self.status_pub.publish(String(data=text)), on_fatal,
                         engine=engine)
