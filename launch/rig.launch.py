"""Launch one lingbot_depth_node for a rig of cameras (docs/rig.md), optionally with each
camera's driver.

    ros2 launch lingbot_depth_ros rig.launch.py rig:=d435i_zed2i
    ros2 launch lingbot_depth_ros rig.launch.py rig:=/path/to/my_rig.yaml \
        include_camera_drivers:=true engine:=onnxruntime onnx:=/models/lingbot.onnx

Arguments:
  rig                     a rig of config/ (d435i_zed2i: config/rig_d435i_zed2i.yaml) or the
                          path of a rig parameter file (its `cameras` and `<camera>.preset`)
  engine, checkpoint, onnx, engine_file, mode
                          override the node parameter of the same name when not empty
  namespace               the node's namespace (default /); each camera is a namespace
                          under it, with its inputs and outputs there
  include_camera_drivers  true: also launch each camera's driver (realsense2_camera,
                          orbbec_camera, zed_wrapper; when installed) in that camera's
                          namespace, with depth registered to colour
  use_sim_time, log_level, large_data_profile
                          as in lingbot_depth.launch.py
"""

import importlib.util
import os

import yaml
from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "lingbot_depth_ros"
#: the node's section keys in a parameter file (as the node's own reader matches them)
SECTIONS = ("/**", "/**/lingbot_depth_node", "lingbot_depth_node", "/lingbot_depth_node")


def _single_camera_launch():
    """lingbot_depth.launch.py as a module: its preset, driver and DDS tables are the rig's."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lingbot_depth.launch.py")
    spec = importlib.util.spec_from_file_location("lingbot_depth_launch", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rig_file(context, share: str) -> str:
    rig = LaunchConfiguration("rig").perform(context).strip()
    if not rig:
        raise RuntimeError("rig:= is empty: name a rig of config/ (e.g. d435i_zed2i) or a rig file")
    if rig.endswith((".yaml", ".yml")):
        path = rig
    else:
        path = os.path.join(share, "config", f"rig_{rig}.yaml")
    if not os.path.isfile(path):
        known = sorted(f[4:-5] for f in os.listdir(os.path.join(share, "config"))
                       if f.startswith("rig_") and f.endswith(".yaml"))
        raise RuntimeError(f"rig:={rig}: no file {path} (rigs of config/: {', '.join(known)})")
    return path


def _cameras(path: str) -> list[tuple[str, str]]:
    """(camera, preset) of a rig file; the node checks everything else at start-up."""
    with open(path) as stream:
        document = yaml.safe_load(stream) or {}
    values: dict = {}
    for key in SECTIONS:
        section = document.get(key) if isinstance(document, dict) else None
        if isinstance(section, dict):
            values.update(section.get("ros__parameters") or {})
    cameras = values.get("cameras") or []
    if not cameras:
        raise RuntimeError(f"{path} names no cameras (a rig file sets cameras: [name, ...])")
    return [(name, str((values.get(name) or {}).get("preset", ""))) for name in cameras]


def _driver_namespace(node_namespace: str, camera: str) -> str:
    return f"{node_namespace.strip('/')}/{camera}".strip("/")


def _launch_setup(context):
    single = _single_camera_launch()
    share = get_package_share_directory(PACKAGE)
    rig_file = _rig_file(context, share)
    namespace = LaunchConfiguration("namespace").perform(context).strip() or "/"
    overrides = {name: LaunchConfiguration(name).perform(context)
                 for name in single.PARAMETER_ARGUMENTS if LaunchConfiguration(name).perform(context)}
    overrides["use_sim_time"] = single._is_true(context, "use_sim_time")
    actions = []
    if single._is_true(context, "large_data_profile") and not os.environ.get(single.DDS_PROFILE_VARIABLE):
        actions.append(SetEnvironmentVariable(
            single.DDS_PROFILE_VARIABLE, os.path.join(share, "config", "fastdds_large_data.xml")))
    if single._is_true(context, "include_camera_drivers"):
        for camera, preset in _cameras(rig_file):
            preset = single.CAMERA_ALIASES.get(preset, preset)
            actions.append(single._driver(preset, _driver_namespace(namespace, camera)))
    actions.append(Node(package=PACKAGE, executable="lingbot_depth_node", name="lingbot_depth_node",
                        namespace=namespace, parameters=[rig_file, overrides], output="screen",
                        emulate_tty=True,
                        arguments=["--ros-args", "--log-level",
                                   LaunchConfiguration("log_level").perform(context)]))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("rig", default_value="d435i_zed2i",
                              description="a rig of config/ (rig_<name>.yaml) or a rig file's path"),
        DeclareLaunchArgument("engine", default_value="",
                              description="guided | nearest | telea | torch | onnxruntime | "
                                          "tensorrt | auto (empty: from the rig file)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="model.pt for torch/auto"),
        DeclareLaunchArgument("onnx", default_value="", description="ONNX file for onnxruntime/auto"),
        DeclareLaunchArgument("engine_file", default_value="", description="TensorRT engine file"),
        DeclareLaunchArgument("mode", default_value="", description="completion | monocular"),
        DeclareLaunchArgument("namespace", default_value="/",
                              description="the node's namespace; each camera's is under it"),
        DeclareLaunchArgument("include_camera_drivers", default_value="false",
                              description="also launch each camera's driver in its namespace"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="follow /clock (rosbag play --clock)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="the node's log level: debug, info, warn, error, fatal"),
        DeclareLaunchArgument("large_data_profile", default_value="true",
                              description="use config/fastdds_large_data.xml unless "
                                          "FASTDDS_DEFAULT_PROFILES_FILE is set"),
        OpaqueFunction(function=_launch_setup),
    ])
