"""`bag process` on bags written from examples/: the output bag reads back with rosbags, holds
the input topics unchanged plus the node's outputs, and those equal the engine's completion
of the same frames (values, stamps, frame ids); sqlite3 and MCAP, raw and compressed inputs;
an interrupted run leaves a readable bag."""

import _thread
import json
import sqlite3

import numpy as np
import pytest
from bag_helpers import (COLOR, CONFIG, EXAMPLES, FRAME_ID, bag_types, image_array, make_demo,
                         read_bag, run_cli, stamp)

from lingbot_depth_ros.bag.demo import DEMO_START_NS
from lingbot_depth_ros.bag.process import process_bag
from lingbot_depth_ros.bag.reader import BagReader
from lingbot_depth_ros.core.captures import find_captures, load_capture
from lingbot_depth_ros.core.depth import DepthRange, metres_to_16uc1
from lingbot_depth_ros.core.frame import RGBDFrame, SourceMask
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros.params import NodeConfig, load_params_file

OUTPUTS = {"/depth_completed": "sensor_msgs/msg/Image",
           "/depth_completed/camera_info": "sensor_msgs/msg/CameraInfo",
           "/depth_completed/points": "sensor_msgs/msg/PointCloud2",
           "/depth_completed/source_mask": "sensor_msgs/msg/Image",
           "/depth_completed/rgbd": "lingbot_depth_ros/msg/CompletedRGBD"}
D435I = CONFIG / "realsense_d435i.yaml"
CAPTURES = find_captures(EXAMPLES)


def expected_results(engine_name: str, config: NodeConfig):
    """The engine's completion of each example, loaded straight from the capture folders."""
    engine = create_engine(engine_name)
    frames = [load_capture(c, config.depth_scale, config.valid_range) for c in CAPTURES]
    return frames, [engine.complete(f) for f in frames]


@pytest.mark.parametrize("name, storage", [("in.mcap", None), ("in_dir", "sqlite3")])
def test_process_cli_outputs_equal_engine_completion(tmp_path, capsys, name, storage):
    bag = make_demo(tmp_path, name, storage=storage)
    out = tmp_path / ("out.mcap" if name.endswith(".mcap") else "out_dir")
    rc, stdout, _ = run_cli(["bag", "process", bag, out, "--params", D435I, "--engine", "guided",
                             "--summary-json", tmp_path / "summary.json", "--no-progress"], capsys)
    assert rc == 0, stdout
    assert "frames in: 4 colour, 4 depth, 4 camera info" in stdout and "processed 4" in stdout
    with BagReader(out) as reader:
        assert reader.storage == (storage or "mcap")  # output storage follows the input
    types = bag_types(out)
    assert {t: types[t] for t in OUTPUTS} == OUTPUTS
    msgs, inputs = read_bag(out), read_bag(bag)
    for topic in inputs:  # input topics copied unchanged, with their log times
        assert [(t, stamp(m.header)) for t, m in msgs[topic]] == [(t, stamp(m.header)) for t, m in inputs[topic]]
    config = NodeConfig.from_values(load_params_file(D435I))
    frames, results = expected_results("guided", config)
    color_stamps = [stamp(m.header) for _, m in inputs[COLOR]]
    for i, (frame, result) in enumerate(zip(frames, results)):
        _, depth = msgs["/depth_completed"][i]
        _, mask = msgs["/depth_completed/source_mask"][i]
        assert depth.encoding == "32FC1" and mask.encoding == "mono8"
        np.testing.assert_array_equal(image_array(depth), result.depth)  # NaN where equal
        np.testing.assert_array_equal(image_array(mask), result.source)
        for topic in OUTPUTS:
            _, msg = msgs[topic][i]
            assert (stamp(msg.header), msg.header.frame_id) == (color_stamps[i], FRAME_ID)
        _, info = msgs["/depth_completed/camera_info"][i]
        np.testing.assert_allclose(info.k.reshape(3, 3), frame.K)
        _, cloud = msgs["/depth_completed/points"][i]
        assert (cloud.height, cloud.width, cloud.point_step) == (480, 640, 16)
        xyz = np.frombuffer(cloud.data, np.float32).reshape(480, 640, 4)[..., :3]
        np.testing.assert_allclose(xyz[..., 2], result.depth, rtol=1e-6)
        _, rgbd = msgs["/depth_completed/rgbd"][i]
        np.testing.assert_array_equal(image_array(rgbd.depth), result.depth)
        np.testing.assert_array_equal(image_array(rgbd.rgb), frame.rgb)
        assert rgbd.engine == "guided" and rgbd.mode == "completion"
        assert rgbd.filled_fraction == pytest.approx(result.filled_fraction, abs=1e-6)
        assert rgbd.measured_fraction == pytest.approx(np.isfinite(frame.depth).mean(), abs=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["pairs"], summary["processed"], summary["drops"]) == (4, 4, {})
    assert summary["written"]["/depth_completed/rgbd"] == 4


def test_compressed_inputs_and_storage_override(tmp_path):
    bag = make_demo(tmp_path, "c.mcap", transport="compressed", repeat=2)
    config = NodeConfig.from_values(load_params_file(D435I))
    summary = process_bag(bag, tmp_path / "out", create_engine("nearest"), config,
                          storage="sqlite3", show_progress=False)
    assert (summary.pairs, summary.processed) == (8, 8)
    assert summary.topics.color == COLOR + "/compressed"  # found from the raw topic name
    with BagReader(tmp_path / "out") as reader:
        assert reader.storage == "sqlite3"
    msgs = read_bag(tmp_path / "out")
    engine = create_engine("nearest")
    # compressedDepth png is lossless for 16UC1 below 10 m: same measured depth as the capture
    frame = load_capture(CAPTURES[2], config.depth_scale, config.valid_range)
    _, depth = msgs["/depth_completed"][2]
    measured = image_array(msgs["/depth_completed/source_mask"][2][1]) == SourceMask.MEASURED
    np.testing.assert_array_equal(measured, np.isfinite(frame.depth))
    expected = engine.complete(frame).depth
    np.testing.assert_array_equal(image_array(depth), expected)
    _, rgbd = msgs["/depth_completed/rgbd"][2]
    assert rgbd.rgb.encoding == "rgb8"  # compressed colour is carried decoded


def test_pairing_uses_node_slop_and_accounting_holds(tmp_path):
    """Depth 15 ms after colour pairs with slop 0.02 s; with slop 0.01 s nothing pairs and
    every image is counted as dropped: received = 2 * processed + dropped."""
    bag = make_demo(tmp_path, "late.mcap", depth_offset_ns=15_000_000, repeat=2)
    engine = create_engine("nearest")
    ok = process_bag(bag, tmp_path / "a.mcap", engine, NodeConfig.from_values({"slop": 0.02}),
                     show_progress=False)
    assert (ok.pairs, ok.processed, ok.drops) == (8, 8, {})
    none = process_bag(bag, tmp_path / "b.mcap", engine, NodeConfig.from_values({"slop": 0.01}),
                       show_progress=False)
    assert none.processed == 0 and sum(none.drops.values()) == 16
    assert set(none.drops) <= {"unpaired", "late"}
    for s in (ok, none):
        assert s.received["color"] + s.received["depth"] == 2 * s.processed + sum(s.drops.values())


def test_outputs_follow_node_parameters(tmp_path):
    bag = make_demo(tmp_path, "in.mcap")
    config = NodeConfig.from_values({"publish_cloud": False, "publish_rgbd": False,
                                     "depth_encoding": "16UC1", "max_depth": 3.0})
    process_bag(bag, tmp_path / "out.mcap", create_engine("nearest"), config, show_progress=False)
    types = bag_types(tmp_path / "out.mcap")
    assert "/depth_completed/points" not in types and "/depth_completed/rgbd" not in types
    _, depth = read_bag(tmp_path / "out.mcap")["/depth_completed"][0]
    assert depth.encoding == "16UC1"
    frame = load_capture(CAPTURES[0], 0.001, DepthRange(0.1, 3.0))
    expected = create_engine("nearest").complete(frame).depth
    np.testing.assert_array_equal(image_array(depth), metres_to_16uc1(expected))


class InterruptingEngine:
    """Completes frames, then sends Ctrl-C to the main thread after `after` frames."""

    name = "nearest"

    def __init__(self, after: int) -> None:
        self.inner, self.after, self.done = create_engine("nearest"), after, 0

    def complete(self, frame: RGBDFrame):
        self.done += 1
        if self.done == self.after:
            _thread.interrupt_main()
        return self.inner.complete(frame)

    def describe(self) -> str:
        return "nearest (interrupting)"


def test_interrupted_run_leaves_readable_bag(tmp_path):
    bag = make_demo(tmp_path, "in.mcap", repeat=10)
    summary = process_bag(bag, tmp_path / "out.mcap", InterruptingEngine(after=5),
                          NodeConfig.from_values({}), show_progress=False)
    assert summary.interrupted and 0 < summary.processed < 40
    msgs = read_bag(tmp_path / "out.mcap")  # index and summary were written
    assert len(msgs["/depth_completed"]) == summary.processed
    assert not (tmp_path / "out.mcap.partial").exists()


def test_replay_equals_live_node_output(tmp_path):
    """The live node over DDS and `bag process` over the same four frames: byte-identical
    depth, mask, cloud, camera info and CompletedRGBD images, same stamps and frame ids."""
    pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from node_harness import OUTPUT_TOPICS, Running, load_captures, make_context, rclpy

    context = make_context(__name__)
    stamps = [DEMO_START_NS + i * round(1e9 / 30) for i in range(4)]
    try:
        running = Running(context, {"engine": "guided"}, namespace="/")
        try:
            for i, (capture, t) in enumerate(zip(load_captures(), stamps)):
                running.send_info(capture.info_msg(t))
                running.probe.send(capture.color_msg(t), capture.depth_msg(t))
                for topic in OUTPUT_TOPICS:
                    running.probe.wait_outputs(topic, i + 1, timeout=30)
            live = {topic: list(running.probe.received[topic]) for topic in OUTPUT_TOPICS}
        finally:
            running.close()
    finally:
        rclpy.shutdown(context=context)
    bag = make_demo(tmp_path, "in.mcap")
    process_bag(bag, tmp_path / "out.mcap", create_engine("guided"), NodeConfig.from_values({}),
                show_progress=False)
    replay = read_bag(tmp_path / "out.mcap")
    assert "depth_completed/rgbd" in live, "CompletedRGBD not built (colcon message missing)"
    for topic, live_msgs in live.items():
        replayed = [m for _, m in replay["/" + topic]]
        assert len(replayed) == len(live_msgs) == 4, topic
        for a, b in zip(live_msgs, replayed):
            assert (stamp(a.header), a.header.frame_id) == (stamp(b.header), b.header.frame_id)
            assert _payload(topic, a) == _payload(topic, b), topic


def _image(m) -> tuple:
    return m.height, m.width, m.encoding, m.is_bigendian, m.step, bytes(m.data)


def _payload(topic: str, msg) -> tuple:
    """What a consumer reads from one output message, as comparable values."""
    if topic == "depth_completed/points":
        return (msg.height, msg.width, msg.point_step, msg.row_step, bool(msg.is_dense),
                [(f.name, f.offset, f.datatype, f.count) for f in msg.fields], bytes(msg.data))
    if topic == "depth_completed/camera_info":
        return (msg.height, msg.width, msg.distortion_model, list(msg.d), list(msg.k),
                list(msg.r), list(msg.p))
    if topic == "depth_completed/rgbd":
        return (_image(msg.rgb), _image(msg.depth), _image(msg.source_mask),
                _payload("depth_completed/camera_info", msg.camera_info), float(msg.measured_fraction),
                float(msg.filled_fraction), msg.engine, msg.model, msg.mode)
    return _image(msg)


@pytest.mark.parametrize("distro, expect", [("auto", "humble"), ("jazzy", "jazzy")])
def test_bag_without_definitions_uses_distro_types(tmp_path, distro, expect):
    """Humble's recorder stores no message definitions: types come from the distro store."""
    bag = make_demo(tmp_path, "humble", storage="sqlite3")
    with sqlite3.connect(next(bag.glob("*.db3"))) as db:
        db.execute("DELETE FROM message_definitions")
    with BagReader(bag, distro=distro) as reader:
        assert reader.distro == expect
    summary = process_bag(bag, tmp_path / "out.mcap", create_engine("nearest"),
                          NodeConfig.from_values({}), distro=distro, show_progress=False)
    assert summary.processed == 4
    assert bag_types(tmp_path / "out.mcap")["/depth_completed/rgbd"] == "lingbot_depth_ros/msg/CompletedRGBD"


def test_cli_parameter_overrides(tmp_path, capsys):
    bag = make_demo(tmp_path, "in.mcap")
    rc, _, _ = run_cli(["bag", "process", bag, tmp_path / "o.mcap", "--params", D435I, "-p",
                        "publish_cloud:=false", "-p", "depth_encoding:=16UC1", "--engine", "nearest",
                        "--no-progress"], capsys)
    assert rc == 0
    types = bag_types(tmp_path / "o.mcap")
    assert "/depth_completed/points" not in types and "/depth_completed/rgbd" in types
    assert read_bag(tmp_path / "o.mcap")["/depth_completed"][0][1].encoding == "16UC1"
    for bad, message in (("slop:=1", "must be float"), ("slop=0.1", "NAME:=VALUE")):
        rc, _, err = run_cli(["bag", "process", bag, tmp_path / "x.mcap", "-p", bad], capsys)
        assert rc == 2 and message in err and not (tmp_path / "x.mcap").exists()
    # an unknown name: warned about and ignored, as the node does (test_params_files.py)
