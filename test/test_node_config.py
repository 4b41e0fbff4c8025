"""Every parameter file in config/ loads into the real node; the launch file's arguments map
to declared parameters; wrong files fail loudly with the parameter's name."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from node_harness import rclpy  # noqa: F401  (skips this module without the ROS wheels)
from lingbot_depth_ros.ros.node import LingbotDepthNode
from lingbot_depth_ros.core.rig import rig_from_values
from lingbot_depth_ros.ros.params import PARAMS, PARAMS_BY_NAME, NodeConfig, load_params_file
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
LAUNCH_FILE = ROOT / "launch" / "lingbot_depth.launch.py"
CAMERA_FILES = ("default.yaml", "realsense_d435i.yaml", "realsense_d455.yaml",
                "orbbec_gemini335.yaml", "zed2i.yaml")


def node_param_files() -> list[Path]:
    """YAML files in config/ that hold ROS 2 parameters (other tools keep configs there too)."""
    found = []
    for path in sorted(CONFIG.glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if isinstance(document, dict) and any(
                isinstance(v, dict) and "ros__parameters" in v for v in document.values()):
            found.append(path)
    return found


def start_node(context, params_file: Path, namespace: str = "/robot") -> LingbotDepthNode:
    return LingbotDepthNode(context=context, namespace=namespace,
                            cli_args=["--ros-args", "--params-file", str(params_file)])


def test_camera_files_are_all_present():
    assert {p.name for p in node_param_files()} >= set(CAMERA_FILES)


@pytest.mark.parametrize("path", node_param_files(), ids=lambda p: p.name)
def test_param_file_loads_into_node(context, path):
    values = load_params_file(path)
    assert values, f"{path.name} has no section for lingbot_depth_node"
    cameras = rig_from_values(values)  # the ROS-free reader the bag tools use (a rig file too)
    node = start_node(context, path)
    try:
        assert node.undeclared_overrides == []
        # rclpy parsed the same values with the same types
        assert [c.config for c in node.cameras] == [c.config for c in cameras]
        for key in values:
            assert node.get_parameter(key).value == values[key]
        subscribed = {s.topic_name for s in node.subscriptions}
        for camera in cameras:
            expected = camera.config
            assert node.resolve_topic_name(camera.topic(expected.depth_topic)) in subscribed
            if expected.depth_topic.startswith("/"):
                assert expected.depth_topic in subscribed  # absolute driver topics stay absolute
        assert node.engine.name == expected.engine
    finally:
        node.destroy_node()


@pytest.mark.parametrize("namespace", ["/", "/arm/camera"])
def test_wildcard_key_matches_any_namespace(context, namespace):
    node = start_node(context, CONFIG / "zed2i.yaml", namespace=namespace)
    try:
        assert node.config.depth_topic == "zed_node/depth/depth_registered"  # the driver's namespace's
        assert node.resolve_topic_name(node.config.depth_topic) == \
            f"{namespace.rstrip('/')}/zed_node/depth/depth_registered"
        assert node.config.min_depth == 0.3
    finally:
        node.destroy_node()


def write_params(tmp_path, **values) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({"/**/lingbot_depth_node": {"ros__parameters": values}}))
    return path


def test_unknown_parameter_is_reported(context, tmp_path):
    path = write_params(tmp_path, colour_topic="/camera/color/image_raw", slop=0.05)
    node = start_node(context, path)
    try:
        assert node.undeclared_overrides == ["colour_topic"]
        assert node.config.slop == 0.05
    finally:
        node.destroy_node()
    with pytest.raises(ValueError, match="colour_topic"):
        NodeConfig.from_values(load_params_file(path))


@pytest.mark.parametrize("depth", [1, 12])
def test_output_queue_depth_sets_every_output_publishers_history(context, tmp_path, depth):
    node = start_node(context, write_params(tmp_path, output_queue_depth=depth))
    try:
        outputs = [node.depth_pub, node.info_pub, node.mask_pub, node.cloud_pub, node.rgbd_pub]
        depths = {p.topic_name: p.qos_profile.depth for p in outputs if p is not None}
        assert len(depths) >= 4 and set(depths.values()) == {depth}
    finally:
        node.destroy_node()


@pytest.mark.parametrize("values, error", [
    ({"slop": 1}, InvalidParameterTypeException),           # int for a double
    ({"cloud_decimation": "2"}, InvalidParameterTypeException),
    ({"cloud_decimation": 0}, InvalidParameterValueException),  # outside 1..16
    ({"max_depth": 5000.0}, InvalidParameterValueException),
    ({"depth_encoding": "8UC1"}, ValueError),                # not one of the choices
    ({"min_depth": 5.0, "max_depth": 2.0}, ValueError),      # empty valid range
])
def test_wrong_values_fail_with_the_parameter_name(context, tmp_path, values, error):
    path = write_params(tmp_path, **values)
    with pytest.raises(error):
        start_node(context, path).destroy_node()
    with pytest.raises(ValueError):
        NodeConfig.from_values(load_params_file(path))


def test_every_parameter_is_described_with_its_range(context):
    node = LingbotDepthNode(context=context, namespace="/describe")
    try:
        descriptors = node.describe_parameters([p.name for p in PARAMS])
        for param, descriptor in zip(PARAMS, descriptors):
            assert descriptor.description and descriptor.read_only, param.name
            if isinstance(param.default, float):
                assert descriptor.floating_point_range, param.name
            elif isinstance(param.default, int) and not isinstance(param.default, bool):
                assert descriptor.integer_range, param.name
            if param.choices:
                assert all(c in descriptor.additional_constraints for c in param.choices)
    finally:
        node.destroy_node()


def test_bad_params_file_exits_with_message_not_traceback(tmp_path):
    path = write_params(tmp_path, cloud_decimation=0)
    env = dict(os.environ, ROS_DOMAIN_ID="231")
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "lingbot_depth_node"),
                          "--ros-args", "--params-file", str(path)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2
    assert "cloud_decimation" in run.stderr and "Traceback" not in run.stderr


# -- launch file ---------------------------------------------------------------------------
def launch_module_constants() -> dict:
    tree = ast.parse(LAUNCH_FILE.read_text())
    constants = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return constants


def declared_launch_arguments() -> list[str]:
    tree = ast.parse(LAUNCH_FILE.read_text())
    return [call.args[0].value for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "id", "") == "DeclareLaunchArgument"]


def test_launch_arguments_map_to_declared_parameters():
    constants = launch_module_constants()
    declared = declared_launch_arguments()
    assert len(declared) == len(set(declared))
    assert set(declared) == set(constants["PARAMETER_ARGUMENTS"]) | set(constants["LAUNCH_ARGUMENTS"])
    for name in constants["PARAMETER_ARGUMENTS"]:
        assert name in PARAMS_BY_NAME, f"launch argument {name} is no node parameter"
        assert isinstance(PARAMS_BY_NAME[name].default, str)  # passed on as text
    for camera, file_name in constants["CAMERA_CONFIGS"].items():
        assert (CONFIG / file_name).is_file(), camera
    assert set(constants["CAMERA_ALIASES"].values()) <= set(constants["CAMERA_CONFIGS"])
    assert set(constants["CAMERA_DRIVERS"]) <= set(constants["CAMERA_CONFIGS"])


def test_launch_file_builds_where_launch_is_installed():
    pytest.importorskip("launch_ros", reason="launch/launch_ros are not on PyPI; ROS installs have them")
    import importlib.util

    spec = importlib.util.spec_from_file_location("lingbot_depth_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    names = {a.name for a in description.get_launch_arguments()}
    assert names == set(module.PARAMETER_ARGUMENTS) | set(module.LAUNCH_ARGUMENTS)


def test_node_runs_without_the_built_message(tmp_path):
    """A pip install has no colcon-built CompletedRGBD: the node says so once and runs on."""
    env = dict(os.environ, ROS_DOMAIN_ID="232", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "lingbot_depth_node")],
                            env=env, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:  # returns when the node logs its start-up line
            lines.append(line)
            if "completing" in line:
                break
        log = "".join(lines)
        assert "depth_completed/rgbd is disabled" in log and proc.poll() is None, log
    finally:
        proc.terminate()
        proc.wait(timeout=20)
