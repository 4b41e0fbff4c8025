#!/usr/bin/env bash
# Build this package with colcon, using the ROS 2 wheels installed in the active venv.
# Usage: bash .ci/colcon_build.sh [WORKSPACE_DIR]   (default: .ws in this checkout)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
ws=${1:-$repo/.ws}
prefix=$(python -c 'import sys; print(sys.prefix)')
export AMENT_PREFIX_PATH=$prefix CMAKE_PREFIX_PATH=$prefix

# The ROS 2 wheels' exported CMake targets name the build machine's include folders
# (/opt/python/...); point them at this Python's and numpy's, inside the venv (see the script).
# Nothing is written outside the venv and the workspace: no links under /opt.
python "$repo/.ci/wheel_cmake_paths.py" "$prefix"

mkdir -p "$ws/src"
ln -sfn "$repo" "$ws/src/lingbot_depth_ros"
cd "$ws"
colcon build --packages-select lingbot_depth_ros --cmake-args -DBUILD_TESTING=OFF \
  -DPython3_EXECUTABLE="$(command -v python)" --event-handlers console_direct- "${@:2}"
echo "colcon: built into $ws/install"
