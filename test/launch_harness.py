"""A real `ros2 launch` of the package's launch file in a subprocess, for the upstream tier.

Needs the upstream ROS 2 Python packages (launch, launch_ros, ros2launch, ros2cli) and the
package in the ament index (colcon install): `./run.sh test` provides both from
../shared/ros2-upstream; a ROS install provides them on a robot. Importing this module
skips the importing test module where they are absent.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

for _module in ("launch", "launch_ros", "ros2launch", "composition_interfaces"):
    pytest.importorskip(_module, reason=f"{_module} is not installed: no ROS 2 install and no "
                                        "../shared/ros2-upstream (./run.sh installs it)")
if shutil.which("ros2") is None:
    pytest.skip("the ros2 command (ros2cli) is not on PATH", allow_module_level=True)
try:
    from ament_index_python.packages import get_package_share_directory

    get_package_share_directory("lingbot_depth_ros")
except Exception:  # noqa: BLE001 - PackageNotFoundError, or no ament_index_python
    pytest.skip("lingbot_depth_ros is not in the ament index (colcon build: ./run.sh does it)",
                allow_module_level=True)

from node_harness import domain_id, make_context, rclpy  # noqa: E402
from rcl_interfaces.srv import GetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import parameter_value_to_python  # noqa: E402

#: the node's last start-up line (ros/node_process.py logs the DDS note after it is built)
READY = "Fast DDS:"
LAUNCH_FILE = "lingbot_depth.launch.py"


def launch_env(module_name: str, **extra: str) -> dict:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain_id(module_name)),
               ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1", **extra)
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the launch file's default applies
    return env


class Launch:
    """`ros2 launch lingbot_depth_ros lingbot_depth.launch.py ARGS` in its own process group
    (as a terminal runs it), its output collected line by line."""

    def __init__(self, module_name: str, *arguments: str, ready_count: int = 1,
                 launch_file: str = LAUNCH_FILE) -> None:
        self.command = ["ros2", "launch", "lingbot_depth_ros", launch_file, *arguments]
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True,
                                        env=launch_env(module_name), start_new_session=True)
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for(READY, count=ready_count)

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 90.0, count: int = 1) -> None:
        def seen() -> bool:
            return sum(text in line for line in self.lines) >= count or self.process.poll() is not None

        with self._cond:
            self._cond.wait_for(seen, timeout)
            if sum(text in line for line in self.lines) < count:
                self.kill()
                raise AssertionError(f"'{text}' x{count} not seen from {' '.join(self.command)}:\n"
                                     + "\n".join(self.lines[-40:]))

    def interrupt(self, timeout: float = 60.0) -> int:
        """Ctrl-C as a terminal sends it (SIGINT to the whole process group); the exit code."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(5.0)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)


def unclean_shutdown_lines(output: str) -> list[str]:
    """What a clean Ctrl-C never prints."""
    bad = ("Traceback", "KeyboardInterrupt", "process has died", "Failed to publish log message")
    return [line for line in output.splitlines() if any(b in line for b in bad)]


class ParameterReader:
    """Reads a node's parameters through its own service (rcl_interfaces/srv/GetParameters)."""

    def __init__(self, module_name: str) -> None:
        self.context = make_context(module_name)
        self.node = rclpy.create_node("parameter_reader", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)

    def get(self, node_name: str, names: list[str], timeout: float = 30.0) -> dict:
        client = self.node.create_client(GetParameters, f"{node_name}/get_parameters")
        try:
            if not client.wait_for_service(timeout_sec=timeout):
                raise AssertionError(f"{node_name}/get_parameters did not appear")
            future = client.call_async(GetParameters.Request(names=names))
            deadline = time.monotonic() + timeout
            while not future.done() and time.monotonic() < deadline:
                self.executor.spin_once(timeout_sec=0.1)
            assert future.done(), f"{node_name}/get_parameters did not answer"
            values = future.result().values
            return {n: parameter_value_to_python(v) for n, v in zip(names, values)}
        finally:
            self.node.destroy_client(client)

    def topics_of(self, node_name: str, namespace: str) -> tuple[set, set]:
        """(published, subscribed) topic names of a node, from the ROS graph."""
        deadline = time.monotonic() + 10.0
        while True:
            try:
                pubs = self.node.get_publisher_names_and_types_by_node(node_name, namespace)
                subs = self.node.get_subscriber_names_and_types_by_node(node_name, namespace)
                return {n for n, _ in pubs}, {n for n, _ in subs}
            except Exception:  # noqa: BLE001 - NodeNameNonExistentError until discovered
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
