"""pip install path; colcon builds the same tree with CMakeLists.txt (ament_cmake)."""
from setuptools import setup

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/lingbot_depth_ros"]),
        ("share/lingbot_depth_ros", ["package.xml"]),
    ],
)
