"""rosbags message objects <-> the package's plain data (core.codec / core.outputs), the bag
counterpart of the node's rclpy conversions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from rosbags.typesys.store import Typestore

from ..core.codec import ImageFields
from ..core.outputs import CameraInfoFields

IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POINT_CLOUD2 = "sensor_msgs/msg/PointCloud2"
COMPLETED_RGBD = "lingbot_depth_ros/msg/CompletedRGBD"
#: types whose uint8[] `data` is followed only by this many bytes of 1-byte-aligned fields
_DATA_TAIL = {IMAGE: 0, POINT_CLOUD2: 1}  # Image: nothing; PointCloud2: bool is_dense
_SPLICE_MIN = 1 << 16
_EMPTY = np.zeros(0, dtype=np.uint8)


class MessageFactory:
    """Builds rosbags messages of one typestore."""

    def __init__(self, typestore: Typestore) -> None:
        t = typestore.types
        self._time = t["builtin_interfaces/msg/Time"]
        self._header = t["std_msgs/msg/Header"]
        self._image = t[IMAGE]
        self._info = t[CAMERA_INFO]
        self._roi = t["sensor_msgs/msg/RegionOfInterest"]
        self._compressed = t["sensor_msgs/msg/CompressedImage"]

    def header(self, stamp_ns: int, frame_id: str):
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        return self._header(stamp=self._time(sec=sec, nanosec=nanosec), frame_id=frame_id)

    def image(self, fields: ImageFields, header):
        return self._image(header=header, height=fields.height, width=fields.width,
                           encoding=fields.encoding, is_bigendian=fields.is_bigendian,
                           step=fields.step, data=_u8(fields.data))

    def compressed(self, fmt: str, data: bytes, header):
        return self._compressed(header=header, format=fmt, data=_u8(data))

    def camera_info(self, info: CameraInfoFields, header):
        x, y, h, w, rectify = info.roi
        return self._info(
            header=header, height=info.height, width=info.width,
            distortion_model=info.distortion_model, d=np.asarray(info.d, dtype=np.float64),
            k=np.asarray(info.k, dtype=np.float64), r=np.asarray(info.r, dtype=np.float64),
            p=np.asarray(info.p, dtype=np.float64), binning_x=info.binning_x,
            binning_y=info.binning_y,
            roi=self._roi(x_offset=x, y_offset=y, height=h, width=w, do_rectify=bool(rectify)))


def serialize_parts(typestore: Typestore, msg, msgtype: str) -> list:
    """The CDR bytes of `msg` as buffers to write in order (joined: serialize_cdr's bytes); a
    large Image/PointCloud2 body is spliced in uncopied after serializing with empty data."""
    tail = _DATA_TAIL.get(msgtype)
    data = getattr(msg, "data", None)
    if tail is None or data is None or len(data) < _SPLICE_MIN:
        return [typestore.serialize_cdr(msg, msgtype)]
    shell = typestore.serialize_cdr(replace(msg, data=_EMPTY), msgtype)
    length_at = len(shell) - tail - 4  # the uint32 element count of the empty data
    head = bytes(shell[:length_at]) + len(data).to_bytes(4, "little")
    return [head, memoryview(data).cast("B"), bytes(shell[len(shell) - tail:])]


def _u8(data) -> np.ndarray:
    """Message byte buffers are uint8 arrays in rosbags (zero-copy over bytes/memoryview)."""
    if isinstance(data, np.ndarray):
        return data.view(np.uint8).reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)
