"""`bag process` of a rig: every camera of a multi-camera bag completed with the rig's
batching (one engine call per input shape, gathered in log time), each camera's outputs
under its namespace with its own stamps and frame ids, per-camera counters that add up, the
same depths as one camera at a time, and a deterministic output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bag_helpers import EXAMPLES, image_array, read_bag, run_cli, stamp

from lingbot_depth_ros.bag.demo import load_demo_captures
from lingbot_depth_ros.bag.messages import MessageFactory
from lingbot_depth_ros.bag.process import process_bag
from lingbot_depth_ros.bag.reader import build_typestore
from lingbot_depth_ros.bag.writer import BagWriter
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.config import NodeConfig, load_params_file
from lingbot_depth_ros.core.outputs import CameraInfoFields
from lingbot_depth_ros.core.rig import rig_from_values
from lingbot_depth_ros.engines import create_engine

START_NS = 1_700_000_000 * 10**9
#: camera -> (preset, its topics in the bag, scale of the 640x480 captures)
CAMERAS = {
    "wrist": ("realsense_d435i", ("/wrist/camera/color/image_raw",
                                  "/wrist/camera/aligned_depth_to_color/image_raw",
                                  "/wrist/camera/color/camera_info"), 1),
    "scene": ("orbbec_gemini335", ("/scene/color/image_raw", "/scene/depth/image_raw",
                                   "/scene/color/camera_info"), 2),
    "side": ("orbbec_gemini335", ("/side/color/image_raw", "/side/depth/image_raw",
                                  "/side/color/camera_info"), 1),
}
FRAMES = 6


def write_rig_bag(path: Path, cameras=CAMERAS, frames: int = FRAMES, bad: tuple = ()) -> Path:
    """Each camera at 10 Hz, a few ms apart; `bad`: (camera, frame) pairs whose colour image
    carries a depth encoding."""
    captures = load_demo_captures(EXAMPLES)
    store = build_typestore("kilted")
    factory = MessageFactory(store)
    with BagWriter(path, None, store) as writer:
        for color, depth, info in (topics for _, topics, _ in cameras.values()):
            writer.add_topic(info, "sensor_msgs/msg/CameraInfo")
            writer.add_topic(color, "sensor_msgs/msg/Image")
            writer.add_topic(depth, "sensor_msgs/msg/Image")
        for i in range(frames):
            capture = captures[i % len(captures)]
            for k, (name, (_, (color, depth, info), scale)) in enumerate(cameras.items()):
                t = START_NS + i * 100_000_000 + k * 3_000_000 + list(CAMERAS).index(name) * 1000
                header = factory.header(t, f"{name}_color_optical_frame")
                K = capture.info.K.copy()
                K[:2] /= scale
                rgb, raw = capture.rgb[::scale, ::scale].copy(), capture.depth_raw[::scale, ::scale].copy()
                fields = CameraInfoFields.from_K(K, *raw.shape)
                color_fields = encode_image(rgb, "rgb8")
                if (name, i) in bad:
                    color_fields = encode_image(raw, "16UC1")
                writer.write(info, t + 1_000_000, factory.camera_info(fields, header))
                writer.write(color, t + 2_000_000, factory.image(color_fields, header))
                writer.write(depth, t + 2_500_000, factory.image(encode_image(raw, "16UC1"), header))
    return path


def rig_params(tmp_path: Path, cameras=CAMERAS, **extra) -> Path:
    lines = ["/**/lingbot_depth_node:", "  ros__parameters:",
             f"    cameras: [{', '.join(cameras)}]", "    max_batch: 4", "    batch_window_ms: 20.0"]
    lines += [f"    {k}: {v}" for k, v in extra.items()]
    for name, (preset, _, _) in cameras.items():
        lines += [f"    {name}:", f"      preset: {preset}"]
    path = tmp_path / "rig.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class CountingEngine:
    """The nearest engine, recording the size of every call."""

    name = "nearest"

    def __init__(self) -> None:
        self.inner, self.calls = create_engine("nearest"), []

    def complete(self, frame):
        self.calls.append(1)
        return self.inner.complete(frame)

    def complete_batch(self, frames):
        self.calls.append(len(frames))
        return [self.inner.complete(f) for f in frames]

    def batch_key(self, frame):
        return frame.depth.shape

    def describe(self) -> str:
        return "nearest (counting)"

    def close(self) -> None:
        pass


def run_rig(tmp_path: Path, bag: Path, out_name: str = "out.mcap", engine=None):
    values = load_params_file(rig_params(tmp_path))
    cameras = rig_from_values(values)
    config = NodeConfig.from_values({k: v for k, v in values.items() if "." not in k})
    engine = engine or CountingEngine()
    summary = process_bag(bag, tmp_path / out_name, engine, config, show_progress=False,
                          cameras=cameras)
    return summary, engine


def test_every_camera_is_completed_under_its_namespace_in_batches(tmp_path):
    bag = write_rig_bag(tmp_path / "rig.mcap")
    summary, engine = run_rig(tmp_path, bag)
    assert summary.processed == 3 * FRAMES and summary.drops == {}
    out = read_bag(tmp_path / "out.mcap")
    for name, (_, _, scale) in CAMERAS.items():
        msgs = [m for _, m in out[f"/{name}/depth_completed"]]
        assert [stamp(m.header) for m in msgs] == [
            START_NS + i * 100_000_000 + list(CAMERAS).index(name) * (3_000_000 + 1000)
            for i in range(FRAMES)]
        assert {m.header.frame_id for m in msgs} == {f"{name}_color_optical_frame"}
        assert {(m.width, m.height) for m in msgs} == {(640 // scale, 480 // scale)}
        assert len(out[f"/{name}/depth_completed/points"]) == FRAMES
        assert summary.cameras[name] == {"pairs": FRAMES, "processed": FRAMES, "dropped": {}}
    # the two 640x480 cameras share each call; the 320x240 one is a shape of its own
    assert sorted(engine.calls) == [1] * FRAMES + [2] * FRAMES
    assert summary.engine_calls == {1: FRAMES, 2: FRAMES}
    assert any("camera wrist: pairs 6, processed 6" in line for line in summary.lines())


def test_a_rig_bag_gives_each_camera_what_it_gets_alone(tmp_path):
    bag = write_rig_bag(tmp_path / "rig.mcap")
    run_rig(tmp_path, bag)
    rig = read_bag(tmp_path / "out.mcap")
    specs = {c.name: c.config for c in rig_from_values(load_params_file(rig_params(tmp_path)))}
    for name, (_, (color, depth, info), _) in CAMERAS.items():
        alone = process_bag(bag, tmp_path / f"{name}.mcap", create_engine("nearest"),
                            specs[name], show_progress=False,  # its preset's depth range
                            topics={"color": color, "depth": depth, "info": info})
        assert alone.processed == FRAMES
        single = read_bag(tmp_path / f"{name}.mcap")["/depth_completed"]
        for (_, a), (_, b) in zip(single, rig[f"/{name}/depth_completed"], strict=True):
            # the same engine on the same frame, batched or not: equal to the bit
            np.testing.assert_array_equal(image_array(a), image_array(b))


def test_a_bad_frame_costs_only_its_camera_and_the_run_is_deterministic(tmp_path):
    bag = write_rig_bag(tmp_path / "rig.mcap", bad=(("scene", 2), ("wrist", 4)))
    first, _ = run_rig(tmp_path, bag, "a.mcap")
    second, _ = run_rig(tmp_path, bag, "b.mcap")
    assert first.cameras["scene"]["dropped"] == {"bad_encoding": 2}
    assert first.cameras["wrist"]["dropped"] == {"bad_encoding": 2}
    assert first.cameras["side"] == {"pairs": FRAMES, "processed": FRAMES, "dropped": {}}
    assert first.processed == 3 * FRAMES - 2
    received = sum(first.received[k] for k in ("color", "depth"))
    assert received == 2 * first.processed + sum(first.drops.values())
    # the same messages at the same log times (CompletedRGBD carries wall-clock timings)
    a, b = read_bag(tmp_path / "a.mcap"), read_bag(tmp_path / "b.mcap")
    assert a.keys() == b.keys()
    for topic in a:
        assert [(t, stamp(m.header)) for t, m in a[topic]] == \
            [(t, stamp(m.header)) for t, m in b[topic]], topic
        if topic.endswith("/depth_completed"):
            for (_, x), (_, y) in zip(a[topic], b[topic]):
                np.testing.assert_array_equal(image_array(x), image_array(y))


def test_the_cli_processes_a_rig_from_its_parameter_file(tmp_path, capsys):
    bag = write_rig_bag(tmp_path / "rig.mcap")
    params = rig_params(tmp_path, engine="nearest")
    rc, out, err = run_cli(["bag", "process", bag, tmp_path / "cli.mcap", "--params", params,
                            "--no-progress"], capsys)
    assert rc == 0, err
    assert "camera scene: pairs 6, processed 6" in out
    topics = read_bag(tmp_path / "cli.mcap")
    assert all(len(topics[f"/{name}/depth_completed"]) == FRAMES for name in CAMERAS)
    rc, out, err = run_cli(["bag", "process", bag, tmp_path / "x.mcap", "--params", params,
                            "--color-topic", "/wrist/camera/color/image_raw"], capsys)
    assert rc != 0 and "a rig's cameras take their topics from the parameter file" in out + err


@pytest.mark.parametrize("command", ["eval", "viz"])
def test_one_camera_tools_say_a_rig_is_not_theirs(tmp_path, capsys, command):
    bag = write_rig_bag(tmp_path / "rig.mcap", frames=1)
    extra = [str(tmp_path / "viz")] if command == "viz" else ["--json", str(tmp_path / "eval.json")]
    rc, out, err = run_cli(["bag", command, bag, "--params", rig_params(tmp_path), *extra], capsys)
    assert rc != 0 and "this command takes one camera" in out + err
