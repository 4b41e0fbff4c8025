"""Write the demo bag of a rig: the shipped captures from every camera of a rig file, each
under its camera's namespace with the topics of its preset and the encodings, depth units
and frame ids its driver publishes, so `lingbot-depth demo --params <rig>` plays a rig."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.codec import encode_image, from_rgb8
from ..core.depth import raw_to_32fc1
from ..core.errors import LingbotDepthError
from ..core.rig import CameraSpec
from .demo import _DELAY_NS, _MAX_STAMP_NS, DEMO_START_NS, load_demo_captures
from .messages import MessageFactory
from .reader import build_typestore
from .writer import BagWriter

#: apart between two cameras' frames of one period: free-running cameras are not triggered
#: together
CAMERA_OFFSET_NS = 3_000_000


@dataclass(frozen=True)
class DriverImages:
    """What a preset's driver publishes: colour and registered depth encodings (16UC1
    millimetres, 0 = none, or 32FC1 metres, NaN = none) and its colour frame's name after
    the camera's name (docs/drivers.md)."""

    color_encoding: str
    depth_encoding: str
    frame_suffix: str


_RGB_MM = DriverImages("rgb8", "16UC1", "_color_optical_frame")
#: by the presets of config/ (realsense2_camera, orbbec_camera, zed_wrapper)
DRIVER_IMAGES = {"realsense_d435i": _RGB_MM, "realsense_d455": _RGB_MM,
                 "orbbec_gemini335": _RGB_MM,
                 "zed2i": DriverImages("bgra8", "32FC1", "_left_camera_frame_optical")}


def driver_images(preset: str) -> DriverImages:
    """The images of `preset`'s driver; a preset of one's own (a file) is taken as the
    RealSense and Orbbec drivers publish (rgb8, 16UC1)."""
    return DRIVER_IMAGES.get(preset, _RGB_MM)


def write_rig_demo_bag(captures_dir: str | Path, out: str | Path, cameras: list[CameraSpec],
                       fps: float = 30.0, repeat: int = 1, storage: str | None = None) -> dict:
    """Every camera of `cameras` at `fps`, camera k CAMERA_OFFSET_NS x k after the first;
    returns {frames (per camera), cameras, topics, path, storage}."""
    if not fps > 0 or int(repeat) < 1:
        raise ValueError(f"need fps > 0 and repeat >= 1, got fps={fps}, repeat={repeat}")
    captures = load_demo_captures(captures_dir)
    frames = len(captures) * int(repeat)
    period_ns = int(round(1e9 / fps))
    if period_ns < 1 or DEMO_START_NS + (frames + 1) * period_ns >= _MAX_STAMP_NS:
        raise LingbotDepthError(f"{frames} frames at {fps:g} Hz do not fit ROS time stamps "
                                "(int32 seconds): lower --repeat or raise --fps")
    typestore = build_typestore("kilted")
    factory = MessageFactory(typestore)
    streams = [_CameraStream(spec, captures, factory) for spec in cameras]
    with BagWriter(out, storage, typestore) as writer:
        for stream in streams:
            stream.add_topics(writer)
        for n in range(frames):
            for k, stream in enumerate(streams):
                stream.write(writer, n % len(captures),
                             DEMO_START_NS + n * period_ns + k * CAMERA_OFFSET_NS)
    return {"frames": frames, "cameras": [s.spec.name for s in streams], "path": str(out),
            "storage": writer.storage, "topics": [t for s in streams for t in s.topics]}


class _CameraStream:
    """One camera's colour, depth and colour camera info, encoded once per capture."""

    def __init__(self, spec: CameraSpec, captures, factory: MessageFactory) -> None:
        self.spec, self.factory, self.captures = spec, factory, captures
        images = driver_images(spec.preset)
        config = spec.config
        self.color_topic, self.depth_topic, self.info_topic = (
            "/" + spec.topic(name).lstrip("/")
            for name in (config.color_topic, config.depth_topic, config.camera_info_topic))
        self.topics = [self.info_topic, self.color_topic, self.depth_topic]
        self.frame_id = f"{spec.name}{images.frame_suffix}"
        self.encoded = [(encode_image(from_rgb8(c.rgb, images.color_encoding), images.color_encoding),
                         encode_image(_depth(c.depth_raw, images.depth_encoding), images.depth_encoding))
                        for c in captures]

    def add_topics(self, writer: BagWriter) -> None:
        writer.add_topic(self.info_topic, "sensor_msgs/msg/CameraInfo")
        writer.add_topic(self.color_topic, "sensor_msgs/msg/Image")
        writer.add_topic(self.depth_topic, "sensor_msgs/msg/Image")

    def write(self, writer: BagWriter, index: int, stamp: int) -> None:
        header = self.factory.header(stamp, self.frame_id)
        color, depth = self.encoded[index]
        writer.write(self.info_topic, stamp + _DELAY_NS["info"],
                     self.factory.camera_info(self.captures[index].info, header))
        writer.write(self.color_topic, stamp + _DELAY_NS["color"], self.factory.image(color, header))
        writer.write(self.depth_topic, stamp + _DELAY_NS["depth"], self.factory.image(depth, header))


def _depth(raw_mm: np.ndarray, encoding: str) -> np.ndarray:
    return raw_to_32fc1(raw_mm) if encoding == "32FC1" else raw_mm
