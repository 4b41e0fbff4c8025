"""`qos: auto` over real DDS: the input subscriptions follow the camera's reliability, so a
reliable and a best-effort camera both get every frame through with the default settings,
and a burst of 640x480 images from another process without the large-data profile arrives."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node_harness import (Running, accounting, domain_id, rclpy)
from lingbot_depth_ros.ros.input_qos import BEST_EFFORT, RELIABLE, followed_policy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

SECOND = 1_000_000_000
FRAMES = 8
IMAGE_TOPICS = ("color/image_raw", "depth/image_raw", "color/camera_info")


def test_followed_policy():
    assert followed_policy([], RELIABLE) == RELIABLE  # nothing known yet: keep
    assert followed_policy([], BEST_EFFORT) == BEST_EFFORT
    assert followed_policy([RELIABLE, RELIABLE], BEST_EFFORT) == RELIABLE
    assert followed_policy([RELIABLE, BEST_EFFORT], RELIABLE) == BEST_EFFORT  # matches both


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def send_each_and_wait(running, captures, publish, start_s: int) -> None:
    """Publish FRAMES pairs, each after the previous one's output (so none is superseded)."""
    for i in range(FRAMES):
        stamp = (start_s + i) * SECOND
        capture = captures[i % len(captures)]
        publish(capture.info_msg(stamp), capture.color_msg(stamp), capture.depth_msg(stamp))
        running.probe.wait_outputs("depth_completed", i + 1, timeout=30)


def assert_every_frame_through(running) -> None:
    running.wait_idle()
    values = running.diagnostics()
    assert values["color_received"] == values["depth_received"] == str(FRAMES)
    assert values["published"] == str(FRAMES) and values["dropped_total"] == "0"
    received, accounted = accounting(values)
    assert received == accounted


def test_reliable_camera_is_subscribed_reliable_and_loses_nothing(context, captures):
    running = Running(context, namespace="/qos_reliable")  # every parameter at its default
    try:
        assert running.node.config.qos == "auto"
        policies = {t: running.node.inputs.policy[t] for t in IMAGE_TOPICS}
        assert set(policies.values()) == {RELIABLE}, policies
        probe = running.probe

        def publish(info, color, depth):
            probe.send(color, depth, info)

        send_each_and_wait(running, captures, publish, start_s=10)
        assert_every_frame_through(running)
        values = running.diagnostics()
        assert values["qos./qos_reliable/color/image_raw"] == "reliable"
    finally:
        running.close()


def test_best_effort_camera_appearing_later_is_followed(context, captures):
    # The probe's own (reliable) publishers go elsewhere: the camera below is the only one.
    elsewhere = {k: f"unused/{k}" for k in ("color", "depth", "info")}
    running = Running(context, namespace="/qos_best_effort", topics=elsewhere, connect=False)
    camera = rclpy.create_node("best_effort_camera", context=context, namespace="/qos_best_effort")
    try:
        # No publisher yet: reliable, as the drivers publish.
        assert running.node.inputs.policy["color/image_raw"] == RELIABLE
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT)
        info_pub = camera.create_publisher(CameraInfo, "color/camera_info", qos)
        color_pub = camera.create_publisher(Image, "color/image_raw", qos)
        depth_pub = camera.create_publisher(Image, "depth/image_raw", qos)
        pubs = (info_pub, color_pub, depth_pub)
        # A reliable reader never matches these writers: the node must re-subscribe.
        wait_until(lambda: all(p.get_subscription_count() > 0 for p in pubs), 20,
                   "the node to subscribe best effort")
        assert {running.node.inputs.policy[t] for t in IMAGE_TOPICS} == {BEST_EFFORT}
        wait_until(lambda: running.node.depth_pub.get_subscription_count() > 0, 20, "outputs")

        def publish(info, color, depth):
            info_pub.publish(info)
            color_pub.publish(color)
            depth_pub.publish(depth)

        send_each_and_wait(running, captures, publish, start_s=20)
        assert_every_frame_through(running)
        values = running.diagnostics()
        assert values["qos./qos_best_effort/depth/image_raw"] == "best_effort"
    finally:
        camera.destroy_node()
        running.close()


def test_burst_from_another_process_without_large_data_profile_arrives(context):
    """640x480 at 30 Hz from a driver process without config/fastdds_large_data.xml (the
    README's "driver in its own terminal"): every image reaches the node with the defaults."""
    count = 60
    running = Running(context, namespace="/qos_burst", connect=False)
    env = {k: v for k, v in os.environ.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
    script = Path(__file__).resolve().parent / "camera_burst.py"
    try:
        # The node runs in this process; a profile here would only change its own side.
        assert "FASTDDS_DEFAULT_PROFILES_FILE" not in os.environ or pytest.skip(
            "this test process runs with a Fast DDS profile file; the test needs none")
        done = subprocess.run(
            [sys.executable, str(script), str(domain_id(__name__)), "/qos_burst", str(count),
             "30", "reliable"], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        node = running.node
        wait_until(lambda: node.stats.received["depth"] >= count
                   and node.stats.received["color"] >= count, 20, f"{count} images per stream")
        running.wait_idle()
        wait_until(lambda: node.queued() == 0, 10, "the queue to drain")
        received = node.stats.received["color"] + node.stats.received["depth"]
        assert received == 2 * count
        assert received == 2 * node.stats.published + node.drops.total + node.queued()
    finally:
        running.close()
