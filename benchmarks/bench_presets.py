#!/usr/bin/env python3
"""Frames lost per camera preset: each driver's topic layout, encodings and default QoS
(test/driver_topics.py) played at 30 Hz, 640x480, into the node started by `ros2 launch`
with that preset, and into a subscriber that does nothing, for reference.

    ./run.sh setup && python benchmarks/bench_presets.py [--duration 60] [--rate 30]
        [--presets zed2i ...] [--driver-profile none|F.xml]

Per preset: images sent, received by the node, lost before the node (never received: the
target is 0), published pairs and dropped images (counted by the node) and the node's own
estimate of the images missing before it (stamp gaps), from its /diagnostics counters over the
run. Below each preset, the same stream into an idle
subscriber (its own process; the node's input QoS: reliable, keep last 30; counts only): what
reaches a process that does nothing with the images. The baseline, measured in the same run,
is the orbbec_gemini335 preset fed by a publisher with a deep reliable history (keep last
100); the last column is each row's received fraction over the baseline's.
--driver-profile: the publishing side's Fast DDS profile file, `none` (default: Fast DDS's
defaults, a driver started on its own) or e.g. config/fastdds_large_data.xml (what
lingbot_depth.launch.py gives a driver it starts). Exit code 1 unless every preset lost nothing.
Needs the upstream ROS 2 Python packages (./run.sh installs them) for `ros2 launch`.
"""

from __future__ import annotations

import argparse
import json
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
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from lingbot_depth_ros.core.captures import read_intrinsics, read_raw_depth, read_rgb, rgb_path  # noqa: E402

from lingbot_depth_ros.ros.diagnostics import parse_values  # noqa: E402
from driver_topics import DRIVERS, DriverPlayer  # noqa: E402

RATE_HZ = 30.0  # --rate
COUNTERS = ("color_received", "depth_received", "published", "dropped_total", "color_missing_before_node",
            "depth_missing_before_node")
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
        self.spin_thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.spin_thread.start()

    def close(self) -> None:
        self.executor.shutdown()
        self.spin_thread.join(10)  # a thread left in rclpy at exit aborts the interpreter

    def _on(self, msg: DiagnosticArray) -> None:
        for status in msg.status:
            values = parse_values(DiagnosticArray(status=[status]))
            if values:
                self.values[status.hardware_id] = values

    def counters(self, hardware_id: str) -> dict[str, int]:
        values = self.values.get(hardware_id, {})
        reasons = [k for k in values if k.startswith("dropped.")]
        return {k: int(values.get(k, 0)) for k in (*COUNTERS, "queued", "camera_info_received", *reasons)}


def launch(preset: str) -> subprocess.Popen:
    process = subprocess.Popen(["ros2", "launch", "lingbot_depth_ros", "lingbot_depth.launch.py",
                                f"camera:={preset}"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    for line in process.stdout:
        if "Fast DDS:" in line:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep draining
            return process
    raise SystemExit(f"the node did not start with camera:={preset}")


class IdleSubscriber:
    """A process that subscribes to one layout's topics as the node does and only counts."""

    def __init__(self, topics: dict[str, str]) -> None:
        self.counts: dict[str, int] = {}
        self.process = subprocess.Popen([sys.executable, __file__, "--serve-idle", topics["color"],
                                         topics["depth"], topics["info"]], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.counts = json.loads(line)

    def counters(self) -> dict[str, int]:
        counts = dict(self.counts)
        return {"color_received": counts.get("color", 0), "depth_received": counts.get("depth", 0)}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)


def serve_idle(color: str, depth: str, info: str) -> None:
    rclpy.init()
    node = rclpy.create_node("bench_presets_idle")
    counts = {"color": 0, "depth": 0}
    qos = QoSProfile(depth=30, reliability=ReliabilityPolicy.RELIABLE)  # the node's with qos: auto
    for name, topic in (("color", color), ("depth", depth)):
        node.create_subscription(Image, topic, lambda _m, n=name: counts.__setitem__(n, counts[n] + 1), qos,
                                 raw=True)
    node.create_subscription(CameraInfo, info, lambda _m: None, qos, raw=True)
    node.create_timer(0.5, lambda: print(json.dumps(counts), flush=True))
    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    try:
        rclpy.spin(node)
    except Exception:  # noqa: BLE001 - the shutdown from the signal handler ends the spin
        pass


def run_preset(listener: Listener, layout, capture, duration_s: float, idle: bool = False) -> dict:
    """Stream `duration_s` of `layout` into the node (ros2 launch) or, with `idle`, into an
    IdleSubscriber; the counts are taken over the measured part only."""
    player = DriverPlayer(listener.node, layout, *capture)
    if idle:
        receiver = IdleSubscriber(player.topics)
        counters = receiver.counters
    else:
        receiver = launch(layout.preset)
        hardware_id = "/" + f"{layout.namespace.strip('/')}/lingbot_depth_node".lstrip("/")
        listener.values.pop(hardware_id, None)

        def counters() -> dict[str, int]:
            return listener.counters(hardware_id)
    try:
        deadline = time.monotonic() + 30
        while not all(p.get_subscription_count() for p in player.publishers()):
            if time.monotonic() > deadline:
                raise SystemExit(f"{layout.preset}: the subscriptions did not match")
            time.sleep(0.05)
        stamp = time.time_ns()
        while not all(counters()[f"{k}_received"] for k in ("color", "depth")):
            player.publish(stamp)  # warm-up: until the receiver has both streams
            stamp += int(1e9 / RATE_HZ)
            time.sleep(1 / RATE_HZ)
        time.sleep(2.0)
        before = counters()
        frames = int(duration_s * RATE_HZ)
        start = time.monotonic()
        for i in range(frames):
            time.sleep(max(0.0, start + i / RATE_HZ - time.monotonic()))
            player.publish(stamp + int(i * 1e9 / RATE_HZ))  # `stamp`: the next after the warm-up
        time.sleep(4.0)  # stragglers, the last frames through the engine, two diagnostics
        after = counters()
    finally:
        if idle:
            receiver.stop()
        else:
            os.killpg(receiver.pid, signal.SIGINT)
            receiver.wait(60)
        player.destroy(listener.node)
    received = sum(after[f"{k}_received"] - before[f"{k}_received"] for k in ("color", "depth"))
    name = "  idle subscriber" if idle else layout.preset + (" (baseline)" if layout is BASELINE else "")
    row = {"preset": name, "sent": 2 * frames, "received": received, "lost": 2 * frames - received}
    if not idle:
        row.update(published=after["published"] - before["published"], queued=after["queued"],
                   dropped=after["dropped_total"] - before["dropped_total"],
                   estimated=sum(after[f"{k}_missing_before_node"] - before[f"{k}_missing_before_node"]
                                 for k in ("color", "depth")),
                   reasons={k.removeprefix("dropped."): after[k] - before.get(k, 0) for k in after
                            if k.startswith("dropped.") and after[k] - before.get(k, 0)})
    return row


def main(argv: list[str] | None = None) -> int:
    global RATE_HZ
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of 30 Hz stream per preset")
    parser.add_argument("--rate", type=float, default=RATE_HZ, help="camera rate in Hz")
    parser.add_argument("--presets", nargs="*", default=sorted(DRIVERS), choices=sorted(DRIVERS))
    parser.add_argument("--driver-profile", default="none",
                        help="Fast DDS profile file of the publishing side, or 'none' (Fast DDS defaults)")
    parser.add_argument("--serve-idle", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_idle:
        serve_idle(*args.serve_idle)
        return 0
    if args.duration <= 0:
        parser.error("--duration must be positive")
    if not 0 < args.rate <= 200:
        parser.error("--rate must be in (0, 200] Hz")
    RATE_HZ = args.rate
    driver_profile = None if args.driver_profile.lower() == "none" else Path(args.driver_profile).resolve()
    if driver_profile is not None and not driver_profile.is_file():
        parser.error(f"--driver-profile {args.driver_profile}: no such file")
    # The publishing side (this process and the idle subscriber) gets --driver-profile; the
    # node gets what the launch file gives it.
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if driver_profile is not None:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(driver_profile)
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    folder = ROOT / "examples" / "0"
    capture = (read_rgb(rgb_path(folder)), read_raw_depth(folder / "raw_depth.png"),
               read_intrinsics(folder / "intrinsics.txt"))
    rclpy.init()
    listener = Listener()
    try:
        rows = [run_preset(listener, BASELINE, capture, args.duration)]
        for name in args.presets:
            rows.append(run_preset(listener, DRIVERS[name], capture, args.duration))
            rows.append(run_preset(listener, DRIVERS[name], capture, args.duration, idle=True))
    finally:
        listener.close()
        rclpy.try_shutdown()
    base = rows[0]["received"] / rows[0]["sent"]
    print(f"{args.duration:.0f} s at {RATE_HZ:.0f} Hz, 640x480, per preset (images, except published: pairs); "
          f"publishing side's DDS profile: {driver_profile.name if driver_profile else 'none (Fast DDS defaults)'}")
    print(f"{'preset':<28}{'sent':>7}{'received':>10}{'lost':>6}{'published':>11}{'dropped':>9}"
          f"{'queued':>8}{'node: missing':>14}{'received vs baseline':>22}")
    for row in rows:
        ratio = (row["received"] / row["sent"]) / base if base else float("nan")
        node_columns = [row.get(k, "") for k in ("published", "dropped", "queued", "estimated")]
        print(f"{row['preset']:<28}{row['sent']:>7}{row['received']:>10}{row['lost']:>6}"
              f"{node_columns[0]:>11}{node_columns[1]:>9}{node_columns[2]:>8}{node_columns[3]:>14}{ratio:>21.3f}x")
        if row.get("reasons"):
            print(f"{'':<28}dropped by reason: " + ", ".join(f"{k} {n}" for k, n in sorted(row["reasons"].items())))
    return 0 if all(r["lost"] == 0 for r in rows[1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
