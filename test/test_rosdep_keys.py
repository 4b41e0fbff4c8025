"""Every dependency key of package.xml resolves in rosdep, so that the README's
`rosdep install --from-paths src -y --ignore-src` installs them all.

The keys below were checked by hand against ros/rosdistro at commit
8468e88ccd523427f9131e39d2af0938f1c298b2 (2026-08-22): system keys in rosdep/base.yaml and
rosdep/python.yaml (each with an `ubuntu` entry), ROS packages as released packages of
jazzy/, kilted/ and rolling/distribution.yaml. A key added to package.xml must be checked the
same way and added here; one rosdistro lacks is no rosdep dependency (installed another way,
see python3-threadpoolctl in package.xml)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ROSDISTRO_PYTHON_YAML = {
    "python3-numpy", "python3-opencv", "python3-yaml", "python3-tqdm", "python3-pytest",
    "python3-hypothesis",
}
ROSDISTRO_RELEASED_PACKAGES = {
    "ament_cmake", "ament_cmake_python", "ament_cmake_pytest", "rosidl_default_generators",
    "rosidl_default_runtime", "std_msgs", "sensor_msgs", "diagnostic_msgs", "rclpy",
    "rcl_interfaces", "builtin_interfaces", "composition_interfaces", "ament_index_python",
    "launch", "launch_ros", "ros2launch", "ros2cli", "message_filters", "sensor_msgs_py",
    "cv_bridge",
}
NOT_IN_ROSDISTRO = {"python3-threadpoolctl"}  # looked for in every rosdep/*.yaml: absent


def package_xml_keys() -> dict[str, str]:
    """dependency key -> the tag that declares it."""
    root = ET.parse(ROOT / "package.xml").getroot()
    return {el.text.strip(): el.tag for el in root if el.tag.endswith("depend")}


def test_every_package_xml_key_is_one_rosdistro_defines():
    unchecked = {key: tag for key, tag in package_xml_keys().items()
                 if key not in ROSDISTRO_PYTHON_YAML | ROSDISTRO_RELEASED_PACKAGES}
    assert not unchecked, (
        f"package.xml keys not checked against ros/rosdistro: {unchecked}; check each in "
        "rosdep/*.yaml or <distro>/distribution.yaml and list it in this test, or install it "
        "another way")


def test_keys_rosdistro_lacks_are_not_dependencies():
    assert not NOT_IN_ROSDISTRO & set(package_xml_keys())


def test_the_checked_lists_are_package_xml_keys():
    """No stale entries: the lists above are exactly what package.xml declares."""
    assert set(package_xml_keys()) == ROSDISTRO_PYTHON_YAML | ROSDISTRO_RELEASED_PACKAGES
