"""Received images and camera infos, ROS-free: header plus the message's fields."""

from __future__ import annotations

from dataclasses import dataclass

from .codec import ImageFields
from .outputs import CameraInfoFields


@dataclass
class StampedImage:
    """A received sensor_msgs/Image (data is the received buffer, not a copy)."""

    stamp_ns: int
    frame_id: str
    fields: ImageFields
    #: wall and CPU time the receiving process spent reading and pairing it, milliseconds
    receive_ms: float = 0.0
    receive_cpu_ms: float = 0.0

    @property
    def encoding(self) -> str:
        return self.fields.encoding


@dataclass(frozen=True)
class StampedInfo:
    """A received sensor_msgs/CameraInfo."""

    stamp_ns: int
    frame_id: str
    fields: CameraInfoFields
