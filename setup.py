"""pip install path; colcon builds the same tree with CMakeLists.txt (ament_cmake)."""
from glob import glob

from setuptools import setup

SHARE = "share/lingbot_depth_ros"

setup(
    # The same share/ layout colcon installs, so launch files and parameter presets are found
    # by path (and by ament_index) after a pip install too.
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/lingbot_depth_ros"]),
        (SHARE, ["package.xml"]),
        (f"{SHARE}/config", sorted(glob("config/*.yaml") + glob("config/*.xml"))),
        (f"{SHARE}/launch", sorted(glob("launch/*.py"))),
        (f"{SHARE}/msg", sorted(glob("msg/*.msg"))),  # the bag tools register CompletedRGBD from it
        *[(f"{SHARE}/examples/{d}", sorted(glob(f"examples/{d}/*"))) for d in "0123"],
        (f"{SHARE}/examples", ["examples/README.md"]),
    ],
)
