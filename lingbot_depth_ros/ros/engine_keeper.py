"""The node's engine: the pipeline's fallback policy (engines/fallback.py) with each
change published as one line on the latched `depth_completed/engine` topic of every camera
(a rig shares one engine)."""

from __future__ import annotations

from typing import Callable, Sequence

from std_msgs.msg import String

from ..core.config import NodeConfig
from ..core.output_topics import ENGINE_TOPIC
from ..engines.base import Engine
from ..engines.fallback import EngineFallback
from .diagnostics import NodeStats
from .output_qos import qos_profile


class SharedStatus:
    """The engine's status fields (engine, model, fallback_reason, failure) written into
    every camera's NodeStats at once."""

    def __init__(self, targets: Sequence[NodeStats]) -> None:
        object.__setattr__(self, "_targets", list(targets))

    def __setattr__(self, name: str, value) -> None:
        for target in self._targets:
            setattr(target, name, value)

    def __getattr__(self, name: str):
        return getattr(self._targets[0], name)


class EngineKeeper(EngineFallback):
    """`topics`: the engine topic's name in each camera's namespace (default: the node's)."""

    def __init__(self, node, config: NodeConfig, stats: NodeStats | SharedStatus,
                 on_fatal: Callable[[str], None], engine: Engine | None = None,
                 topics: Sequence[str] = (ENGINE_TOPIC.name,)) -> None:
        # Latched (transient local): a subscriber that comes later still reads the engine.
        self.status_pubs = [node.create_publisher(String, topic, qos_profile(ENGINE_TOPIC.qos(config)))
                            for topic in topics]
        super().__init__(config, stats, node.get_logger(), self._publish_status, on_fatal,
                         engine=engine)

    @property
    def status_pub(self):
        return self.status_pubs[0]

    def _publish_status(self, text: str) -> None:
        for publisher in self.status_pubs:
            publisher.publish(String(data=text))
