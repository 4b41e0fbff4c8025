"""A rosbag2 of synthetic frames as a camera's ROS 2 driver publishes them (the topics,
encodings and optical frame of the presets in config/), so the node and ``bag process`` can
replay a synthetic rig."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.captures import read_intrinsics, read_raw_depth, read_rgb
from ..core.codec import encode_image, from_rgb8
from ..core.depth import raw_to_32fc1
from ..core.outputs import CameraInfoFields
from .dataset import DEPTH_SCALE, META_NAME, folder_name


@dataclass(frozen=True)
class DriverTopics:
    color: str
    color_info: str
    depth: str
    depth_info: str
    frame_id: str
    color_encoding: str   # rgb8 | bgra8
    depth_encoding: str   # 16UC1 (mm) | 32FC1 (m, NaN = none)


_REALSENSE = DriverTopics("/camera/camera/color/image_raw", "/camera/camera/color/camera_info",
                          "/camera/camera/aligned_depth_to_color/image_raw",
                          "/camera/camera/aligned_depth_to_color/camera_info",
                          "camera_color_optical_frame", "rgb8", "16UC1")
#: realsense2_camera (rs_launch.py, align_depth), orbbec_camera (depth_registration:=true),
#: zed_wrapper (camera_name zed): as config/<preset>.yaml names them
DRIVERS = {
    "d435": _REALSENSE,
    "d455": _REALSENSE,
    "gemini335": DriverTopics("/camera/color/image_raw", "/camera/color/camera_info",
                              "/camera/depth/image_raw", "/camera/depth/camera_info",
                              "camera_color_optical_frame", "rgb8", "16UC1"),
    "zed2i": DriverTopics("/zed/zed_node/rgb/color/rect/image",
                          "/zed/zed_node/rgb/color/rect/camera_info",
                          "/zed/zed_node/depth/depth_registered", "/zed/zed_node/depth/camera_info",
                          "zed_left_camera_frame_optical", "bgra8", "32FC1"),
}
START_NS = 1_700_000_000 * 1_000_000_000


def write_sim_bag(out_dir: str | Path, seeds: list[int], bag_path: str | Path, camera: str,
                  fps: float = 15.0, storage: str | None = None) -> dict:
    """Write the frames `seeds` of `out_dir` (written by dataset) in order, at `fps`."""
    from ..bag.messages import MessageFactory
    from ..bag.reader import build_typestore
    from ..bag.writer import BagWriter

    topics = DRIVERS[camera]
    typestore = build_typestore("kilted")
    factory = MessageFactory(typestore)
    period = int(round(1e9 / fps))
    with BagWriter(bag_path, storage, typestore) as writer:
        for topic, kind in ((topics.color_info, "sensor_msgs/msg/CameraInfo"),
                            (topics.depth_info, "sensor_msgs/msg/CameraInfo"),
                            (topics.color, "sensor_msgs/msg/Image"),
                            (topics.depth, "sensor_msgs/msg/Image")):
            writer.add_topic(topic, kind)
        for n, seed in enumerate(seeds):
            folder = Path(out_dir) / folder_name(seed)
            color, depth, K = _load(folder, topics)
            stamp = START_NS + n * period
            header = factory.header(stamp, topics.frame_id)
            info = factory.camera_info(CameraInfoFields.from_K(K, *depth.shape[:2]), header)
            writer.write(topics.color_info, stamp + 4_000_000, info)
            writer.write(topics.depth_info, stamp + 4_000_000, info)
            writer.write(topics.color, stamp + 5_000_000,
                         factory.image(encode_image(color, topics.color_encoding), header))
            writer.write(topics.depth, stamp + 7_000_000,
                         factory.image(encode_image(depth, topics.depth_encoding), header))
    return {"frames": len(seeds), "path": str(bag_path), "storage": writer.storage,
            "topics": [topics.color, topics.depth, topics.color_info, topics.depth_info]}


def _load(folder: Path, topics: DriverTopics):
    rgb = read_rgb(next(folder.glob("rgb.*")))
    raw = read_raw_depth(folder / "raw_depth.png")
    scale = json.loads((folder / META_NAME).read_text()).get("depth_scale", DEPTH_SCALE)
    color = from_rgb8(rgb, topics.color_encoding)
    depth = raw_to_32fc1(raw, scale) if topics.depth_encoding == "32FC1" else raw
    return np.ascontiguousarray(color), depth, read_intrinsics(folder / "intrinsics.txt")
