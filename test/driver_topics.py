"""What the supported camera drivers publish, and a player that publishes the same way.

Read from the drivers' sources (docs/drivers.md has the tables and where each fact comes
from): topic names relative to the driver's namespace, encodings, depth units, frame ids and
the QoS of their publishers. `DriverPlayer` publishes RGB-D frames with one driver's layout
and default QoS, without the large-data DDS profile unless the process has it, so the tests
and benchmarks/bench_presets.py feed the node what that driver would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rclpy.qos import (QoSProfile, ReliabilityPolicy, qos_profile_system_default)
from sensor_msgs.msg import CameraInfo, Image

from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.outputs import CameraInfoFields
from lingbot_depth_ros.ros import messages

#: rclcpp's default QoS (rmw_qos_profile_default): reliable, volatile, keep last 10
RCLCPP_DEFAULT = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


@dataclass(frozen=True)
class DriverLayout:
    """One driver's colour, registered depth and colour camera info, as it publishes them."""

    driver: str
    preset: str  # config/<preset>.yaml
    namespace: str  # the driver's default namespace (the presets' topics are relative to it)
    color_topic: str
    depth_topic: str
    info_topic: str
    color_encoding: str
    depth_encoding: str  # 16UC1 millimetres (0 = none) or 32FC1 metres (NaN = none)
    frame_id: str  # of colour and registered depth alike
    image_qos: QoSProfile
    info_qos: QoSProfile


REALSENSE = dict(
    driver="realsense2_camera 4.5x", namespace="camera",
    color_topic="camera/color/image_raw", depth_topic="camera/aligned_depth_to_color/image_raw",
    info_topic="camera/color/camera_info", color_encoding="rgb8", depth_encoding="16UC1",
    frame_id="camera_color_optical_frame",
    image_qos=qos_profile_system_default,  # its <stream>_qos default SYSTEM_DEFAULT
    info_qos=RCLCPP_DEFAULT)               # its <stream>_info_qos default DEFAULT
DRIVERS: dict[str, DriverLayout] = {
    "realsense_d435i": DriverLayout(preset="realsense_d435i", **REALSENSE),
    "realsense_d455": DriverLayout(preset="realsense_d455", **REALSENSE),
    "orbbec_gemini335": DriverLayout(
        driver="orbbec_camera v2", preset="orbbec_gemini335", namespace="camera",
        color_topic="color/image_raw", depth_topic="depth/image_raw",
        info_topic="color/camera_info", color_encoding="rgb8", depth_encoding="16UC1",
        frame_id="camera_color_optical_frame",  # depth_registration: the colour's frame
        image_qos=RCLCPP_DEFAULT, info_qos=RCLCPP_DEFAULT),  # its *_qos default "default"
    "zed2i": DriverLayout(
        driver="zed_wrapper 5.x", preset="zed2i", namespace="zed",
        color_topic="zed_node/rgb/color/rect/image",
        depth_topic="zed_node/depth/depth_registered",
        info_topic="zed_node/rgb/color/rect/camera_info", color_encoding="bgra8",
        depth_encoding="32FC1", frame_id="zed_left_camera_frame_optical",
        image_qos=RCLCPP_DEFAULT, info_qos=RCLCPP_DEFAULT),  # rclcpp::QoS(10)
}


class DriverPlayer:
    """Publishes colour, depth and camera info of one capture as `layout`'s driver does,
    in `namespace` (default: the driver's), on an rclpy `node`."""

    def __init__(self, node, layout: DriverLayout, rgb: np.ndarray, depth_mm: np.ndarray,
                 K: np.ndarray, namespace: str | None = None) -> None:
        self.layout = layout
        prefix = "/" + (layout.namespace if namespace is None else namespace).strip("/")
        prefix = prefix.rstrip("/")
        self.topics = {k: f"{prefix}/{getattr(layout, k + '_topic')}" for k in ("color", "depth", "info")}
        self.color_pub = node.create_publisher(Image, self.topics["color"], layout.image_qos)
        self.depth_pub = node.create_publisher(Image, self.topics["depth"], layout.image_qos)
        self.info_pub = node.create_publisher(CameraInfo, self.topics["info"], layout.info_qos)
        header = messages.make_header(0, layout.frame_id)
        self.color = messages.image_msg(encode_image(_color(rgb, layout.color_encoding),
                                                     layout.color_encoding), header)
        self.depth = messages.image_msg(encode_image(_depth(depth_mm, layout.depth_encoding),
                                                     layout.depth_encoding), header)
        height, width = depth_mm.shape
        self.info = messages.camera_info_msg(CameraInfoFields.from_K(K, height, width), header)

    def publishers(self) -> list:
        return [self.color_pub, self.depth_pub, self.info_pub]

    def destroy(self, node) -> None:
        for publisher in self.publishers():
            node.destroy_publisher(publisher)

    def publish(self, stamp_ns: int) -> None:
        """One frame: camera info, colour and depth with one stamp (as the drivers do)."""
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        for msg, publisher in ((self.info, self.info_pub), (self.color, self.color_pub),
                               (self.depth, self.depth_pub)):
            msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nanosec
            publisher.publish(msg)


def _color(rgb: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "rgb8":
        return rgb
    if encoding == "bgra8":
        alpha = np.full(rgb.shape[:2] + (1,), 255, np.uint8)
        return np.ascontiguousarray(np.concatenate([rgb[:, :, ::-1], alpha], axis=2))
    raise ValueError(f"no driver layout publishes colour as {encoding}")


def _depth(depth_mm: np.ndarray, encoding: str) -> np.ndarray:
    if encoding == "16UC1":
        return depth_mm.astype(np.uint16)
    if encoding == "32FC1":  # metres, NaN where the camera has no reading
        metres = depth_mm.astype(np.float32) / 1000.0
        metres[depth_mm == 0] = np.nan
        return metres
    raise ValueError(f"no driver layout publishes depth as {encoding}")
