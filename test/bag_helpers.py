"""Shared pieces of the bag tests: demo bags from examples/, an independent reader (plain
rosbags AnyReader, not the package's BagReader) and an in-process CLI runner."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore

from lingbot_depth_ros.bag.demo import write_demo_bag
from lingbot_depth_ros.bag.reader import build_typestore
from lingbot_depth_ros.cli import main as cli_main

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CONFIG = Path(__file__).resolve().parents[1] / "config"
COLOR = "/camera/camera/color/image_raw"
DEPTH = "/camera/camera/aligned_depth_to_color/image_raw"
INFO = "/camera/camera/color/camera_info"
FRAME_ID = "camera_color_optical_frame"


def make_demo(folder: Path, name: str, captures: Path = EXAMPLES, **kwargs) -> Path:
    out = folder / name
    write_demo_bag(captures, out, **kwargs)
    return out


def read_bag(path: Path) -> dict[str, list[tuple[int, object]]]:
    """topic -> [(log time, message)] with rosbags' own reader and the bag's definitions."""
    store = get_typestore(Stores.ROS2_KILTED)
    out: dict[str, list] = {}
    with AnyReader([Path(path)], default_typestore=store) as reader:
        for conn, log_time, raw in reader.messages():
            out.setdefault(conn.topic, []).append((log_time, reader.deserialize(raw, conn.msgtype)))
    return out


def bag_types(path: Path) -> dict[str, str]:
    with AnyReader([Path(path)], default_typestore=build_typestore("kilted")) as reader:
        return {name: info.msgtype for name, info in reader.topics.items()}


def stamp(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def image_array(msg) -> np.ndarray:
    dtype = {"32FC1": np.float32, "16UC1": np.uint16}.get(msg.encoding, np.uint8)
    channels = {"rgb8": 3, "bgr8": 3}.get(msg.encoding, 1)
    arr = np.frombuffer(msg.data, dtype=dtype).reshape(msg.height, msg.width, channels)
    return arr[..., 0] if channels == 1 else arr


def run_cli(argv: list[str], capsys) -> tuple[int, str, str]:
    rc = cli_main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def cloud_msg(store, cloud, header):
    """rosbags' own PointCloud2 of `cloud`: the reference for the spliced bytes."""
    t = store.types
    fields = [t["sensor_msgs/msg/PointField"](name=f.name, offset=f.offset, datatype=f.datatype,
                                               count=f.count) for f in cloud.fields]
    return t["sensor_msgs/msg/PointCloud2"](
        header=header, height=cloud.height, width=cloud.width, fields=fields,
        is_bigendian=bool(cloud.is_bigendian), point_step=cloud.point_step, row_step=cloud.row_step,
        data=np.frombuffer(cloud.data, np.uint8), is_dense=bool(cloud.is_dense))
