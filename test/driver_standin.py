"""A camera driver stand-in in its own process for the docs test: publishes one capture as the
driver of `preset` does (test/driver_topics.py: its topics under its namespace, encodings,
frame id, QoS) at `rate` Hz until SIGINT or SIGTERM.

    python driver_standin.py <domain> <preset> <namespace> <rate_hz>

Prints `publishing <colour topic>` once the first frame went out."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import rclpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from driver_topics import DRIVERS, DriverPlayer  # noqa: E402
from node_harness import Capture  # noqa: E402


def main() -> int:
    domain, preset, namespace, rate = sys.argv[1:5]
    stop = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.append(True))
    rclpy.init(domain_id=int(domain), signal_handler_options=rclpy.signals.SignalHandlerOptions.NO)
    node = rclpy.create_node("driver_standin")
    capture = Capture(0)
    player = DriverPlayer(node, DRIVERS[preset], capture.rgb, capture.raw_depth, capture.K,
                          namespace=namespace)
    period, start, i = 1.0 / float(rate), time.monotonic(), 0
    while not stop:
        player.publish(1_000_000_000_000 + i * int(period * 1e9))
        if i == 0:
            print(f"publishing {player.topics['color']}", flush=True)
        i += 1
        time.sleep(max(0.0, start + i * period - time.monotonic()))
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
