"""The node's parameters declared with rclpy: core/config.py's table becomes read-only
ParameterDescriptors (each is read once at start-up, so `ros2 param set` cannot silently
change a value the node would ignore); NodeConfig and PARAMS are re-exported."""

from __future__ import annotations

from ..core.config import (ENGINE_CHOICES, FALLBACK_CHOICES, NODE_NAME, PARAMS, PARAMS_BY_NAME,  # noqa: F401
                           QOS_CHOICES, SOURCE_CHOICES, NodeConfig, Param, check_value,
                           load_params_file)
from ..core.rig import CameraSpec, rig_cameras


def _descriptor(param: Param, name: str | None = None):
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

    descriptor = ParameterDescriptor(name=name or param.name, description=param.description,
                                     read_only=True)
    if param.choices:
        descriptor.additional_constraints = "one of: " + ", ".join(param.choices)
    if param.range is not None and isinstance(param.default, float):
        descriptor.floating_point_range = [FloatingPointRange(
            from_value=float(param.range[0]), to_value=float(param.range[1]), step=0.0)]
    elif param.range is not None:
        descriptor.integer_range = [IntegerRange(
            from_value=int(param.range[0]), to_value=int(param.range[1]), step=1)]
    return descriptor


def _declared_default(param: Param):
    """What rclpy declares: a string array by its type (an empty list would read as bytes)."""
    from rclpy.parameter import Parameter

    return Parameter.Type.STRING_ARRAY if isinstance(param.default, list) else param.default


def declare_parameters(node) -> NodeConfig:
    """Declare every parameter on an rclpy node and return the values it started with."""
    declared = [(p.name, _declared_default(p), _descriptor(p)) for p in PARAMS]
    # rclpy checks override types and ranges here and raises with the parameter's name.
    values = node.declare_parameters("", declared)
    config = NodeConfig.from_values({p.name: p.value if p.value is not None else [] for p in values})
    check_topic_names(node, config)
    return config


def declare_rig(node, config: NodeConfig) -> list[CameraSpec]:
    """The rig's cameras (core/rig.py), each camera's `<name>.preset` and per-camera input
    parameters declared on the node (defaults: the node's values over its preset), so
    `ros2 param get` shows what each camera uses. Raises ValueError naming the camera."""
    def camera_values(name: str, defaults: dict) -> dict:
        declared = []
        for key, default in defaults.items():
            param = PARAMS_BY_NAME.get(key) or Param(key, "", PRESET_DESCRIPTION)
            declared.append((f"{name}.{key}", default, _descriptor(param, f"{name}.{key}")))
        values = node.declare_parameters("", declared)
        return {key: p.value for key, p in zip(defaults, values)}

    cameras = rig_cameras(config, camera_values)
    for camera in cameras:
        check_topic_names(node, camera.config, camera)
    return cameras


PRESET_DESCRIPTION = ("This camera's preset: a camera file of config/ (realsense_d435i, "
                      "zed2i, ...) or a path to a parameter file; empty: none.")


#: parameters that name a topic the node subscribes to
TOPIC_PARAMS = ("color_topic", "depth_topic", "camera_info_topic")


def check_topic_names(node, config: NodeConfig, camera: CameraSpec | None = None) -> None:
    """Raise ValueError naming the parameter when a topic name is not a valid ROS name
    (before the engine loads, rather than at the first subscription)."""
    from rclpy.exceptions import InvalidTopicNameException
    from rclpy.validate_full_topic_name import validate_full_topic_name

    from .node_process import plain_message

    for name in TOPIC_PARAMS:
        topic = getattr(config, name)
        if camera is not None and camera.name:
            topic, name = camera.topic(topic), f"{camera.name}.{name}"
        try:
            validate_full_topic_name(node.resolve_topic_name(topic))
        except (InvalidTopicNameException, RuntimeError, ValueError) as exc:
            reason = plain_message(exc).removeprefix("failed to resolve name: ")
            raise ValueError(f"parameter '{name}' = '{topic}' is not a valid topic name ({reason})") from None
