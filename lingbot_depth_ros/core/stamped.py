"""Received images and camera infos, ROS-free: header plus the message's fields."""

from __future__ import annotations

from dataclasses import dataclass

from .codec import ImageFields
from .outputs import CameraInfoFields


def stamp_ns(header) -> int:
    """A std_msgs/Header's stamp in integer nanoseconds (rclpy or rosbags object)."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


@dataclass
class StampedImage:
    """A received sensor_msgs/Image (data is the received buffer, not a copy)."""

    stamp_ns: int
    frame_id: str
    fields: ImageFields
    #: wall and CPU time the receiving process spent reading and pairing it, milliseconds
    receive_ms: float = 0.0
    receive_cpu_ms: float = 0.0

    @classmethod
    def from_msg(cls, msg) -> StampedImage:
        """A received Image (rclpy or rosbags object); the pixels stay the message's buffer."""
        return cls(stamp_ns(msg.header), msg.header.frame_id, ImageFields.from_msg(msg))

    @property
    def encoding(self) -> str:
        return self.fields.encoding


@dataclass(frozen=True)
class StampedInfo:
    """A received sensor_msgs/CameraInfo."""

    stamp_ns: int
    frame_id: str
    fields: CameraInfoFields

    @classmethod
    def from_msg(cls, msg) -> StampedInfo:
        return cls(stamp_ns(msg.header), msg.header.frame_id, CameraInfoFields.from_msg(msg))
