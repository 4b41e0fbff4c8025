"""A rig's configuration (core/rig.py): cameras from presets and per-camera values, a single
camera as a rig of one, and clear errors for a rig that cannot be."""

import pytest

from lingbot_depth_ros.core.config import NodeConfig, load_params_file
from lingbot_depth_ros.core.rig import CAMERA_PARAMS, preset_names, rig_from_values
from lingbot_depth_ros.paths import data_path


def test_no_cameras_is_a_rig_of_one_with_the_node_parameters():
    (camera,) = rig_from_values({"color_topic": "rgb", "max_depth": 4.0})
    assert camera.name == ""
    assert camera.config == NodeConfig.from_values({"color_topic": "rgb", "max_depth": 4.0})
    assert camera.topic("depth_completed") == "depth_completed"


def test_each_camera_takes_its_preset_then_its_own_values():
    wrist, scene = rig_from_values({
        "engine": "nearest", "max_batch": 2, "cameras": ["wrist", "scene"],
        "wrist.preset": "realsense_d435i", "wrist.max_depth": 3.0,
        "scene.preset": "zed2i", "scene.admission": "latest"})
    d435i = load_params_file(data_path("config/realsense_d435i.yaml"))
    assert wrist.config.color_topic == d435i["color_topic"]
    assert wrist.config.max_depth == 3.0  # its own value over the preset's 6.0
    assert wrist.topic(wrist.config.color_topic) == f"wrist/{d435i['color_topic']}"
    assert scene.config.depth_topic == "zed_node/depth/depth_registered"
    assert (scene.config.slop, scene.config.admission) == (0.01, "latest")
    assert wrist.config.admission == "burst"  # the node's value where neither sets one
    # the rig's own parameters are shared, whatever a preset says (presets say engine: guided)
    assert wrist.config.engine == scene.config.engine == "nearest"
    assert scene.topic("/absolute/topic") == "/absolute/topic"


def test_a_camera_without_preset_takes_the_node_inputs():
    (cam,) = rig_from_values({"cameras": ["cam"], "depth_topic": "d"})
    assert (cam.name, cam.config.depth_topic, cam.topic("d")) == ("cam", "d", "cam/d")


@pytest.mark.parametrize("values, message", [
    ({"cameras": ["a", "a"]}, "'a' is given twice"),
    ({"cameras": ["wrist/cam"]}, "'wrist/cam' is not a valid camera name"),
    ({"cameras": ["a"], "a.preset": "kinect"}, "camera 'a': unknown camera preset 'kinect'.*zed2i"),
    ({"cameras": ["a"], "a.max_depth": -1.0}, "camera 'a': parameter 'max_depth' = -1.0 is outside"),
    ({"cameras": ["a"], "a.slop": 1}, "camera 'a': parameter 'slop' must be float"),
    ({"cameras": ["a"], "a.min_depth": 5.0, "a.max_depth": 4.0}, "camera 'a'"),
    ({"cameras": ["a"], "a.engine": "torch"}, "engine cannot be set per camera"),
    ({"cameras": ["a"], "source": "realsense"}, "source 'realsense' opens one camera"),
    ({"cameras": "a"}, "'cameras' must be a list of strings"),
    ({"max_batch": 0}, "'max_batch' = 0 is outside"),
])
def test_a_bad_rig_is_a_clear_error(values, message):
    with pytest.raises(ValueError, match=message):
        rig_from_values(values)


def test_presets_are_the_camera_files_in_config():
    names = preset_names()
    assert {"realsense_d435i", "zed2i", "orbbec_gemini335"} <= set(names)
    assert "train_example" not in names
    assert "color_topic" in CAMERA_PARAMS and "engine" not in CAMERA_PARAMS
