"""Engines built from bad options and bad model files: one factory refuses unknown names
(with a hint) and bad values with one-line EngineOptionErrors; an ONNX graph with the wrong
output shape is refused at load; a graph exported for another frame size still completes
(resized into the graph and back), in `bag process` and in the node over DDS."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from bad_input_helpers import EXAMPLES, assert_refused, cli
from bag_helpers import make_demo, read_bag
from lingbot_depth_ros.core.errors import EngineOptionError, ModelFileError
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.registry import canonical_device, engine_parameters


@pytest.mark.parametrize("name, options, words", [
    ("telea", {"radiuss": 3}, ["does not take radiuss", "did you mean 'radius'"]),
    ("telea", {"radius": "abc"}, ["radius='abc'", "must be a number"]),
    ("telea", {"radius": -5}, ["telea radius must be positive"]),
    ("telea", {"radius": float("nan")}, ["finite"]),
    ("guided", {"color_level": 2.5}, ["color_level=2.5", "an integer"]),
    ("guided", {"refine_measured": "perhaps"}, ["true or false"]),
    ("nearest", {"sigma_color": 0.2}, ["does not take sigma_color"]),
    ("nearset", {}, ["unknown engine 'nearset'", "did you mean 'nearest'"]),
    ("auto", {"radiuss": 3}, ["'auto' does not take radiuss", "did you mean 'radius'"]),
    ("auto", {"device": "gpu"}, ["device must be"]),
    ("onnxruntime", {"onnx": "m.onnx", "threads": "many"}, ["threads='many'", "an integer"]),
])
def test_bad_engine_options_are_one_line_errors(name, options, words):
    with pytest.raises(EngineOptionError) as caught:
        create_engine(name, **options)
    message = str(caught.value)
    assert "\n" not in message and all(w in message for w in words), message


def test_options_come_from_the_constructor_and_text_is_converted():
    assert set(engine_parameters("telea")) == {"radius", "refine_measured"}
    engine = create_engine("telea", radius="7", refine_measured="true")
    assert engine.radius == 7.0 and engine.refine_measured is True
    assert create_engine("guided", color_level="2").params["color_level"] == 2
    assert [canonical_device(d) for d in ("auto", "CPU", "cuda", 1, "cuda:2", "3")] == [
        "auto", "cpu", "cuda:0", "cuda:1", "cuda:2", "cuda:3"]


@pytest.mark.parametrize("build", [
    lambda: create_engine("guided", colour_level="2"),
    lambda: create_engine("guided", offered={"colour_level": 2}),
    lambda: create_engine("auto", colour_level=2),
])
def test_old_option_name_works_for_one_release_with_a_warning(build, caplog):
    engine = build()
    assert engine.name == "guided" and engine.params["color_level"] == 2
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == ["engine option colour_level is deprecated and will be removed in the "
                        "next release: use color_level"]


def test_old_and_new_option_name_together_is_an_error():
    with pytest.raises(EngineOptionError, match="old name of color_level: give only color_level"):
        create_engine("guided", colour_level=2, color_level=3)


def test_offered_options_reach_only_the_engines_that_take_them():
    # a node config offers mode and resolution_level to whatever engine it selects
    engine = create_engine("nearest", offered={"mode": "completion", "resolution_level": 3,
                                                "refine_measured": True})
    assert engine.refine_measured is True


def _graph_with_wrong_output(path, height=48, width=64):
    """A graph with the export's interface but a half-size 'depth_out'."""
    rgb = helper.make_tensor_value_info("rgb", TensorProto.UINT8, [1, height, width, 3])
    depth = helper.make_tensor_value_info("depth", TensorProto.FLOAT, [1, height, width])
    out = helper.make_tensor_value_info("depth_out", TensorProto.FLOAT, [1, height // 2, width // 2])
    mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, height, width])
    consts = [helper.make_tensor(n, TensorProto.INT64, [len(v)], v) for n, v in
              (("starts", [0, 0]), ("ends", [height // 2, width // 2]), ("axes", [1, 2]))]
    nodes = [helper.make_node("Slice", ["depth", "starts", "ends", "axes"], ["depth_out"]),
             helper.make_node("Identity", ["depth"], ["mask"]),
             helper.make_node("ReduceMax", ["rgb_f"], ["unused"], keepdims=0),
             helper.make_node("Cast", ["rgb"], ["rgb_f"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "wrong", [rgb, depth], [out, mask], initializer=consts)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_an_onnx_output_of_the_wrong_shape_is_refused_at_load(tmp_path):
    path = _graph_with_wrong_output(tmp_path / "wrong.onnx")
    with pytest.raises(ModelFileError, match=r"output 'depth_out' has shape \[1, 24, 32\], "
                                             r"expected \[1, 48, 64\]"):
        create_engine("onnxruntime", onnx=path)
    ex = EXAMPLES / "3"
    proc = cli("complete", "--rgb", ex / "rgb.jpg", "--depth", ex / "raw_depth.png",
               "--intrinsics", ex / "intrinsics.txt", "--engine", "onnxruntime", "--onnx", path,
               "--out", tmp_path / "o")
    assert_refused(proc, "depth_out", nothing_at=tmp_path / "o")


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory):
    """A tiny model exported for 320x240 frames (the examples are 640x480)."""
    from tiny_models import tiny_model
    from lingbot_depth_ros.model.export import export_onnx

    folder = tmp_path_factory.mktemp("small_graph")
    return export_onnx(tiny_model(), folder / "qvga.onnx", 240, 320, num_tokens=96)


def test_bag_process_completes_frames_of_another_size_than_the_graph(small_graph, tmp_path):
    bag = make_demo(tmp_path, "in.mcap")
    proc = cli("bag", "process", bag, tmp_path / "out.mcap", "--engine", "onnxruntime",
               "--onnx", small_graph, "--no-progress", "--summary-json", tmp_path / "s.json")
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["processed"] == summary["pairs"] == 4 and not summary["drops"], summary
    depth = read_bag(tmp_path / "out.mcap")["/depth_completed"][0][1]
    assert (depth.width, depth.height) == (640, 480)
    values = np.frombuffer(depth.data, np.float32)
    assert np.isfinite(values).mean() > 0.5


def test_node_publishes_frames_of_another_size_than_the_graph(small_graph):
    rclpy_mod = pytest.importorskip("rclpy", reason="rclpy (ROS 2 wheels) not installed")
    from node_harness import Running, accounting, load_captures, make_context

    context = make_context(__name__)
    captures = load_captures()
    running = Running(context, {"engine": "onnxruntime", "onnx": str(small_graph)},
                      namespace="/resized")
    try:
        assert running.node.engine.name == "onnxruntime"
        stamp = 1_700_000_000 * 10**9
        running.send_info(captures[0].info_msg(stamp))
        running.probe.send(captures[0].color_msg(stamp), captures[0].depth_msg(stamp))
        depth = running.probe.wait_outputs("depth_completed", 1, timeout=60)[0]
        assert (depth.width, depth.height) == (640, 480)
        running.wait_idle()
        values = running.diagnostics()
        received, accounted = accounting(values)
        assert received == accounted and int(values["published"]) == 1
        assert values.get("fallback", "none") == "none" and values["engine"] == "onnxruntime", values
    finally:
        running.close()
        rclpy_mod.shutdown(context=context)
