"""One node for a rig of three cameras over real DDS: three driver stand-ins with different
presets (RealSense D435i rgb8 + 16UC1 mm, ZED 2i bgra8 + 32FC1 m, Orbbec Gemini 335) and
sizes (640x480, 320x240), each in its own namespace. Each camera's outputs carry its own
stamps and frame ids, each camera has its own status in /diagnostics whose counters add up,
and a camera that stops or sends garbage changes only its own counters and status."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from node_harness import RELIABLE, Capture, _spin, accounting, domain_id, rclpy
from driver_topics import DRIVERS, DriverPlayer
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from sensor_msgs.msg import Image

from lingbot_depth_ros.ros.diagnostics import parse_values
from lingbot_depth_ros.ros.node import LingbotDepthNode

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "/cell"
#: camera -> (preset, scale of the 640x480 capture)
RIG = {"wrist": ("realsense_d435i", 1), "scene": ("zed2i", 1), "side": ("orbbec_gemini335", 2)}
PERIOD_NS = 100_000_000
FRAMES = 6


def rig_parameters(**extra) -> list[Parameter]:
    values = {"cameras": list(RIG), "admission": "every", "engine": "nearest",
              "batch_window_ms": 20.0, "health_timeout": 1.5, "diagnostics_period": 0.3, **extra}
    for name, (preset, _) in RIG.items():
        values[f"{name}.preset"] = preset
    return [Parameter(k, value=v) for k, v in values.items()]


def hardware_id(camera: str) -> str:
    return f"{NAMESPACE}/{camera}/lingbot_depth_node"


class RigDrivers:
    """One node publishing the three cameras as their drivers do, each with frame ids and
    stamps of its own, and recording every camera's depth_completed and /diagnostics."""

    def __init__(self, context, capture: Capture) -> None:
        self.node = rclpy.create_node("rig_drivers", context=context)
        self.players: dict[str, DriverPlayer] = {}
        self.received: dict[str, list] = defaultdict(list)
        self.statuses: dict[str, list] = defaultdict(list)
        self._cond = threading.Condition()
        for index, (name, (preset, scale)) in enumerate(RIG.items()):
            K = capture.K.copy()
            K[:2] /= scale
            player = DriverPlayer(self.node, DRIVERS[preset], capture.rgb[::scale, ::scale].copy(),
                                  capture.raw_depth[::scale, ::scale].copy(), K,
                                  namespace=f"{NAMESPACE}/{name}")
            for msg in (player.color, player.depth, player.info):
                msg.header.frame_id = f"{name}_color_optical_frame"
            self.players[name] = player
            self.node.create_subscription(Image, f"{NAMESPACE}/{name}/depth_completed",
                                          self._recorder(name), RELIABLE)
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)

    def _recorder(self, name: str):
        def record(msg: Image) -> None:
            with self._cond:
                self.received[name].append(msg)
                self._cond.notify_all()
        return record

    def _on_diagnostics(self, array: DiagnosticArray) -> None:
        with self._cond:
            for status in array.status:
                self.statuses[status.hardware_id].append(status)
            self._cond.notify_all()

    def stamp(self, name: str, i: int) -> int:
        return 1_700_000_000_000_000_000 + list(RIG).index(name) * 1_000_000 + i * PERIOD_NS

    def send(self, names, frames: int, start: int = 0) -> None:
        for i in range(start, start + frames):
            for name in names:
                self.players[name].publish(self.stamp(name, i))
            time.sleep(PERIOD_NS / 1e9)

    def wait_for(self, predicate, timeout: float = 30.0, what: str = "condition") -> None:
        with self._cond:
            if not self._cond.wait_for(predicate, timeout):
                raise AssertionError(f"timed out waiting for {what}; outputs "
                                     f"{ {k: len(v) for k, v in self.received.items()} }")

    def latest(self, camera: str, after: int = 0) -> DiagnosticStatus:
        """The newest status of `camera` among the ones after the first `after`."""
        self.wait_for(lambda: len(self.statuses[hardware_id(camera)]) > after, 10, f"status of {camera}")
        with self._cond:
            return self.statuses[hardware_id(camera)][-1]

    def settled(self, camera: str, published: int, timeout: float = 30.0) -> dict[str, str]:
        """The first status of `camera` that shows `published` frames and nothing queued."""
        def done() -> bool:
            values = self._values(camera)
            return bool(values) and int(values["published"]) + int(values["dropped_total"]) // 2 \
                >= published and values["queued"] == "0"
        self.wait_for(done, timeout, f"{camera} to settle at {published}")
        with self._cond:
            return self._values(camera)

    def _values(self, camera: str) -> dict[str, str]:
        statuses = self.statuses[hardware_id(camera)]
        return parse_values(DiagnosticArray(status=[statuses[-1]])) if statuses else {}


@pytest.fixture(scope="module")
def rig(context):
    node = LingbotDepthNode(context=context, namespace=NAMESPACE, parameter_overrides=rig_parameters())
    drivers = RigDrivers(context, Capture(0))
    executors = []
    for each in (node, drivers.node):
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(each)
        thread = threading.Thread(target=_spin, args=(executor,), daemon=True)
        thread.start()
        executors.append((executor, thread))
    publishers = [p for player in drivers.players.values() for p in player.publishers()]
    deadline = time.monotonic() + 20
    while not all(p.get_subscription_count() > 0 for p in publishers):
        assert time.monotonic() < deadline, "DDS discovery between drivers and rig did not complete"
        time.sleep(0.05)
    yield node, drivers
    for executor, thread in executors:
        executor.shutdown(timeout_sec=5.0)
        thread.join(timeout=5.0)
    node.destroy_node()
    drivers.node.destroy_node()


def test_each_camera_outputs_its_own_frames_under_its_namespace(rig):
    node, drivers = rig
    assert [c.name for c in node.cameras] == list(RIG)
    drivers.send(list(RIG), FRAMES)
    drivers.wait_for(lambda: all(len(drivers.received[n]) >= FRAMES for n in RIG), 60,
                     "every camera's outputs")
    for name, (_, scale) in RIG.items():
        msgs = drivers.received[name][:FRAMES]
        stamps = [m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec for m in msgs]
        assert stamps == [drivers.stamp(name, i) for i in range(FRAMES)], name
        assert {m.header.frame_id for m in msgs} == {f"{name}_color_optical_frame"}
        assert {(m.width, m.height) for m in msgs} == {(640 // scale, 480 // scale)}
        depth = np.frombuffer(bytes(msgs[0].data), np.float32)
        assert np.isfinite(depth).mean() > 0.99  # completed, whatever the input's units
    for name in RIG:
        values = drivers.settled(name, FRAMES)
        received, accounted = accounting(values)
        assert received == accounted == 2 * FRAMES, (name, values)
        assert values["published"] == str(FRAMES) and values["dropped_total"] == "0"
        assert values["camera"] == name and values["preset"] == RIG[name][0]
    # the two 640x480 cameras share engine calls; the 320x240 one is a shape of its own
    assert node.runner.calls.get(2, 0) + node.runner.calls.get(3, 0) >= 1, node.runner.calls


def test_a_camera_sending_garbage_changes_only_its_own_counters(rig):
    node, drivers = rig
    before = {name: drivers.settled(name, 0) for name in RIG}
    scene = drivers.players["scene"]
    good = scene.color.encoding
    scene.color.encoding = "16UC1"  # a depth encoding on the colour topic
    try:
        drivers.send(list(RIG), 3, start=100)
    finally:
        scene.color.encoding = good
    for name in RIG:
        sent = int(before[name]["published"]) + int(before[name]["dropped_total"]) // 2 + 3
        values = drivers.settled(name, sent)
        received, accounted = accounting(values)
        assert received == accounted, (name, values)
        if name == "scene":
            assert int(values["dropped.bad_encoding"]) - int(before[name].get("dropped.bad_encoding", 0)) == 6
            assert values["published"] == before[name]["published"]
        else:
            assert values["dropped_total"] == before[name]["dropped_total"], (name, values)
            assert int(values["published"]) == int(before[name]["published"]) + 3


def test_a_camera_that_stops_goes_stale_alone(rig):
    node, drivers = rig
    drivers.send(["wrist", "side"], 1, start=200)
    time.sleep(0.2)
    # scene sends nothing from now on; the others keep on
    deadline = time.monotonic() + 30
    i = 201
    while True:
        drivers.send(["wrist", "side"], 1, start=i)
        i += 1
        stale = drivers.latest("scene").level == DiagnosticStatus.STALE
        if stale or time.monotonic() > deadline:
            break
    assert stale, drivers.latest("scene")
    drivers.send(["wrist", "side"], 3, start=i)
    for name in ("wrist", "side"):
        status = drivers.latest(name)
        assert status.level != DiagnosticStatus.STALE, (name, status.message)
    assert "no input" in drivers.latest("scene").message


def test_a_rig_process_stops_cleanly_on_sigint_and_sigterm(tmp_path):
    params = tmp_path / "rig.yaml"
    params.write_text("/**/lingbot_depth_node:\n  ros__parameters:\n"
                      "    cameras: [wrist, scene]\n"
                      "    wrist: {preset: realsense_d435i}\n    scene: {preset: zed2i}\n")
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id(__name__ + "proc")),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "PYTHONUNBUFFERED": "1"}
    for signum, code in ((signal.SIGINT, 0), (signal.SIGTERM, 143)):
        process = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "lingbot_depth_node"),
                                    "--ros-args", "--params-file", str(params)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Fast DDS" in line:
                break
        process.send_signal(signum)
        out, _ = process.communicate(timeout=30)
        text = "".join(lines) + out
        assert process.returncode == code, text
        assert "Traceback" not in text
        assert "/wrist/depth_completed" in text and "/scene/depth_completed" in text
        assert "engine guided closed" in text


def test_a_bad_rig_stops_the_node_with_one_line_naming_the_camera(tmp_path):
    params = tmp_path / "bad_rig.yaml"
    params.write_text("/**/lingbot_depth_node:\n  ros__parameters:\n"
                      "    cameras: [wrist, scene]\n    wrist: {preset: kinect}\n")
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain_id(__name__ + "bad")),
           "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "lingbot_depth_node"), "--ros-args",
                          "--params-file", str(params)], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 2, run.stderr
    lines = [line for line in run.stderr.splitlines() if "cannot start" in line]
    assert len(lines) == 1 and "camera 'wrist': unknown camera preset 'kinect'" in lines[0], run.stderr
    assert "realsense_d435i" in lines[0] and "Traceback" not in run.stderr
