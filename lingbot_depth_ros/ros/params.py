"""The node's parameters declared with rclpy: core/config.py's table becomes read-only
ParameterDescriptors (each is read once at start-up, so `ros2 param set` cannot silently
change a value the node would ignore); NodeConfig and PARAMS are re-exported."""

from __future__ import annotations

from ..core.config import (ENGINE_CHOICES, FALLBACK_CHOICES, NODE_NAME, PARAMS, PARAMS_BY_NAME,  # noqa: F401
                           QOS_CHOICES, SOURCE_CHOICES, NodeConfig, Param, check_value,
                           load_params_file)


def declare_parameters(node) -> NodeConfig:
    """Declare every parameter on an rclpy node and return the values it started with."""
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    declared = []
    for param in PARAMS:
        descriptor = ParameterDescriptor(description=param.description, read_only=True)
        if param.choices:
            descriptor.additional_constraints = "one of: " + ", ".join(param.choices)
        if param.range is not None and isinstance(param.default, float):
            descriptor.floating_point_range = [FloatingPointRange(
                from_value=float(param.range[0]), to_value=float(param.range[1]), step=0.0)]
        elif param.range is not None:
            descriptor.integer_range = [IntegerRange(
                from_value=int(param.range[0]), to_value=int(param.range[1]), step=1)]
        declared.append((param.name, param.default, descriptor))
    # rclpy checks override types and ranges here and raises with the parameter's name.
    values = node.declare_parameters("", declared)
    config = NodeConfig.from_values({p.name: p.value for p in values})
    check_topic_names(node, config)
    return config


#: parameters that name a topic the node subscribes to
TOPIC_PARAMS = ("color_topic", "depth_topic", "camera_info_topic")


def check_topic_names(node, config: NodeConfig) -> None:
    """Raise ValueError naming the parameter when a topic name is not a valid ROS name
    (before the engine loads, rather than at the first subscription)."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.validate_full_topic_name import validate_full_topic_name

    from .node_process import plain_message

    for name in TOPIC_PARAMS:
        topic = getattr(config, name)
        try:
            validate_full_topic_name(node.resolve_topic_name(topic))
        except (InvalidTopicNameException, RuntimeError, ValueError) as exc:
            reason = plain_message(exc).removeprefix("failed to resolve name: ")
            raise ValueError(f"parameter '{name}' = '{topic}' is not a valid topic name ({reason})") from None
