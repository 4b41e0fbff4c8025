"""Received images and camera infos, ROS-free: header plus the message's fields."""

from __future__ import annotations

from collections import deque
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


class StampGaps:
    """Images of one stream that never arrived, estimated from gaps in its stamps: a camera
    stamps frames at a steady period, so an interval of k periods means k - 1 images lost in
    transport or skipped by the driver. An interval over 30 periods is a pause, not a loss."""

    def __init__(self, history: int = 31) -> None:
        self.missing = 0
        self._last: int | None = None
        self._intervals: deque = deque(maxlen=history)

    def add(self, stamp_ns: int) -> None:
        last = self._last
        if last is not None and stamp_ns <= last:
            return  # a repeated or out-of-order stamp: no interval
        self._last = stamp_ns
        if last is None:
            return
        interval = stamp_ns - last
        if len(self._intervals) >= 5:  # the median period once a few intervals are known
            period = sorted(self._intervals)[len(self._intervals) // 2]
            if interval <= 30 * period:
                self.missing += max(0, round(interval / period) - 1)
        self._intervals.append(interval)
