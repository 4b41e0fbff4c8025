"""The launch file under a real `ros2 launch` (upstream launch/launch_ros/ros2launch): every
preset with namespace and overrides, parameters read back through the node's parameter
service, remappings, use_sim_time, the image_transport camera_info sibling, and a clean
Ctrl-C (exit 0, no traceback, engine closed)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launch_harness import Launch, ParameterReader, unclean_shutdown_lines

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config"
_spec = importlib.util.spec_from_file_location("lingbot_depth_launch", ROOT / "launch" / "lingbot_depth.launch.py")
LAUNCH = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(LAUNCH)
PRESET_PARAMS = ("color_topic", "depth_topic", "camera_info_topic", "qos", "slop", "depth_scale",
                 "min_depth", "max_depth")


def preset_values(camera: str) -> dict:
    document = yaml.safe_load((CONFIG / LAUNCH.CAMERA_CONFIGS[camera]).read_text())
    return document["/**/lingbot_depth_node"]["ros__parameters"]


@pytest.fixture(scope="module")
def reader():
    reader = ParameterReader(__name__)
    yield reader
    reader.close()


def stop_cleanly(launch: Launch) -> str:
    code = launch.interrupt()
    output = launch.output
    assert code == 0, output
    assert not unclean_shutdown_lines(output), unclean_shutdown_lines(output)
    assert "engine " in output and " closed" in output, output
    assert "process has finished cleanly" in output, output
    return output


@pytest.mark.parametrize("camera", sorted(LAUNCH.CAMERA_CONFIGS))
def test_every_preset_launches_with_namespace_and_overrides(reader, camera):
    namespace = f"/rig/{camera}"
    launch = Launch(__name__, f"camera:={camera}", f"namespace:={namespace}",
                    "engine:=nearest", "mode:=monocular", "use_sim_time:=true")
    try:
        names = [*PRESET_PARAMS, "engine", "mode", "use_sim_time"]
        values = reader.get(f"{namespace}/lingbot_depth_node", names)
        expected = preset_values(camera)
        for name in PRESET_PARAMS:
            assert values[name] == expected.get(name, values[name]), name
        assert values["engine"] == "nearest" and values["mode"] == "monocular"
        assert values["use_sim_time"] is True
        published, subscribed = reader.topics_of("lingbot_depth_node", namespace)
        # Relative inputs: the namespace moves them with the outputs.
        assert f"{namespace}/{expected['depth_topic']}" in subscribed, subscribed
        assert f"{namespace}/depth_completed" in published, published
        assert f"{namespace}/depth_completed/camera_info" in published
    finally:
        output = stop_cleanly(launch)
    assert "engine nearest closed" in output


@pytest.mark.parametrize("camera, namespace", [("realsense", "/camera"), ("orbbec", "/camera"),
                                               ("zed", "/zed"), ("default", "")])
def test_default_namespace_is_the_drivers(reader, camera, namespace):
    launch = Launch(__name__, f"camera:={camera}")
    try:
        depth_topic = preset_values(LAUNCH.CAMERA_ALIASES.get(camera, camera))["depth_topic"]
        _, subscribed = reader.topics_of("lingbot_depth_node", namespace or "/")
        assert f"{namespace}/{depth_topic}" in subscribed, subscribed
    finally:
        stop_cleanly(launch)


def test_remappings_and_camera_info_sibling(reader):
    launch = Launch(__name__, "camera:=realsense", "namespace:=/arm",
                    "remappings:=depth_completed/points:=/arm/cloud, camera/color/image_raw:=/rgb",
                    "camera_info_sibling:=true")
    try:
        published, subscribed = reader.topics_of("lingbot_depth_node", "/arm")
        assert "/arm/cloud" in published and "/arm/depth_completed/points" not in published
        assert "/rgb" in subscribed
        # image_transport's getCameraInfoTopic("/arm/depth_completed") is /arm/camera_info.
        assert "/arm/depth_completed" in published and "/arm/camera_info" in published
        assert "/arm/depth_completed/camera_info" not in published
        assert reader.get("/arm/lingbot_depth_node", ["use_sim_time"]) == {"use_sim_time": False}
    finally:
        stop_cleanly(launch)


def test_malformed_remapping_is_one_clear_error():
    run = subprocess.run(["ros2", "launch", "lingbot_depth_ros", "lingbot_depth.launch.py",
                          "remappings:=depth_completed"], capture_output=True, text=True, timeout=60)
    assert run.returncode != 0
    assert "is not of the form from:=to" in run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr


def test_ctrl_c_is_clean_three_times():
    """The suite's share of scripts/stress_launch_sigint.py (20 cycles for the target)."""
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "stress_launch_sigint.py"),
                          "--cycles", "3"], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "clean 3 of 3" in run.stdout, run.stdout
