"""The node's input subscriptions, with a reliability that follows the camera (`qos: auto`).

A RELIABLE reader does not match a BEST_EFFORT writer, and a BEST_EFFORT reader of a
RELIABLE writer loses whole images whenever one UDP fragment is lost (large images without
the large-data profile). So `auto` subscribes RELIABLE while no publisher is known (the camera
drivers publish reliable) or while every publisher is reliable, and BEST_EFFORT as soon as
any publisher is best effort (such a reader matches both). `refresh` (a timer) re-checks the
publishers and re-creates a subscription whose policy no longer fits; each choice is logged.
`sensor_data` and `reliable` fix the policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

RELIABLE, BEST_EFFORT = ReliabilityPolicy.RELIABLE, ReliabilityPolicy.BEST_EFFORT
#: seconds between checks of the publishers (qos: auto)
REFRESH_PERIOD_S = 0.5


@dataclass
class InputSpec:
    msg_type: type
    topic: str
    callback: Callable[[object], None]


def followed_policy(publisher_policies: list, current):
    """The reliability to subscribe with, given the publishers' policies (`current` while
    none is known)."""
    if any(p == BEST_EFFORT for p in publisher_policies):
        return BEST_EFFORT
    return RELIABLE if publisher_policies else current


class InputSubscriptions:
    def __init__(self, node, qos: str, depth: int, specs: list[InputSpec]) -> None:
        self._node, self._depth, self.mode = node, depth, qos
        self._specs = specs
        self._subs: dict[str, object] = {}
        #: topic -> the reliability its subscription has now
        self.policy: dict[str, ReliabilityPolicy] = {}
        start = BEST_EFFORT if qos == "sensor_data" else RELIABLE
        # Created in `specs` order: when messages of several topics are ready at once the
        # executor takes them in creation order (the node lists camera info first).
        for spec in specs:
            wanted = self._followed(spec, start) if qos == "auto" else start
            self._subscribe(spec, wanted, why="start")

    def _followed(self, spec: InputSpec, current):
        publishers = self._node.get_publishers_info_by_topic(self._node.resolve_topic_name(spec.topic))
        return followed_policy([info.qos_profile.reliability for info in publishers], current)

    def _subscribe(self, spec: InputSpec, policy, why: str) -> None:
        old = self._subs.pop(spec.topic, None)
        if old is not None:
            self._node.destroy_subscription(old)
        qos = QoSProfile(depth=self._depth, reliability=policy,
                         durability=DurabilityPolicy.VOLATILE)
        self._subs[spec.topic] = self._node.create_subscription(
            spec.msg_type, spec.topic, spec.callback, qos)
        self.policy[spec.topic] = policy
        self._node.get_logger().info(
            f"input {self._node.resolve_topic_name(spec.topic)}: {policy_name(policy)} "
            f"(qos {self.mode}, {why})")

    def refresh(self) -> None:
        """Re-subscribe where the publishers now call for the other policy (qos: auto)."""
        if self.mode != "auto":
            return
        for spec in self._specs:
            current = self.policy[spec.topic]
            wanted = self._followed(spec, current)
            if wanted != current:
                why = ("a best-effort publisher appeared" if wanted == BEST_EFFORT
                       else "every publisher is reliable")
                self._subscribe(spec, wanted, why=why)

    def names(self) -> dict[str, str]:
        """topic -> reliability name, for /diagnostics."""
        return {topic: policy_name(p) for topic, p in self.policy.items()}


def policy_name(policy) -> str:
    return "best_effort" if policy == BEST_EFFORT else "reliable"
