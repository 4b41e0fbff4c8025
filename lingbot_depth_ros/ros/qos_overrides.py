"""The node's `qos_overrides.*` parameters (rclpy's QoS overriding, as rclcpp nodes offer it).

Every output publisher takes `qos_overrides./<topic>.publisher.{reliability,history,depth}`
from a parameter file (read-only, at start-up), e.g. a best-effort `depth_completed/points`
for a Wi-Fi link. The inputs do not: the node's own `qos` (which may follow the camera at run
time) and `queue_depth` parameters set them. A given override that no publisher took (a
misspelled topic, an input, an output turned off) is warned about, as unknown parameters are.
"""

from __future__ import annotations

from rclpy.qos_overriding_options import QoSOverridingOptions

from ..core.config import QOS_OVERRIDES_PREFIX

#: the policies an output's parameters may override
OUTPUT_OVERRIDES = QoSOverridingOptions.with_default_policies()


def warn_unapplied(node) -> list[str]:
    """Names of given qos_overrides.* parameters no publisher declared; each logged once."""
    given = getattr(node, "_parameter_overrides", {})
    unapplied = sorted(n for n in given if n.startswith(QOS_OVERRIDES_PREFIX)
                       and not node.has_parameter(n))
    for name in unapplied:
        node.get_logger().warning(
            f"parameter '{name}' matches no output publisher of this node (inputs follow the "
            f"qos and queue_depth parameters); ignored")
    return unapplied
