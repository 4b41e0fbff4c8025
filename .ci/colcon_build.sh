#!/usr/bin/env bash
# Build this package with colcon, using the ROS 2 wheels installed in the active venv.
# Usage: bash .ci/colcon_build.sh [WORKSPACE_DIR]   (default: /tmp/lingbot_ws)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ws=${1:-/tmp/lingbot_ws}
prefix=$(python -c 'import sys; print(sys.prefix)')
export AMENT_PREFIX_PATH=$prefix CMAKE_PREFIX_PATH=$prefix

# Why: the ROS 2 wheels' exported CMake targets name the include folders of the manylinux
# machine that built them (/opt/python/cp311-cp311/...). Point those paths at this Python's
# headers and numpy's, or CMake rejects the imported targets.
py_inc=$(python -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
np_inc=$(python -c 'import numpy; print(numpy.get_include())')
pyver=$(python -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
pydot=$(python -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
base=/opt/python/cp${pyver}-cp${pyver}
mkdir -p "$base/include" "$base/lib/python$pydot/site-packages/numpy/_core"
[ -e "$base/include/python$pydot" ] || ln -s "$py_inc" "$base/include/python$pydot"
[ -e "$base/lib/python$pydot/site-packages/numpy/_core/include" ] || \
  ln -s "$np_inc" "$base/lib/python$pydot/site-packages/numpy/_core/include"

mkdir -p "$ws/src"
ln -sfn "$repo" "$ws/src/lingbot_depth_ros"
cd "$ws"
colcon build --packages-select lingbot_depth_ros --cmake-args -DBUILD_TESTING=OFF \
  -DPython3_EXECUTABLE="$(command -v python)" --event-handlers console_direct- "${@:2}"
echo "colcon: built into $ws/install"
