"""ros/serialized_publisher.py over real DDS: what arrives equals what rclpy would send."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from node_harness import make_context

from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import Image, PointCloud2  # noqa: E402

from lingbot_depth_ros.core import serialized  # noqa: E402
from lingbot_depth_ros.core.codec import ImageFields  # noqa: E402
from lingbot_depth_ros.core.outputs import OutputBuilder, OutputOptions  # noqa: E402
from lingbot_depth_ros.core.captures import load_capture  # noqa: E402
from lingbot_depth_ros.engines import create_engine  # noqa: E402
from lingbot_depth_ros.paths import data_path  # noqa: E402
from lingbot_depth_ros.ros.serialized_publisher import SerializedPublisher  # noqa: E402

QOS = QoSProfile(depth=20, reliability=ReliabilityPolicy.RELIABLE)


@pytest.fixture(scope="module")
def ros():
    context = make_context(__name__)
    import rclpy
    node = rclpy.create_node("serialized_publisher_test", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    executor.shutdown(timeout_sec=2.0)
    node.destroy_node()
    rclpy.shutdown(context=context)


def receive(node, msg_type, topic: str, publish, count: int = 1, timeout: float = 20.0) -> list:
    """Subscribe (generated messages), call publish() until matched, return what arrived."""
    got, lock = [], threading.Lock()

    def on_message(msg):
        with lock:
            got.append(msg)

    sub = node.create_subscription(msg_type, topic, on_message, QOS)
    try:
        deadline = time.monotonic() + timeout
        publish()
        while time.monotonic() < deadline:
            with lock:
                if len(got) >= count:
                    return list(got)
            time.sleep(0.02)
        raise AssertionError(f"{len(got)} of {count} messages arrived on {topic}")
    finally:
        node.destroy_subscription(sub)


def wait_matched(publisher: SerializedPublisher, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while publisher.get_subscription_count() == 0:
        assert time.monotonic() < deadline, "no subscriber matched"
        time.sleep(0.02)


def test_publishes_through_rcl_directly_here(ros):
    publisher = SerializedPublisher(ros.create_publisher(Image, "direct_check", QOS))
    assert publisher.direct, publisher.reason  # the fast path is what these tests exercise
    assert publisher.topic_name == "/direct_check"


@pytest.mark.parametrize("frame_id", ["c", "camera_color_optical_frame", "abcdefg"])
def test_image_parts_arrive_as_the_image(ros, frame_id):
    pixels = np.arange(48 * 64, dtype=np.float32).reshape(48, 64)
    fields = ImageFields(height=48, width=64, encoding="32FC1", is_bigendian=0, step=256,
                         data=pixels.tobytes())
    topic = f"image_{len(frame_id)}"
    publisher = SerializedPublisher(ros.create_publisher(Image, topic, QOS))

    def publish():
        wait_matched(publisher)
        publisher.publish(serialized.image_parts(1_700_000_000_123_456_789, frame_id, fields))

    (msg,) = receive(ros, Image, topic, publish)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert msg.header.frame_id == frame_id
    assert (msg.height, msg.width, msg.encoding, msg.step) == (48, 64, "32FC1", 256)
    np.testing.assert_array_equal(np.frombuffer(bytes(msg.data), np.float32).reshape(48, 64), pixels)


def test_reused_buffer_carries_each_message_not_the_last(ros):
    """Messages of different sizes through one publisher: each arrives whole and as sent
    (the reused buffer must not leak a longer earlier message into a shorter later one)."""
    capture = load_capture(data_path("examples") / "0")
    result = create_engine("guided").complete(capture)
    cloud = OutputBuilder(OutputOptions(cloud_decimation=4)).cloud(result.depth, capture.rgb, capture.K)
    small = OutputBuilder(OutputOptions(cloud_decimation=8)).cloud(result.depth, capture.rgb, capture.K)
    publisher = SerializedPublisher(ros.create_publisher(PointCloud2, "cloud", QOS))

    def publish():
        wait_matched(publisher)
        for i, fields in enumerate((cloud, small, cloud)):
            publisher.publish(serialized.cloud_parts(i, "cam", fields))

    msgs = receive(ros, PointCloud2, "cloud", publish, count=3)
    assert [m.header.stamp.nanosec for m in msgs] == [0, 1, 2]
    for msg, fields in zip(msgs, (cloud, small, cloud)):
        assert (msg.height, msg.width) == (fields.height, fields.width)
        assert bytes(msg.data) == bytes(fields.data)


def test_without_rcl_pointer_it_publishes_bytes_through_rclpy(ros):
    class PlainPublisher:  # an rclpy publisher whose handle exposes no rcl pointer
        def __init__(self, inner):
            self.inner, self.topic_name = inner, inner.topic_name

        def publish(self, msg):
            assert isinstance(msg, bytes)
            self.inner.publish(msg)

        def get_subscription_count(self):
            return self.inner.get_subscription_count()

    fields = ImageFields(height=2, width=3, encoding="mono8", is_bigendian=0, step=3, data=b"abcdef")
    publisher = SerializedPublisher(PlainPublisher(ros.create_publisher(Image, "plain", QOS)))
    assert not publisher.direct and "pointer" in publisher.reason

    def publish():
        wait_matched(publisher)
        publisher.publish(serialized.image_parts(5, "f", fields))

    (msg,) = receive(ros, Image, "plain", publish)
    assert bytes(msg.data) == b"abcdef" and msg.header.frame_id == "f"
