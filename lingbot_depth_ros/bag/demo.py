"""Write a demo rosbag2 from capture folders, as a RealSense D435i driver (realsense2_camera
4.x, ``align_depth.enable:=true``) would record it; log time = stamp + a fixed transport delay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.captures import find_captures, read_intrinsics, read_raw_depth, read_rgb, rgb_path
from ..core.captures import DEPTH_NAME, INTRINSICS_NAME
from ..core.codec import encode_image
from ..core.errors import LingbotDepthError, ShapeMismatchError
from ..core.outputs import CameraInfoFields
from .decode import encode_compressed_color, encode_compressed_depth
from .messages import MessageFactory
from .reader import build_typestore
from .writer import BagWriter

CAMERAS = ("realsense",)
TRANSPORTS = ("raw", "compressed")
#: first stamp of a demo bag (fixed, so demo bags are reproducible)
DEMO_START_NS = 1_700_000_000 * 1_000_000_000
#: log time - header stamp per stream: what a recorder on the same host typically sees
_DELAY_NS = {"info": 4_000_000, "color": 5_000_000, "depth": 7_000_000}


#: realsense2_camera's topics and colour optical frame (align_depth.enable:=true)
_TOPICS = {"color": "/camera/camera/color/image_raw", "color_info": "/camera/camera/color/camera_info",
           "depth": "/camera/camera/aligned_depth_to_color/image_raw",
           "depth_info": "/camera/camera/aligned_depth_to_color/camera_info"}
_FRAME_ID = "camera_color_optical_frame"


@dataclass
class Capture:
    rgb: np.ndarray  # uint8 RGB
    depth_raw: np.ndarray  # uint16 millimetres
    info: CameraInfoFields


def load_demo_captures(folder: str | Path) -> list[Capture]:
    """Every capture folder under `folder`, as raw sensor data (depth left unvalidated)."""
    captures = []
    for path in find_captures(folder):
        rgb = read_rgb(rgb_path(path))
        raw = read_raw_depth(path / DEPTH_NAME)
        if raw.shape != rgb.shape[:2]:
            raise ShapeMismatchError(f"{path}: colour is {rgb.shape[1]}x{rgb.shape[0]} but depth "
                                     f"is {raw.shape[1]}x{raw.shape[0]}")
        K = read_intrinsics(path / INTRINSICS_NAME)
        captures.append(Capture(rgb, raw, CameraInfoFields.from_K(K, *raw.shape)))
    return captures


#: builtin_interfaces/Time holds int32 seconds
_MAX_STAMP_NS = 2**31 * 10**9


def write_demo_bag(captures_dir: str | Path, out: str | Path, fps: float = 30.0, repeat: int = 1,
                   storage: str | None = None, camera: str = "realsense",
                   transport: str = "raw", depth_offset_ns: int = 0) -> dict:
    """Write the demo bag; returns {frames, topics, path, storage}. Transport "compressed"
    records jpeg colour and png compressedDepth; `depth_offset_ns` shifts depth stamps."""
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {', '.join(CAMERAS)}, got '{camera}'")
    if transport not in TRANSPORTS:
        raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got '{transport}'")
    if not fps > 0 or int(repeat) < 1:
        raise ValueError(f"need fps > 0 and repeat >= 1, got fps={fps}, repeat={repeat}")
    captures = load_demo_captures(captures_dir)
    typestore = build_typestore("kilted")
    factory = MessageFactory(typestore)
    color_topic = _TOPICS["color"] + ("/compressed" if transport == "compressed" else "")
    depth_topic = _TOPICS["depth"] + ("/compressedDepth" if transport == "compressed" else "")
    image_type = "sensor_msgs/msg/CompressedImage" if transport == "compressed" else "sensor_msgs/msg/Image"
    period_ns = int(round(1e9 / fps))
    last_stamp_ns = DEMO_START_NS + len(captures) * int(repeat) * period_ns
    if period_ns < 1 or last_stamp_ns >= _MAX_STAMP_NS:
        raise LingbotDepthError(
            f"{len(captures) * int(repeat)} frames at {fps:g} Hz do not fit ROS time stamps "
            f"(int32 seconds): lower --repeat or raise --fps")
    encoded = [_encode_capture(c, transport) for c in captures]
    _check_free_space(out, encoded, int(repeat))  # before anything is created
    n = 0
    with BagWriter(out, storage, typestore) as writer:
        for topic, msgtype in ((_TOPICS["color_info"], "sensor_msgs/msg/CameraInfo"),
                               (_TOPICS["depth_info"], "sensor_msgs/msg/CameraInfo"),
                               (color_topic, image_type), (depth_topic, image_type)):
            writer.add_topic(topic, msgtype)
        for _ in range(int(repeat)):
            for capture, (color_payload, depth_payload) in zip(captures, encoded):
                stamp = DEMO_START_NS + n * period_ns
                header = factory.header(stamp, _FRAME_ID)
                depth_header = factory.header(stamp + depth_offset_ns, _FRAME_ID)
                info = factory.camera_info(capture.info, header)
                writer.write(_TOPICS["color_info"], stamp + _DELAY_NS["info"], info)
                writer.write(_TOPICS["depth_info"], stamp + depth_offset_ns + _DELAY_NS["info"],
                             factory.camera_info(capture.info, depth_header))
                writer.write(color_topic, stamp + _DELAY_NS["color"],
                             _image_msg(factory, color_payload, header))
                writer.write(depth_topic, stamp + depth_offset_ns + _DELAY_NS["depth"],
                             _image_msg(factory, depth_payload, depth_header))
                n += 1
    return {"frames": n, "path": str(out), "storage": writer.storage,
            "topics": [_TOPICS["color_info"], _TOPICS["depth_info"], color_topic, depth_topic]}


def _check_free_space(out: str | Path, encoded: list, repeat: int) -> None:
    """Refuse up front a bag bigger than the free space (it would fill the disk, then fail)."""
    import shutil

    # an encoded image: ImageFields (raw) or (format, bytes) (compressed)
    per_loop = sum(len(p[1] if isinstance(p, tuple) else p.data) for pair in encoded for p in pair)
    need = per_loop * repeat
    folder = next(p for p in Path(out).absolute().parents if p.exists())
    free = shutil.disk_usage(folder).free
    if need > free:
        raise LingbotDepthError(f"{repeat} loops of these captures make a bag of about "
                                f"{need / 1e9:,.1f} GB, but {folder} has {free / 1e9:,.1f} GB "
                                f"free: lower --repeat")


def _encode_capture(capture: Capture, transport: str):
    if transport == "compressed":
        return (encode_compressed_color(capture.rgb, "jpeg"),
                encode_compressed_depth(capture.depth_raw))
    return encode_image(capture.rgb, "rgb8"), encode_image(capture.depth_raw, "16UC1")


def _image_msg(factory: MessageFactory, payload, header):
    if isinstance(payload, tuple):  # (format, data) of a CompressedImage
        return factory.compressed(payload[0], payload[1], header)
    return factory.image(payload, header)
