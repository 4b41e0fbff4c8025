#!/usr/bin/env python3
"""Frames lost per camera preset: each driver's topic layout, encodings and default QoS
(test/driver_topics.py; no large-data DDS profile on the publishing side)
played at 30 Hz, 640x480, into the node started by `ros2 launch` with that preset.

    ./run.sh setup && python benchmarks/bench_presets.py [--duration 60] [--presets zed2i ...]

Per preset: images sent, received by the node, lost before the node (never received: the
target is 0), published pairs and dropped images (counted by the node), from the node's
/diagnostics counters over the run. The baseline, measured in the same run, is the
orbbec_gemini335 preset fed by a publisher with a deep reliable history (keep last 100);
the last column is each row's received fraction over the baseline's. Exit code 1 unless
every preset lost nothing.
Needs the upstream ROS 2 Python packages (./run.sh installs them) for `ros2 launch`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test"))  # driver_topics: the drivers' layouts, shared with the tests

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402

from lingbot_depth_ros.core.captures import read_intrinsics, read_raw_depth, read_rgb, rgb_path  # noqa: E402
from lingbot_depth_ros.ros.diagnostics import parse_values  # noqa: E402

from driver_topics import DRIVERS, DriverPlayer  # noqa: E402

RATE_HZ = 30.0
COUNTERS = ("color_received", "depth_received", "published", "dropped_total")
BASELINE = replace(DRIVERS["orbbec_gemini335"], driver="deep reliable history (baseline)",
                   image_qos=QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE),
                   info_qos=QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE))


class Listener:
    def __init__(self) -> None:
        self.node = rclpy.create_node("bench_presets")
        self.values: dict[str, dict] = {}
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on, 50)
        self.executor = SingleThreadedExecutor()
        self.executor.add_node(self.node)
        threading.Thread(target=self.executor.spin, daemon=True).start()

    def _on(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = parse_values(DiagnosticArray(status=[status]))
            if values:
                self.values[status.hardware_id] = values

    def counters(self, hardware_id: str) -> dict[str, int]:
        values = self.values.get(hardware_id, {})
        return {k: int(values.get(k, 0)) for k in (*COUNTERS, "queued", "camera_info_received")}


def launch(preset: str) -> subprocess.Popen:
    process = subprocess.Popen(["ros2", "launch", "lingbot_depth_ros", "lingbot_depth.launch.py",
                                f"camera:={preset}"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in process.stdout:
        if "Fast DDS:" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep draining
            return process
    raise SystemExit(f"the node did not start with camera:={preset}")


def run_preset(listener: Listener, layout, capture, duration_s: float) -> dict:
    process = launch(layout.preset)
    try:
        player = DriverPlayer(listener.node, layout, *capture)
        hardware_id = "/" + f"{layout.namespace.strip('/')}/lingbot_depth_node".lstrip("/")
        listener.values.pop(hardware_id, None)
        deadline = time.monotonic() + 30
        while not all(p.get_subscription_count() for p in player.publishers()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{layout.preset}: the node's subscriptions did not match")
            time.sleep(0.05)
        stamp = time.time_ns()
        while not all(listener.counters(hardware_id)[f"{k}_received"] for k in ("color", "depth")):
            player.publish(stamp)  # warm-up: until the node has both streams
            stamp += int(1e9 / RATE_HZ)
            time.sleep(1 / RATE_HZ)
        time.sleep(2.0)
        before = listener.counters(hardware_id)
        frames = int(duration_s * RATE_HZ)
        start = time.monotonic()
        for i in range(frames):
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
            player.publish(stamp + int((i + 1) * 1e9 / RATE_HZ))
        time.sleep(4.0)  # stragglers, the last frames through the engine, two diagnostics
        after = listener.counters(hardware_id)
        delta = {k: after[k] - before[k] for k in COUNTERS}
        received = delta["color_received"] + delta["depth_received"]
        name = layout.preset + (" (baseline)" if layout is BASELINE else "")
        return {"preset": name, "sent": 2 * frames, "received": received,
                "published": delta["published"], "dropped": delta["dropped_total"],
                "lost": 2 * frames - received, "queued": after["queued"]}
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of 30 Hz stream per preset")
    parser.add_argument("--presets", nargs="*", default=sorted(DRIVERS), choices=sorted(DRIVERS))
    args = parser.parse_args(argv)
    if args.duration <= 0:
        parser.error("--duration must be positive")
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)  # the driver side: no profile
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    folder = ROOT / "examples" / "0"
    capture = (read_rgb(rgb_path(folder)), read_raw_depth(folder / "raw_depth.png"),
               read_intrinsics(folder / "intrinsics.txt"))
    rclpy.init()
    listener = Listener()
    try:
        rows = [run_preset(listener, BASELINE, capture, args.duration)]
        rows += [run_preset(listener, DRIVERS[name], capture, args.duration) for name in args.presets]
    finally:
        listener.executor.shutdown()
        rclpy.try_shutdown()
    base = rows[0]["received"] / rows[0]["sent"]
    print(f"{args.duration:.0f} s at {RATE_HZ:.0f} Hz, 640x480, per preset (images, except published: pairs)")
    print(f"{'preset':<28}{'sent':>7}{'received':>10}{'lost':>6}{'published':>11}{'dropped':>9}"
          f"{'queued':>8}{'received vs baseline':>22}")
    for row in rows:
        ratio = (row["received"] / row["sent"]) / base if base else float("nan")
        print(f"{row['preset']:<28}{row['sent']:>7}{row['received']:>10}{row['lost']:>6}"
              f"{row['published']:>11}{row['dropped']:>9}{row['queued']:>8}{ratio:>21.3f}x")
    return 0 if all(r["lost"] == 0 for r in rows[1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
