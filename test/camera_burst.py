"""A camera driver in its own process for the QoS tests: publishes one capture's colour, depth
and camera info `count` times at `rate` Hz with the given reliability, as a driver started in
its own terminal would (no large-data DDS profile unless the environment sets one).

    python camera_burst.py <domain> <namespace> <count> <rate_hz> <reliable|best_effort>

Waits until every publisher is matched, sends, then waits for the acknowledgements (reliable)
before exiting; prints `sent <count>`."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from node_harness import Capture  # noqa: E402


def main() -> int:
    domain, namespace, count, rate, reliability = sys.argv[1:6]
    rclpy.init(domain_id=int(domain))
    node = rclpy.create_node("camera", namespace=namespace)
    policy = (ReliabilityPolicy.RELIABLE if reliability == "reliable"
              else ReliabilityPolicy.BEST_EFFORT)
    qos = QoSProfile(depth=10, reliability=policy)  # the rmw default depth the drivers keep
    pubs = [node.create_publisher(CameraInfo, "color/camera_info", qos),
            node.create_publisher(Image, "color/image_raw", qos),
            node.create_publisher(Image, "depth/image_raw", qos)]
    deadline = time.monotonic() + 30
    while not all(p.get_subscription_count() > 0 for p in pubs):
        if time.monotonic() > deadline:
            print("no subscriber matched", file=sys.stderr)
            return 1
        time.sleep(0.05)
    capture = Capture(0)
    period, start = 1.0 / float(rate), time.monotonic()
    for i in range(int(count)):
        stamp = 1_000_000_000_000 + i * int(period * 1e9)
        pubs[0].publish(capture.info_msg(stamp))
        pubs[1].publish(capture.color_msg(stamp))
        pubs[2].publish(capture.depth_msg(stamp))
        time.sleep(max(0.0, start + (i + 1) * period - time.monotonic()))
    for pub in pubs:
        if policy == ReliabilityPolicy.RELIABLE:
            pub.wait_for_all_acked(rclpy.duration.Duration(seconds=10))
    print(f"sent {count}", flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
