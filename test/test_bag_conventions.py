"""`bag process` applies the node's conventions offline: REP 117 +Inf/-Inf kept (not filled),
no cloud point there, and pairs whose depth is in another optical frame dropped as
`unregistered` unless `assume_registered`."""

import json

import numpy as np
from bag_helpers import COLOR, CONFIG, DEPTH, EXAMPLES, FRAME_ID, INFO, image_array, read_bag, run_cli

from lingbot_depth_ros.bag.messages import MessageFactory
from lingbot_depth_ros.bag.reader import build_typestore
from lingbot_depth_ros.bag.writer import BagWriter
from lingbot_depth_ros.core.captures import read_intrinsics, read_raw_depth, read_rgb, rgb_path
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.depth import Infinities, depth_to_metres
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.core.outputs import CameraInfoFields
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros.params import NodeConfig, load_params_file

D435I = CONFIG / "realsense_d435i.yaml"
START = 1_700_000_000 * 1_000_000_000
PERIOD = 33_333_333


def float_depth() -> np.ndarray:
    metres = read_raw_depth(EXAMPLES / "0" / "raw_depth.png").astype(np.float32) / 1000.0
    metres[metres == 0] = np.nan
    metres[10:40, 10:60] = np.inf
    metres[100:130, 200:260] = -np.inf
    return metres


def write_bag(path, depth_frame_ids):
    """One 32FC1 frame per depth frame id, colour always in FRAME_ID."""
    folder = EXAMPLES / "0"
    rgb, K = read_rgb(rgb_path(folder)), read_intrinsics(folder / "intrinsics.txt")
    info = CameraInfoFields.from_K(K, *rgb.shape[:2])
    typestore = build_typestore("kilted")
    factory = MessageFactory(typestore)
    with BagWriter(path, "mcap", typestore) as writer:
        writer.add_topic(INFO, "sensor_msgs/msg/CameraInfo")
        writer.add_topic(COLOR, "sensor_msgs/msg/Image")
        writer.add_topic(DEPTH, "sensor_msgs/msg/Image")
        for i, depth_frame in enumerate(depth_frame_ids):
            stamp = START + i * PERIOD
            header = factory.header(stamp, FRAME_ID)
            writer.write(INFO, stamp + 1, factory.camera_info(info, header))
            writer.write(COLOR, stamp + 2, factory.image(encode_image(rgb, "rgb8"), header))
            writer.write(DEPTH, stamp + 3, factory.image(encode_image(float_depth(), "32FC1"),
                                                        factory.header(stamp, depth_frame)))
    return rgb, K


def test_bag_process_keeps_infinities_and_drops_unregistered(tmp_path, capsys):
    bag, out = tmp_path / "in.mcap", tmp_path / "out.mcap"
    rgb, K = write_bag(bag, [FRAME_ID, "camera_depth_optical_frame", FRAME_ID])
    rc, stdout, _ = run_cli(["bag", "process", bag, out, "--params", D435I, "--engine", "guided",
                             "--summary-json", tmp_path / "summary.json", "--no-progress"], capsys)
    assert rc == 0, stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processed"] == 2 and summary["drops"] == {"unregistered": 2}
    # What the node computes for the same frame (ros/node.py _complete_pair).
    config = NodeConfig.from_values(load_params_file(D435I))
    raw = float_depth()
    frame = RGBDFrame(rgb=rgb, K=K, depth=depth_to_metres(raw, "32FC1", config.depth_scale,
                                                          config.valid_range))
    expected = Infinities.of(raw, "32FC1").restore(create_engine("guided").complete(frame))
    msgs = read_bag(out)
    for _, depth in msgs["/depth_completed"]:
        np.testing.assert_array_equal(image_array(depth), expected.depth)
        assert np.isposinf(image_array(depth)[10:40, 10:60]).all()
        assert np.isneginf(image_array(depth)[100:130, 200:260]).all()
    for _, cloud in msgs["/depth_completed/points"]:
        xyz = np.frombuffer(cloud.data, np.float32).reshape(480, 640, 4)[..., :3]
        assert np.isnan(xyz[10:40, 10:60]).all() and not np.isinf(xyz).any()


def test_bag_process_assume_registered(tmp_path, capsys):
    bag, out = tmp_path / "in.mcap", tmp_path / "out.mcap"
    write_bag(bag, ["camera_depth_optical_frame"])
    rc, stdout, _ = run_cli(["bag", "process", bag, out, "--params", D435I, "--engine", "guided",
                             "-p", "assume_registered:=true", "--summary-json",
                             tmp_path / "summary.json", "--no-progress"], capsys)
    assert rc == 0, stdout
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["processed"] == 1 and summary["drops"] == {}
