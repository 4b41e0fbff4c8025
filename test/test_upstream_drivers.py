"""Driver conformance: each preset against what its driver publishes (test/driver_topics.py,
read from the drivers' sources; docs/drivers.md). The node runs under a real `ros2 launch`
with the preset; this process plays the driver's topic layout, encodings and default QoS
(reliable, without the large-data DDS profile) at 30 Hz, 640x480, and every pair sent must
be received and then published or counted as dropped (/diagnostics). Two cameras run as two
launches in their own namespaces."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
import yaml

from launch_harness import Launch, unclean_shutdown_lines
from node_harness import Capture, make_context, rclpy
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from diagnostics_values import parse_values
from driver_topics import DRIVERS, DriverPlayer

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 60
RATE_HZ = 30.0


def preset(name: str) -> dict:
    document = yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())
    return document["/**/lingbot_depth_node"]["ros__parameters"]


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_preset_names_what_the_driver_publishes(name):
    layout, values = DRIVERS[name], preset(name)
    assert values["color_topic"] == layout.color_topic
    assert values["depth_topic"] == layout.depth_topic
    assert values["camera_info_topic"] == layout.info_topic
    assert not any(values[k].startswith("/") for k in ("color_topic", "depth_topic",
                                                       "camera_info_topic"))
    assert values["qos"] in ("reliable", "auto")  # the drivers publish reliable
    if layout.depth_encoding == "16UC1":
        assert values["depth_scale"] == 0.001  # millimetres


class Camera:
    """A driver's publishers and a consumer of the node's outputs, in one probe node."""

    def __init__(self, node, name: str, namespace: str | None = None, frame_id: str = "") -> None:
        capture = Capture(0)
        layout = DRIVERS[name]
        if frame_id:
            layout = type(layout)(**{**layout.__dict__, "frame_id": frame_id})
        self.player = DriverPlayer(node, layout, capture.rgb, capture.raw_depth, capture.K,
                                   namespace=namespace)
        self.namespace = "/" + (layout.namespace if namespace is None else namespace).strip("/")
        self.hardware_id = f"{self.namespace}/lingbot_depth_node"
        self.outputs: list[Image] = []
        node.create_subscription(Image, f"{self.namespace}/depth_completed", self.outputs.append,
                                 QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))


class Probe:
    def __init__(self) -> None:
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the driver side has no profile
        self.context = make_context(__name__)
        self.node = rclpy.create_node("driver_probe", context=self.context)
        self.diagnostics: dict[str, dict] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 50)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:  # noqa: BLE001 - shut down under it
            pass

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = parse_values(DiagnosticArray(status=[status]))
            if values:
                self.diagnostics[status.hardware_id] = values

    def wait_matched(self, cameras: list[Camera], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        pubs = [p for c in cameras for p in c.player.publishers()]
        while not all(p.get_subscription_count() > 0 for p in pubs):
            assert time.monotonic() < deadline, "the node's subscriptions did not match"
            time.sleep(0.05)

    def play(self, cameras: list[Camera], frames: int, rate_hz: float) -> None:
        start = time.monotonic()
        stamp0 = time.time_ns()
        for i in range(frames):
            time.sleep(max(0.0, start + i / rate_hz - time.monotonic()))
            for camera in cameras:
                camera.player.publish(stamp0 + int(i * 1e9 / rate_hz))

    def warm_up(self, cameras: list[Camera], timeout: float = 30.0) -> dict[str, dict]:
        """Frames until each node has received all three streams (discovery is complete on
        its side too: a driver's stream before that is not the node's to lose), then the
        counters each node has settled at."""
        for camera in cameras:  # a node of an earlier test had the same name
            self.diagnostics.pop(camera.hardware_id, None)
        deadline = time.monotonic() + timeout
        stamp = time.time_ns() - 10**9
        pending = list(cameras)
        while pending:
            assert time.monotonic() < deadline, "the node did not receive the warm-up frames"
            for camera in pending:
                camera.player.publish(stamp)
            stamp += int(1e9 / RATE_HZ)
            time.sleep(1 / RATE_HZ)
            pending = [c for c in pending if not all(
                int(self.diagnostics.get(c.hardware_id, {}).get(f"{k}_received", 0)) > 0
                for k in ("color", "depth", "camera_info"))]
        return {c.hardware_id: self.settled(c, {}, 0) for c in cameras}

    def settled(self, camera: Camera, before: dict, frames: int, timeout: float = 90.0) -> dict:
        """The node's counters minus `before` once none is queued and either both streams'
        `frames` more images are in or no more have come for 3 s (some were lost)."""
        counters = ("color_received", "depth_received", "published", "dropped_total")
        deadline = time.monotonic() + timeout
        last, changed_at = None, time.monotonic()
        while time.monotonic() < deadline:
            values = self.diagnostics.get(camera.hardware_id)
            if values:
                delta = {k: int(values[k]) - int(before.get(k, 0)) for k in counters}
                received = delta["color_received"] + delta["depth_received"]
                if received != last:
                    last, changed_at = received, time.monotonic()
                still = time.monotonic() - changed_at
                # a warm-up (frames 0) settles once its last images are in: 1 s without change
                if int(values["queued"]) == 0 and (received >= 2 * frames if frames else still > 1.0) \
                        or (int(values["queued"]) == 0 and still > 3.0):
                    return delta
            time.sleep(0.1)
        values = self.diagnostics.get(camera.hardware_id) or {}
        raise AssertionError(f"{camera.hardware_id} did not settle: {values}")

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture(scope="module")
def probe():
    probe = Probe()
    yield probe
    probe.close()


def assert_every_pair_accounted(delta: dict, frames: int, outputs: list, before: int) -> int:
    """Every image the node received is published or counted as dropped (asserted: the node's
    own accounting); returns how many images DDS lost on the way: of the 2 x `frames` sent
    before reaching the node, plus published depth images that never reached the probe (its
    executor shares this process with the camera players and can lag behind the node's
    reliable KEEP_LAST output history on a loaded machine)."""
    received = delta["color_received"] + delta["depth_received"]
    assert 2 * delta["published"] + delta["dropped_total"] == received, delta
    assert delta["published"] >= 1, delta
    deadline = time.monotonic() + 10.0
    while len(outputs) - before < delta["published"] and time.monotonic() < deadline:
        time.sleep(0.1)  # the last outputs on their way
    arrived = len(outputs) - before
    assert arrived <= delta["published"], (arrived, delta)  # no output the node did not count
    # A warm-up image that reaches the node after the warm-up's counters were read lands in
    # this window (seen once in a full run: 121 of 120), so the shortfall is at least 0.
    return max(0, 2 * frames - received) + (delta["published"] - arrived)


def expect_nothing_lost_in_transport(lost: int, frames: int, name: str) -> None:
    """Images the DDS link lost before the node could see (or count) them: with the driver's
    default QoS and no large-data profile on its side the publisher's transport loses them,
    for an idle subscriber too, and nothing a subscriber sets prevents it (docs/drivers.md).
    Reported as an expected failure with the count, not asserted away."""
    if lost:
        pytest.xfail(f"{name}: {lost} images lost in DDS transport (of {2 * frames} sent to the "
                     "node, or published depth that never reached the probe; driver-default QoS, "
                     "no large-data profile on the driver's side)")


def stop(launch: Launch) -> None:
    code = launch.interrupt()
    assert code == 0 and not unclean_shutdown_lines(launch.output), launch.output


@pytest.mark.parametrize("name", sorted(DRIVERS))
def test_driver_stream_at_30_hz_is_published_or_counted(probe, name):
    launch = Launch(__name__, f"camera:={name}")  # the driver's default namespace
    try:
        camera = Camera(probe.node, name)
        probe.wait_matched([camera])
        before = probe.warm_up([camera])[camera.hardware_id]
        time.sleep(0.5)  # the warm-up's outputs on their way
        outputs_before = len(camera.outputs)
        probe.play([camera], FRAMES, RATE_HZ)
        delta = probe.settled(camera, before, FRAMES)
        time.sleep(0.5)  # the last outputs on their way
        lost = assert_every_pair_accounted(delta, FRAMES, camera.outputs, outputs_before)
        assert all(m.header.frame_id == DRIVERS[name].frame_id for m in camera.outputs)
        expect_nothing_lost_in_transport(lost, FRAMES, name)
    finally:
        stop(launch)


def test_two_cameras_one_launch_each(probe):
    names = ("cam_left", "cam_right")
    launches = [Launch(__name__, "camera:=realsense", f"namespace:={n}") for n in names]
    try:
        cameras = [Camera(probe.node, "realsense_d435i", namespace=n, frame_id=f"{n}_color_optical_frame")
                   for n in names]
        probe.wait_matched(cameras)
        before = probe.warm_up(cameras)
        time.sleep(0.5)
        outputs_before = [len(c.outputs) for c in cameras]
        probe.play(cameras, FRAMES // 2, RATE_HZ)
        lost = 0
        for camera, n, out0 in zip(cameras, names, outputs_before):
            # its own frames only, not the other's
            delta = probe.settled(camera, before[camera.hardware_id], FRAMES // 2)
            time.sleep(0.5)
            lost += assert_every_pair_accounted(delta, FRAMES // 2, camera.outputs, out0)
            assert {m.header.frame_id for m in camera.outputs} == {f"{n}_color_optical_frame"}
            assert delta["color_received"] <= FRAMES // 2  # nothing of the other camera's
        expect_nothing_lost_in_transport(lost, FRAMES, "two cameras")
    finally:
        for launch in launches:
            stop(launch)
