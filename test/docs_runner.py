"""Runs the docs' shell commands for test/test_docs.py (the convention: docs/contributing.md).

A command that exits runs under bash in a scratch copy of the clone and must exit 0. A command
that stays running (`ros2 run`, `ros2 launch`, `lingbot_depth_node`) runs beside a driver
stand-in (test/driver_standin.py) publishing its preset's topics in that driver's default
namespace; it must publish completed depth on `/<namespace>/depth_completed`, then exit 0 on
SIGINT. The environment is a sourced workspace's: the package's install bin/ on PATH.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from docs_commands import DocCommand

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
#: seconds one command that exits may take (the quick start's demo is the longest)
COMMAND_TIMEOUT_S = 600
#: completed frames a long-running command must publish before it is stopped
FRAMES_WANTED = 3
LONG_RUNNING = re.compile(r"^(ros2 (run|launch)|lingbot_depth_node)\b")
CAMERA_ALIASES = {"realsense": "realsense_d435i", "orbbec": "orbbec_gemini335", "zed": "zed2i"}


def _install_prefix() -> Path | None:
    try:
        from ament_index_python.packages import get_package_prefix

        return Path(get_package_prefix("lingbot_depth_ros"))
    except Exception:  # noqa: BLE001 - no ament index, or the package is not in it
        return None


PREFIX = _install_prefix()


def scratch_clone(dest: Path) -> Path:
    """The clone's tracked and new (not ignored) files, copied to `dest`."""
    listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others",
                             "--exclude-standard"], capture_output=True, check=False)
    if listed.returncode == 0:
        names = [n for n in listed.stdout.decode().split("\0") if n]
    else:  # an export without .git: everything but build outputs
        skip = {".git", ".venv", ".ws", "out", "__pycache__"}
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not skip & set(p.relative_to(ROOT).parts)]
    for name in names:
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


def command_env(folder: Path, domain: int) -> dict:
    """The test's environment as a sourced workspace has it: the package's bin/ on PATH; run.sh
    in the scratch clone reuses this venv and this build (its own workspace folder, linked)."""
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1",
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", LINGBOT_VENV=sys.prefix)
    # A doc line writes nothing outside the scratch area: `~` is a scratch folder, and pip
    # reaches no index (an install line fails, and must be marked not-run, instead of
    # changing the venv the suite runs in).
    home = folder.parent / f"{folder.name}.home"
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), PIP_NO_INDEX="1", PIP_FIND_LINKS="", PIP_CONFIG_FILE=os.devnull)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if PREFIX is not None:
        env["PATH"] = f"{PREFIX / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        ws = PREFIX.parents[1]  # <ws>/install/lingbot_depth_ros
        scratch_ws = folder.parent / f"{folder.name}.ws"
        if not scratch_ws.exists() and (ws / ".lingbot-build").exists():
            scratch_ws.mkdir()
            shutil.copy2(ws / ".lingbot-build", scratch_ws / ".lingbot-build")
            # a link: run.sh replaces (never empties) it if the build stamp ever differs
            (scratch_ws / "install").symlink_to(ws / "install")
        env["LINGBOT_WS"] = str(scratch_ws)
        shim = _ros2_run_shim(folder.parent / f"{folder.name}.bin")
        if shim is not None:
            env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    return env


@functools.lru_cache(maxsize=None)
def _has_run_verb(ros2: str) -> bool:
    return subprocess.run([ros2, "run", "-h"], capture_output=True, timeout=60).returncode == 0


#: what `ros2 run PKG EXE ARGS` does (ros2run: exec the package's lib/PKG/EXE with ARGS), for
#: where ros2cli's `run` verb is not installed (the PyPI/upstream set-up has ros2cli, ros2pkg
#: and ros2launch only); every other verb goes to the real ros2
_ROS2_RUN = """#!/usr/bin/env bash
if [ "$1" = run ]; then
  shift; pkg=$1 exe=$2; shift 2
  prefix=$({ros2} pkg prefix "$pkg") || exit 1
  exec "$prefix/lib/$pkg/$exe" "$@"
fi
exec {ros2} "$@"
"""


def _ros2_run_shim(folder: Path) -> Path | None:
    """A folder whose `ros2` adds the `run` verb, or None where ros2 has it (or is absent)."""
    real = shutil.which("ros2")
    if real is None or _has_run_verb(real):
        return None
    folder.mkdir(exist_ok=True)
    (folder / "ros2").write_text(_ROS2_RUN.format(ros2=real))
    (folder / "ros2").chmod(0o755)
    return folder


def run_command(command: DocCommand, folder: Path, env: dict) -> None:
    """Raises AssertionError naming the doc line when the command fails."""
    where = f"{command.doc}:{command.line}: `{command.text}`"
    if LONG_RUNNING.match(command.text):
        run_beside_driver(command, folder, env, where)
        return
    try:
        done = subprocess.run(["bash", "-c", f"set -eo pipefail\n{checked(command.text)}"],
                              cwd=folder,
                              env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{where} ran past {COMMAND_TIMEOUT_S} s") from None
    if done.returncode != 0:
        raise AssertionError(f"{where} exited {done.returncode}:\n{_tail(done.stdout + done.stderr)}")


def checked(text: str) -> str:
    """`text` as bash runs it, with what bash would let pass made to fail: `export NAME=$(cmd)`
    exits 0 even when cmd fails, so the assignment runs on its own (its status is cmd's), and
    an exported absolute path must exist."""
    match = re.fullmatch(r"export (\w+)=(.+)", text.strip(), re.S)
    if match is None:
        return text
    name = match.group(1)
    return (f"{name}={match.group(2)}\nexport {name}\n"
            f'case "${name}" in /*) test -e "${name}" || {{ echo "no such path: ${name}" >&2; '
            f"exit 1; }};; esac")


def driver_for(text: str) -> tuple[str, str]:
    """(preset, namespace) of the driver a node command expects: the preset from its params
    file or camera:= argument, the namespace the driver publishes in by default."""
    from driver_topics import DRIVERS

    found = re.search(r"config/(\w+)\.yaml", text) or re.search(r"\bcamera:=(\w+)", text)
    if found is None:
        raise AssertionError("names no preset (config/<preset>.yaml or camera:=); mark it not-run "
                             "or give it one")
    preset = CAMERA_ALIASES.get(found.group(1), found.group(1))
    if preset not in DRIVERS:
        raise AssertionError(f"no driver stand-in for preset '{preset}'")
    return preset, DRIVERS[preset].namespace


def run_beside_driver(command: DocCommand, folder: Path, env: dict, where: str,
                      while_running=None, preset: str | None = None,
                      outputs: str | None = None, timeout_s: float = 90.0) -> str:
    """Run a node command beside its driver stand-in until it completed FRAMES_WANTED frames
    (on `outputs`, default /<namespace>/depth_completed), call `while_running(listener_node)`
    (a test's own checks), stop it with SIGINT; returns its output. Raises AssertionError when
    it completes too few frames or stops badly. `preset`: the driver, else from the command."""
    from driver_topics import DRIVERS

    try:
        preset, namespace = (preset, DRIVERS[preset].namespace) if preset else driver_for(command.text)
    except AssertionError as exc:
        raise AssertionError(f"{where} {exc}") from None
    outputs = outputs or f"/{namespace}/depth_completed"
    driver = subprocess.Popen([sys.executable, str(HERE / "driver_standin.py"), env["ROS_DOMAIN_ID"],
                               preset, namespace, "10"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    node = subprocess.Popen(["bash", "-c", f"exec {command.text}"], cwd=folder, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(node.stdout), daemon=True)
    reader.start()
    try:
        received = _count_outputs(outputs, int(env["ROS_DOMAIN_ID"]), node, timeout_s, while_running)
        if received < FRAMES_WANTED:
            raise AssertionError(
                f"{where} completed {received} frames on {outputs} from a {preset} driver "
                f"stand-in in /{namespace} (wanted {FRAMES_WANTED}); exit "
                f"{node.poll()}:\n{_tail(''.join(lines))}")
        os.killpg(node.pid, signal.SIGINT)  # Ctrl-C in its terminal
        try:
            rc = node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{where} did not stop within 30 s of SIGINT") from None
        reader.join(timeout=5)
        if rc != 0:
            raise AssertionError(f"{where} exited {rc} on SIGINT:\n{_tail(''.join(lines))}")
        return "".join(lines)
    finally:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()
        driver.send_signal(signal.SIGINT)
        try:
            driver.wait(timeout=10)
        except subprocess.TimeoutExpired:
            driver.kill()
            driver.wait()


def _count_outputs(topic: str, domain: int, node: subprocess.Popen, timeout_s: float,
                   while_running=None) -> int:
    """Completed depth images received on `topic` until FRAMES_WANTED came, the node exited
    or `timeout_s` passed; then `while_running(listener)` where frames came."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    received = []
    try:
        listener = rclpy.create_node("docs_listener", context=context)
        listener.create_subscription(Image, topic, received.append,
                                     QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(listener)
        deadline = time.monotonic() + timeout_s
        while len(received) < FRAMES_WANTED and node.poll() is None and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.2)
        if while_running is not None and len(received) >= FRAMES_WANTED:
            while_running(listener)
        executor.shutdown()
        listener.destroy_node()
    finally:
        context.try_shutdown()
    return len(received)


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
