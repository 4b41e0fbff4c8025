"""Launch lingbot_depth_node for a camera, optionally with the camera's own driver.

    ros2 launch lingbot_depth_ros lingbot_depth.launch.py camera:=realsense
    ros2 launch lingbot_depth_ros lingbot_depth.launch.py camera:=zed2i include_camera_driver:=true \
        engine:=onnxruntime onnx:=/models/lingbot.onnx namespace:=arm_cam

Arguments:
  camera                 default | realsense_d435i | realsense_d455 | orbbec_gemini335 | zed2i
                         (aliases: realsense, orbbec, zed); picks config/<camera>.yaml
  params_file            a parameter file to use instead of the camera's
  config_file            the same (realsense-ros's rs_launch.py name for it)
  engine, checkpoint, onnx, engine_file, mode
                         override the node parameters of the same name when not empty
  namespace              namespace of the node, its inputs and its outputs; empty: the
                         camera driver's default namespace (camera, zed; / for default).
                         The presets' input topics are relative to it, so one launch per
                         camera (driver started with the same namespace) works
  remappings             extra remappings for the node, "from:=to" separated by spaces
                         or commas, e.g. "depth_completed/points:=/cloud" (to move all
                         outputs together use output_topic)
  output_topic           move depth_completed and all its sub-topics (camera_info, points,
                         source_mask, rgbd, engine) together, e.g. /arm/depth
  use_sim_time           true: the node follows /clock (rosbag play --clock)
  log_level              the node's log level: debug, info (default), warn, error, fatal
  camera_info_sibling    true: publish the output camera info as <namespace>/camera_info,
                         beside depth_completed, as image_transport subscribers expect
                         (RViz2 DepthCloud, depth_image_proc); default: depth_completed/camera_info
  include_camera_driver  true: also launch realsense2_camera / orbbec_camera / zed_wrapper
                         with depth aligned to colour, when that package is installed
  large_data_profile     true: give everything launched here config/fastdds_large_data.xml
                         (unless FASTDDS_DEFAULT_PROFILES_FILE is already set), so 640x480
                         images and clouds reach best-effort subscribers between processes
"""

import os

from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, IncludeLaunchDescription, LogInfo,
                            OpaqueFunction, SetEnvironmentVariable)
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

PACKAGE = "lingbot_depth_ros"

#: camera argument -> parameter file in config/
CAMERA_CONFIGS = {
    "default": "default.yaml",
    "realsense_d435i": "realsense_d435i.yaml",
    "realsense_d455": "realsense_d455.yaml",
    "orbbec_gemini335": "orbbec_gemini335.yaml",
    "zed2i": "zed2i.yaml",
}
CAMERA_ALIASES = {"realsense": "realsense_d435i", "orbbec": "orbbec_gemini335", "zed": "zed2i"}

#: camera -> the namespace its driver publishes in by default (the presets' topics are
#: relative to it); docs/drivers.md lists each driver's topics
CAMERA_NAMESPACES = {
    "default": "/",
    "realsense_d435i": "camera",   # rs_launch.py camera_namespace (its node: camera_name)
    "realsense_d455": "camera",
    "orbbec_gemini335": "camera",  # orbbec_camera: namespace and node both camera_name
    "zed2i": "zed",                # zed_camera.launch.py: namespace camera_name, node zed_node
}

#: camera -> (driver package, its launch file, arguments that register depth to colour)
CAMERA_DRIVERS = {
    "realsense_d435i": ("realsense2_camera", "rs_launch.py", {"align_depth.enable": "true"}),
    "realsense_d455": ("realsense2_camera", "rs_launch.py", {"align_depth.enable": "true"}),
    "orbbec_gemini335": ("orbbec_camera", "gemini_330_series.launch.py",
                         {"depth_registration": "true"}),
    "zed2i": ("zed_wrapper", "zed_camera.launch.py", {"camera_model": "zed2i"}),
}

#: driver package -> its launch argument that sets the namespace the presets are relative to
DRIVER_NAMESPACE_ARGUMENTS = {"realsense2_camera": "camera_namespace",
                              "orbbec_camera": "camera_name", "zed_wrapper": "camera_name"}

#: launch arguments that override the node parameter of the same name when not empty
PARAMETER_ARGUMENTS = ("engine", "checkpoint", "onnx", "engine_file", "mode")
#: launch arguments that configure the launch itself (no node parameter)
LAUNCH_ARGUMENTS = ("camera", "params_file", "config_file", "namespace", "remappings",
                    "output_topic", "use_sim_time", "log_level", "camera_info_sibling",
                    "include_camera_driver", "large_data_profile")
#: the node's outputs under depth_completed, moved together by output_topic
OUTPUT_SUBTOPICS = ("camera_info", "points", "source_mask", "rgbd", "engine")
#: where the output camera info goes with camera_info_sibling:=true (image_transport's
#: getCameraInfoTopic of depth_completed)
SIBLING_CAMERA_INFO = ("depth_completed/camera_info", "camera_info")
DDS_PROFILE_VARIABLE = "FASTDDS_DEFAULT_PROFILES_FILE"


def _camera(context) -> str:
    name = LaunchConfiguration("camera").perform(context).strip().lower()
    name = CAMERA_ALIASES.get(name, name)
    if name not in CAMERA_CONFIGS:
        choices = ", ".join([*CAMERA_CONFIGS, *CAMERA_ALIASES])
        raise RuntimeError(f"camera:={name} is not one of {choices}")
    return name


def _driver(camera: str, namespace: str):
    """The driver's launch include (in `namespace`), or a log line saying why it is not started."""
    if camera not in CAMERA_DRIVERS:
        return LogInfo(msg=f"include_camera_driver: no driver is known for camera '{camera}'")
    package, launch_file, arguments = CAMERA_DRIVERS[camera]
    arguments = {**arguments, DRIVER_NAMESPACE_ARGUMENTS[package]: namespace.strip("/")}
    try:
        share = get_package_share_directory(package)
    except PackageNotFoundError:
        return LogInfo(msg=f"include_camera_driver: {package} is not installed; start the "
                           f"camera yourself with {' '.join(f'{k}:={v}' for k, v in arguments.items())}")
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(os.path.join(share, "launch", launch_file)),
        launch_arguments=arguments.items())


def _is_true(context, name: str) -> bool:
    return LaunchConfiguration(name).perform(context).strip().lower() in ("true", "1", "yes")


def _remappings(context) -> list[tuple[str, str]]:
    text = LaunchConfiguration("remappings").perform(context)
    rules = []
    for rule in text.replace(",", " ").split():
        source, sep, target = rule.partition(":=")
        if not (sep and source and target):
            raise RuntimeError(f"remappings: '{rule}' is not of the form from:=to")
        rules.append((source, target))
    output = LaunchConfiguration("output_topic").perform(context).strip().rstrip("/")
    base = output or "depth_completed"
    if output:
        rules.append(("depth_completed", output))
        rules += [(f"depth_completed/{sub}", f"{output}/{sub}") for sub in OUTPUT_SUBTOPICS
                  if not (sub == "camera_info" and _is_true(context, "camera_info_sibling"))]
    if _is_true(context, "camera_info_sibling"):
        # image_transport's camera info of image topic <dir>/<name> is <dir>/camera_info
        parent = base.rpartition("/")[0]
        rules.append((SIBLING_CAMERA_INFO[0], f"{parent}/camera_info" if parent or
                      base.startswith("/") else SIBLING_CAMERA_INFO[1]))
    return rules


def _namespace(context, camera: str) -> str:
    return LaunchConfiguration("namespace").perform(context).strip() or CAMERA_NAMESPACES[camera]


def _params_file(context) -> str:
    """params_file, or config_file (realsense-ros's name); both given must agree."""
    given = {name: LaunchConfiguration(name).perform(context).strip()
             for name in ("params_file", "config_file")}
    if all(given.values()) and given["params_file"] != given["config_file"]:
        raise RuntimeError("params_file and config_file name the same thing; give one")
    return given["params_file"] or given["config_file"]


def _launch_setup(context):
    camera = _camera(context)
    share = get_package_share_directory(PACKAGE)
    params_file = _params_file(context) or os.path.join(share, "config", CAMERA_CONFIGS[camera])
    overrides = {}
    for name in PARAMETER_ARGUMENTS:
        value = LaunchConfiguration(name).perform(context)
        if value:
            overrides[name] = value
    overrides["use_sim_time"] = _is_true(context, "use_sim_time")
    actions = []
    if _is_true(context, "large_data_profile") and not os.environ.get(DDS_PROFILE_VARIABLE):
        actions.append(SetEnvironmentVariable(
            DDS_PROFILE_VARIABLE, os.path.join(share, "config", "fastdds_large_data.xml")))
    actions.append(Node(package=PACKAGE, executable="lingbot_depth_node",
                        name="lingbot_depth_node",
                        namespace=_namespace(context, camera), remappings=_remappings(context),
                        parameters=[params_file, overrides], output="screen", emulate_tty=True,
                        arguments=["--ros-args", "--log-level",
                                   LaunchConfiguration("log_level").perform(context)]))
    if _is_true(context, "include_camera_driver"):
        # after the environment, before the node
        actions.insert(len(actions) - 1, _driver(camera, _namespace(context, camera)))
    return actions


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("camera", default_value="default",
                              description="camera preset: " + ", ".join(CAMERA_CONFIGS)),
        DeclareLaunchArgument("params_file", default_value="",
                              description="parameter file (default: config/<camera>.yaml)"),
        DeclareLaunchArgument("config_file", default_value="",
                              description="the same as params_file (realsense-ros's name)"),
        DeclareLaunchArgument("engine", default_value="",
                              description="guided | nearest | telea | torch | onnxruntime | "
                                          "tensorrt | auto (empty: from the parameter file)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="model.pt for torch/auto"),
        DeclareLaunchArgument("onnx", default_value="", description="ONNX file for onnxruntime/auto"),
        DeclareLaunchArgument("engine_file", default_value="", description="TensorRT engine file"),
        DeclareLaunchArgument("mode", default_value="", description="completion | monocular"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of node, inputs and outputs (empty: the "
                                          "camera driver's default namespace)"),
        DeclareLaunchArgument("remappings", default_value="",
                              description='extra remappings "from:=to", space or comma separated'),
        DeclareLaunchArgument("output_topic", default_value="",
                              description="move depth_completed and its sub-topics together "
                                          "(e.g. /arm/depth; empty: depth_completed)"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="follow /clock (rosbag play --clock)"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="the node's log level: debug, info, warn, error, fatal"),
        DeclareLaunchArgument("camera_info_sibling", default_value="false",
                              description="publish the output camera info as <namespace>/"
                                          "camera_info (image_transport's convention: RViz2 "
                                          "DepthCloud, depth_image_proc)"),
        DeclareLaunchArgument("include_camera_driver", default_value="false",
                              description="also launch the camera driver when it is installed"),
        DeclareLaunchArgument("large_data_profile", default_value="true",
                              description="use config/fastdds_large_data.xml unless "
                                          f"{DDS_PROFILE_VARIABLE} is set"),
        OpaqueFunction(function=_launch_setup),
    ])
