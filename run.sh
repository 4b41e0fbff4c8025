#!/usr/bin/env bash
# One entry point that sets everything up on a fresh machine, then runs a job:
#   ./run.sh demo    the main job: the node on the embedded `guided` engine over a demo bag
#   ./run.sh test    lint (ruff) + the test suite (pytest; extra arguments are passed on)
#   ./run.sh bench   the benchmarks in benchmarks/
#   ./run.sh setup   only the set-up (venv, PyPI installs, colcon build of msg/)
#   ./run.sh lingbot-depth ARGS       the command line, in the set-up environment
#   ./run.sh lingbot_depth_node ARGS  the node (e.g. --ros-args --params-file config/zed2i.yaml)
# Set-up is idempotent and quick when nothing changed.
set -euo pipefail
repo=$(cd "$(dirname "$0")" && pwd)
cd "$repo"
venv=${LINGBOT_VENV:-$repo/.venv}
ws=${LINGBOT_WS:-$repo/.ws}

# Debian libraries that wheels load at import time (pyrealsense2 needs libusb), installed as
# .ci/run does when running as root; otherwise the tests that need them skip with the reason.
system_libs() {
  ldconfig -p 2>/dev/null | grep -q libusb-1.0 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 && \
           DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null 2>&1; } \
      || echo "warning: could not install libusb-1.0-0; RealSense tests will skip" >&2
  else
    echo "note: libusb-1.0-0 missing (sudo apt-get install libusb-1.0-0); RealSense tests skip" >&2
  fi
}

setup() {
  system_libs
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
  fi
  # shellcheck disable=SC1091
  source "$venv/bin/activate"
  # The ROS wheels' bootstrapper (a .pth) re-executes Python once with this venv's ROS libraries
  # on LD_LIBRARY_PATH and marks that done in this variable; one inherited from another venv's
  # Python (a test run in another clone) would stop it, and rclpy would not load.
  unset _ROS_WHEELS_BOOTSTRAP_COMPLETE
  local stamp="$venv/.lingbot-reqs" want
  want=$(cat requirements-ci.txt requirements-colcon.txt | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    python -m pip install -q --upgrade pip wheel 'setuptools<80'  # colcon-core needs <80
    python -m pip install -q -r requirements-ci.txt -r requirements-colcon.txt
    echo "$want" > "$stamp"
  fi
  # Before any colcon build (ours and the upstream tier's): the wheels' CMake files name the
  # include folders of the machine that built them; rewritten inside the venv, never under /opt.
  python .ci/wheel_cmake_paths.py "$venv"
  # The messages in msg/ only exist after a colcon build; rebuild when msg/, the build files
  # or what `ros2 launch` reads from the install space (launch/, config/, scripts/) change
  # (Python sources are read from the checkout, see lingbot_depth_ros/__init__.py).
  local bstamp="$ws/.lingbot-build" bwant
  bwant=$(cat msg/*.msg CMakeLists.txt package.xml .ci/colcon_build.sh .ci/wheel_cmake_paths.py launch/* config/* scripts/* | sha256sum | cut -c1-16)
  if [ "$(cat "$bstamp" 2>/dev/null)" != "$bwant" ] || [ ! -d "$ws/install" ]; then
    rm -rf "$ws/build" "$ws/install"
    bash .ci/colcon_build.sh "$ws" > "$ws.log" 2>&1 || { cat "$ws.log"; exit 1; }
    echo "$bwant" > "$bstamp"
  fi
  setup_upstream
  local inst="$ws/install/lingbot_depth_ros"
  export LD_LIBRARY_PATH="$inst/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  # The checkout first (its sources), then the install space (the generated msg module).
  export PYTHONPATH="$repo:$inst/lib/python$(python -c "import sys;print(f\"{sys.version_info[0]}.{sys.version_info[1]}\")")/site-packages${PYTHONPATH:+:$PYTHONPATH}"
  export AMENT_PREFIX_PATH="$inst:$venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  # Keep DDS traffic on this machine (tests and demo talk over loopback only).
  export ROS_AUTOMATIC_DISCOVERY_RANGE=${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}
  export RMW_IMPLEMENTATION=${RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}
}

# The upstream tier of the tests (launch, launch_ros, ros2cli, message_filters,
# sensor_msgs_py, cv_bridge's Python part, composition_interfaces) where no ROS install
# provides them: from ../shared/ros2-upstream when that folder exists (see its README).
# composition_interfaces is built into "$ws/upstream", beside (not inside) our own install,
# which the build step above removes on every rebuild.
setup_upstream() {
  local src="$repo/../shared/ros2-upstream" uws="$ws/upstream"
  local ustamp="$uws/.lingbot-upstream" uwant ci="$uws/install/composition_interfaces"
  [ -f "$src/install.sh" ] || return 0
  export LD_LIBRARY_PATH="$ci/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export PYTHONPATH="$ci/lib/python$(python -c "import sys;print(f\"{sys.version_info[0]}.{sys.version_info[1]}\")")/site-packages${PYTHONPATH:+:$PYTHONPATH}"
  export AMENT_PREFIX_PATH="$ci${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
  uwant=$(cat "$src/install.sh" "$src/README.md" | sha256sum | cut -c1-16)
  local mods='launch, launch_ros, ros2launch, ros2cli, message_filters, sensor_msgs_py, cv_bridge, composition_interfaces.srv'
  # Importable already (a ROS install, or this step done before) and not stale: nothing to do.
  local why
  if why=$(python -c "import $mods" 2>&1); then
    if [ ! -d "$uws/install" ] || [ "$(cat "$ustamp" 2>/dev/null)" = "$uwant" ]; then
      return 0
    fi
    why="../shared/ros2-upstream changed"
  fi
  echo "upstream test tier: installing from ../shared/ros2-upstream (${why##*$'\n'})" >&2
  # From scratch: install.sh builds a new temporary copy of the sources, and CMake refuses a
  # build folder configured for an earlier copy, which install.sh has deleted.
  rm -rf "$uws/build" "$uws/install" "$uws/log"
  mkdir -p "$uws"
  bash "$src/install.sh" "$venv/bin/python" "$uws" > "$uws.log" 2>&1 || { cat "$uws.log"; exit 1; }
  echo "$uwant" > "$ustamp"
}

cmd=${1:-demo}
shift || true
case "$cmd" in
  setup) setup ;;
  demo)
    setup
    python -m lingbot_depth_ros.cli demo "$@" ;;
  test)
    setup
    python -m ruff check --quiet . || { echo "lint failed (ruff.toml); fix the lines above" >&2; exit 1; }
    python -m pytest -q "$@" ;;
  lingbot-depth)
    setup
    exec python scripts/lingbot-depth "$@" ;;
  lingbot_depth_node)
    setup
    exec python scripts/lingbot_depth_node "$@" ;;
  bench)
    setup
    for b in benchmarks/bench_*.py; do echo "== $b"; python "$b" "$@"; done ;;
  *) echo "usage: ./run.sh demo|test|bench|setup|lingbot-depth|lingbot_depth_node [args]" >&2; exit 2 ;;
esac
