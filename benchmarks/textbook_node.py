"""A depth completion node written the textbook way: the baseline of bench_textbook_node.py.

message_filters' ApproximateTimeSynchronizer pairs colour, depth and camera info (a plain
pairing by stamp where message_filters is not importable); the callback decodes with numpy
as cv_bridge does, completes, and publishes rclpy messages: depth (32FC1), its camera info
and an XYZRGB cloud from sensor_msgs_py.point_cloud2.create_cloud (where not importable, the
same structured array's bytes). Only what the benchmark compares is here.
"""

from __future__ import annotations

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField

from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.engines import create_engine

CLOUD_FIELDS = [PointField(name="x", offset=0, datatype=PointField.FLOAT32, count=1),
                PointField(name="y", offset=4, datatype=PointField.FLOAT32, count=1),
                PointField(name="z", offset=8, datatype=PointField.FLOAT32, count=1),
                PointField(name="rgb", offset=12, datatype=PointField.FLOAT32, count=1)]
CLOUD_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4,
                        "offsets": [0, 4, 8, 12], "itemsize": 16})


class TextbookNode(Node):
    def __init__(self, engine_name: str, wrap_engine=lambda e: e) -> None:
        super().__init__("textbook_depth_node")
        self.engine = wrap_engine(create_engine(engine_name))
        self.depth_pub = self.create_publisher(Image, "depth_completed", 5)
        self.info_pub = self.create_publisher(CameraInfo, "depth_completed/camera_info", 5)
        self.cloud_pub = self.create_publisher(PointCloud2, "depth_completed/points", 5)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        topics = ((Image, "color/image_raw"), (Image, "depth/image_raw"), (CameraInfo, "color/camera_info"))
        try:
            import message_filters
        except ImportError:
            self.pairing = "plain pairing by stamp"
            self._pending: dict[int, dict] = {}
            for i, (msg_type, topic) in enumerate(topics):
                self.create_subscription(msg_type, topic, lambda m, i=i: self._pair(i, m), qos)
        else:
            self.pairing = "message_filters.ApproximateTimeSynchronizer"
            subs = [message_filters.Subscriber(self, t, name, qos_profile=qos) for t, name in topics]
            self.sync = message_filters.ApproximateTimeSynchronizer(subs, 10, 0.01)
            self.sync.registerCallback(self.on_frame)
        self.get_logger().info(f"textbook node: {self.pairing}, cloud by {cloud_builder_name()}")

    def _pair(self, index: int, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        entry = self._pending.setdefault(stamp, {})
        entry[index] = msg
        if len(entry) == 3:
            del self._pending[stamp]
            for old in [s for s in self._pending if s < stamp]:
                del self._pending[old]
            self.on_frame(entry[0], entry[1], entry[2])

    def on_frame(self, color: Image, depth: Image, info: CameraInfo) -> None:
        rgb = image_to_numpy(color, np.uint8, 3)
        raw = image_to_numpy(depth, np.uint16, 1)
        metres = raw.astype(np.float32) * 0.001
        metres[raw == 0] = np.nan
        K = np.array(info.k, dtype=np.float64).reshape(3, 3)
        stamp = color.header.stamp.sec * 1_000_000_000 + color.header.stamp.nanosec
        result = self.engine.complete(RGBDFrame(rgb=rgb, depth=metres, K=K, stamp_ns=stamp,
                                                frame_id=color.header.frame_id))
        completed = np.ascontiguousarray(result.depth, dtype=np.float32)
        out = Image(header=color.header, height=completed.shape[0], width=completed.shape[1],
                    encoding="32FC1", is_bigendian=0, step=completed.shape[1] * 4)
        out.data = completed.tobytes()
        self.depth_pub.publish(out)
        out_info = CameraInfo(header=color.header, height=info.height, width=info.width,
                              distortion_model=info.distortion_model, d=info.d, k=info.k,
                              r=info.r, p=info.p)
        self.info_pub.publish(out_info)
        self.cloud_pub.publish(make_cloud(color.header, completed, rgb, K))


def image_to_numpy(msg: Image, dtype, channels: int) -> np.ndarray:
    """As cv_bridge's imgmsg_to_cv2: the buffer viewed with the row step, then the pixels."""
    itemsize = np.dtype(dtype).itemsize
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    pixels = rows[:, :msg.width * channels * itemsize].copy().view(dtype)
    return pixels.reshape(msg.height, msg.width, channels) if channels > 1 else pixels


def make_cloud(header, depth: np.ndarray, rgb: np.ndarray, K: np.ndarray) -> PointCloud2:
    h, w = depth.shape
    u, v = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
    points = np.empty((h, w), dtype=CLOUD_DTYPE)
    points["x"] = (u - K[0, 2]) * depth / K[0, 0]
    points["y"] = (v - K[1, 2]) * depth / K[1, 1]
    points["z"] = depth
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    points["rgb"] = packed.view(np.float32)
    try:
        from sensor_msgs_py.point_cloud2 import create_cloud
    except ImportError:
        cloud = PointCloud2(header=header, height=h, width=w, fields=CLOUD_FIELDS, is_bigendian=False,
                            point_step=16, row_step=16 * w, is_dense=False)
        cloud.data = points.tobytes()
        return cloud
    return create_cloud(header, CLOUD_FIELDS, points.reshape(-1))


def cloud_builder_name() -> str:
    try:
        import sensor_msgs_py.point_cloud2  # noqa: F401
    except ImportError:
        return "a structured array's bytes"
    return "sensor_msgs_py.point_cloud2.create_cloud"
