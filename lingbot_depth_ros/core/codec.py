"""numpy <-> ``sensor_msgs/Image`` field codec (our own cv_bridge: the ROS 2 one is not on
PyPI, docs/internals.md), ROS-free, on the plain message fields."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .errors import BufferSizeError, EncodingError

_U8, _U16, _F32 = np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)
#: encoding -> (numpy dtype of one channel, channels)
ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (_U8, 3), "bgr8": (_U8, 3), "rgba8": (_U8, 4), "bgra8": (_U8, 4), "mono8": (_U8, 1),
    "8UC1": (_U8, 1), "mono16": (_U16, 1), "16UC1": (_U16, 1), "32FC1": (_F32, 1),
}
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
DEPTH_ENCODINGS = ("16UC1", "mono16", "32FC1")


@dataclass
class ImageFields:
    """The data-carrying fields of a sensor_msgs/Image."""

    height: int
    width: int
    encoding: str
    is_bigendian: int
    step: int
    data: bytes

    @classmethod
    def from_msg(cls, msg) -> ImageFields:
        """The fields of a sensor_msgs/Image (rclpy or rosbags object; data not copied)."""
        return cls(height=int(msg.height), width=int(msg.width), encoding=str(msg.encoding),
                   is_bigendian=int(msg.is_bigendian), step=int(msg.step), data=msg.data)


def _lookup(encoding: str) -> tuple[np.dtype, int]:
    try:
        return ENCODINGS[encoding]
    except KeyError:
        raise EncodingError(
            f"unsupported image encoding '{encoding}' (supported: {', '.join(ENCODINGS)})"
        ) from None


def decode_image(height: int, width: int, encoding: str, is_bigendian: int, step: int,
                 data) -> np.ndarray:
    """View the message buffer as (H, W) or (H, W, C) in native byte order (a copy only to
    swap bytes); EncodingError or BufferSizeError with the exact mismatch."""
    dtype, channels = _lookup(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise BufferSizeError(f"image has no pixels ({width}x{height})")
    row_bytes = width * channels * dtype.itemsize
    if step < row_bytes:
        raise BufferSizeError(
            f"step {step} is shorter than one row of {width} {encoding} pixels ({row_bytes} bytes)")
    buf = memoryview(data).cast("B") if not isinstance(data, np.ndarray) else data.view(np.uint8).reshape(-1)
    needed = step * (height - 1) + row_bytes
    if len(buf) < needed:
        raise BufferSizeError(
            f"{encoding} {width}x{height} with step {step} needs {needed} bytes, got {len(buf)}")
    raw = np.frombuffer(buf, dtype=np.uint8, count=needed)
    wire_dtype = dtype.newbyteorder(">" if is_bigendian else "<") if dtype.itemsize > 1 else dtype
    # Strided view over the wire bytes: rows `step` apart, pixels packed within a row.
    arr = np.ndarray(shape=(height, width, channels), dtype=wire_dtype, buffer=raw,
                     strides=(step, channels * dtype.itemsize, dtype.itemsize))
    if not wire_dtype.isnative:
        arr = arr.astype(dtype)  # byte swap into native order: the only copy
    return arr[:, :, 0] if channels == 1 else arr


def decode_fields(image) -> np.ndarray:
    """decode_image of anything with Image's fields: ImageFields, an rclpy or rosbags Image."""
    return decode_image(image.height, image.width, image.encoding, image.is_bigendian,
                        image.step, image.data)


def encode_image(array: np.ndarray, encoding: str, step: int | None = None,
                 bigendian: bool = False) -> ImageFields:
    """Pack (H, W[, C]) into message fields; `step` > width*bpp pads rows with zeros."""
    dtype, channels = _lookup(encoding)
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] != channels:
        raise EncodingError(f"{encoding} needs {channels} channel(s), got array shape {array.shape}")
    if array.dtype != dtype:
        raise EncodingError(f"{encoding} needs dtype {dtype}, got {array.dtype}")
    height, width = array.shape[:2]
    row_bytes = width * channels * dtype.itemsize
    step = row_bytes if step is None else int(step)
    if step < row_bytes:
        raise BufferSizeError(f"step {step} is shorter than a row ({row_bytes} bytes)")
    out_dtype = dtype.newbyteorder(">" if bigendian else "<") if dtype.itemsize > 1 else dtype
    packed = np.ascontiguousarray(array, dtype=out_dtype)
    if step == row_bytes:
        data = packed.tobytes()
    else:
        padded = np.zeros((height, step), dtype=np.uint8)
        padded[:, :row_bytes] = packed.reshape(height, -1).view(np.uint8)
        data = padded.tobytes()
    return ImageFields(height=height, width=width, encoding=encoding,
                       is_bigendian=int(bool(bigendian) and dtype.itemsize > 1), step=step, data=data)


def from_rgb8(rgb: np.ndarray, encoding: str) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> the image a driver publishing `encoding` sends (the inverse of
    `to_rgb8` for rgb8, bgr8, rgba8 and bgra8; alpha 255)."""
    code = {"bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA, "bgra8": cv2.COLOR_RGB2BGRA}
    if encoding == "rgb8":
        return rgb
    if encoding not in code:
        raise EncodingError(f"cannot make '{encoding}' from RGB (rgb8, bgr8, rgba8 or bgra8)")
    return cv2.cvtColor(rgb, code[encoding])


def to_rgb8(image: np.ndarray, encoding: str) -> np.ndarray:
    """Any supported colour encoding -> uint8 (H, W, 3) RGB (a view for rgb8)."""
    if encoding not in COLOR_ENCODINGS:
        raise EncodingError(
            f"'{encoding}' is not a colour encoding (expected one of {', '.join(COLOR_ENCODINGS)})")
    if encoding == "rgb8":
        return image
    # cv2 converts in one pass, many times faster than numpy's reversed-channel copy, which
    # would take much of a live node's per-frame budget (docs/benchmarks.md).
    code = {"bgr8": cv2.COLOR_BGR2RGB, "rgba8": cv2.COLOR_RGBA2RGB, "bgra8": cv2.COLOR_BGRA2RGB,
            "mono8": cv2.COLOR_GRAY2RGB}[encoding]
    return cv2.cvtColor(image, code)
