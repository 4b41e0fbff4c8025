"""lingbot_depth_node against a node written the textbook way, side by side, 640x480.

    python benchmarks/bench_textbook_node.py [--rounds 3] [--seconds 20] [--warmup 8]
        [--engine guided] [--rate 30] [--camera-profile F.xml|none] [--upstream DIR ...]
        [--executors events,single_threaded] [--json F]

Both nodes run as their own process, one at a time, in interleaved rounds (lingbot,
textbook, lingbot, ...), with the same engine and the same camera stream: this process plays
the camera (colour rgb8, depth 16UC1, camera info at --rate Hz from the shipped captures) and
subscribes to depth_completed and depth_completed/points. The textbook node pairs with
message_filters' ApproximateTimeSynchronizer (a plain pairing by stamp where it is not
importable), decodes with numpy as cv_bridge does, completes in its callback, builds the
cloud with sensor_msgs_py.point_cloud2.create_cloud (a structured array's bytes where not
importable) and publishes rclpy messages; no allocator or DDS settings. --upstream adds
folders holding those packages to its sys.path (default: ../shared/ros2-upstream where present).

DDS set-up, per process, as users run them: lingbot_depth_node with config/fastdds_large_data.xml
(what lingbot_depth.launch.py gives it), the textbook node with Fast DDS's defaults, and the
camera with --camera-profile (default: the same XML, as the launch file gives a camera driver
it starts). With `--camera-profile none` the camera publishes with Fast DDS's defaults, as a
driver started on its own: its 640x480 images then arrive late or in bursts (docs/drivers.md),
and lingbot's latest-wins slot drops the older of two pairs that arrive within one engine
call (counted `superseded`, reported), while the textbook node queues them.

Reported, per run and as the median over rounds: process CPU per completed frame excluding
the engine, i.e. (process CPU - CPU inside engine.complete) / frames completed, measured in
each node's process over the measured --seconds; the frames completed per second; and, for
lingbot, the pairs it dropped as superseded. The ratio is lingbot / textbook (target <= 0.5).
--executors: lingbot once per rclpy executor named (its `executor` parameter), each in the
interleaved rounds; the first is the one the target is read from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
UPSTREAM = ROOT.parent / "shared" / "ros2-upstream"
DEFAULT_UPSTREAM = [UPSTREAM / "message_filters" / "src", UPSTREAM / "common_interfaces" / "sensor_msgs_py"]
#: how each serving process reports its counters (std_msgs/String, JSON)
COUNTERS_TOPIC = "bench/counters"
FRAME_ID = "camera_color_optical_frame"
LARGE_DATA_PROFILE = ROOT / "config" / "fastdds_large_data.xml"
PROFILES_FILE = "FASTDDS_DEFAULT_PROFILES_FILE"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each node")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured part of each run")
    parser.add_argument("--warmup", type=float, default=8.0, help="seconds streamed before measuring")
    parser.add_argument("--engine", default="guided")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    parser.add_argument("--camera-profile", default=str(LARGE_DATA_PROFILE),
                        help="Fast DDS profile file of the camera (this process), or 'none'")
    parser.add_argument("--upstream", type=Path, nargs="*",
                        default=[p for p in DEFAULT_UPSTREAM if p.is_dir()],
                        help="folders added to the textbook node's sys.path (message_filters, sensor_msgs_py)")
    parser.add_argument("--executors", default="events",
                        help="comma-separated executors lingbot runs on (its `executor` parameter)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--serve", choices=("lingbot", "textbook"), help=argparse.SUPPRESS)
    parser.add_argument("--executor", default="events", help=argparse.SUPPRESS)
    args, _ = parser.parse_known_args(argv)  # run.sh bench passes its arguments to every bench
    return args


# -- the serving processes ------------------------------------------------------------------
class CountingEngine:
    """The engine, with the CPU time spent inside complete() summed (thread CPU)."""

    def __init__(self, engine) -> None:
        self._engine, self.cpu_s, self.frames = engine, 0.0, 0
        self._lock = threading.Lock()

    def complete(self, frame):
        start = time.thread_time()
        result = self._engine.complete(frame)
        with self._lock:
            self.cpu_s += time.thread_time() - start
            self.frames += 1
        return result

    def __getattr__(self, name):
        return getattr(self._engine, name)


def report_counters(node, engine: CountingEngine) -> None:
    """Publish this process's CPU time and the engine's counters twice a second."""
    from std_msgs.msg import String

    pub = node.create_publisher(String, COUNTERS_TOPIC, 10)

    def tick() -> None:
        with engine._lock:
            values = {"process_cpu_s": time.process_time(), "engine_cpu_s": engine.cpu_s,
                      "frames": engine.frames}
        if hasattr(node, "drops"):  # lingbot's drop counter (the textbook node drops nothing)
            values["superseded"] = node.drops.snapshot().get("superseded", 0)
        pub.publish(String(data=json.dumps(values)))

    node.create_timer(0.5, tick)


def serve_lingbot(args) -> None:
    """The node as its entry point starts and spins it (ros/node.py main, ros/node_process.py
    run_node), with the engine wrapped for counting."""
    from lingbot_depth_ros.ros.process_setup import prepare_node_process

    os.environ[PROFILES_FILE] = str(LARGE_DATA_PROFILE)  # as lingbot_depth.launch.py does
    prepare_node_process(os.environ)  # as the node's entry point does, before rclpy
    from lingbot_depth_ros.engines import create_engine
    from lingbot_depth_ros.ros import node as node_module
    from lingbot_depth_ros.ros.node_process import run_node

    def start():
        counting = CountingEngine(create_engine(args.engine))
        node = node_module.LingbotDepthNode(engine=counting)
        report_counters(node, counting)
        return node

    run_node(start, ["--ros-args", "-p", f"engine:={args.engine}", "-p", f"executor:={args.executor}"],
             "bench_lingbot")


def serve_textbook(args) -> None:
    for folder in args.upstream:
        sys.path.insert(0, str(folder))
    import rclpy

    from textbook_node import TextbookNode

    rclpy.init()
    node = TextbookNode(args.engine, CountingEngine)
    report_counters(node, node.engine)
    spin_until_terminated(node)


def spin_until_terminated(node) -> None:
    import signal

    import rclpy

    signal.signal(signal.SIGTERM, lambda *_: rclpy.try_shutdown())
    try:
        rclpy.spin(node)
    except Exception:  # noqa: BLE001 - shutdown from the signal handler ends the spin
        pass


# -- the camera and the measurement ---------------------------------------------------------
def camera_frames():
    """A function of (frame index, stamp) giving the serialized colour, depth and camera info
    of the shipped captures in turn (bench_node's frames)."""
    from bench_node import camera_frames as capture_fields
    from lingbot_depth_ros.core import serialized

    frames = capture_fields()

    def serialize(i: int, stamp: int) -> tuple[bytes, bytes, bytes]:
        color, depth, info = frames[i % 4]
        return (serialized.image_cdr(stamp, FRAME_ID, color), serialized.image_cdr(stamp, FRAME_ID, depth),
                serialized.camera_info_cdr(stamp, FRAME_ID, info))

    return serialize


class Camera:
    """Publishes the stream and takes the outputs (raw: this process's cost stays small)."""

    def __init__(self, node) -> None:
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from std_msgs.msg import String

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        self.pubs = (node.create_publisher(Image, "color/image_raw", qos),
                     node.create_publisher(Image, "depth/image_raw", qos),
                     node.create_publisher(CameraInfo, "color/camera_info", qos))
        self.counters: dict = {}
        self.received = {"depth": 0, "points": 0}
        node.create_subscription(Image, "depth_completed", lambda _: self._count("depth"), qos, raw=True)
        node.create_subscription(PointCloud2, "depth_completed/points", lambda _: self._count("points"),
                                 qos, raw=True)
        node.create_subscription(String, COUNTERS_TOPIC, self._on_counters, 10)

    def _count(self, name: str) -> None:
        self.received[name] += 1

    def _on_counters(self, msg) -> None:
        self.counters = json.loads(msg.data)

    def ready(self) -> bool:
        return all(p.get_subscription_count() > 0 for p in self.pubs) and bool(self.counters)

    def stream(self, serialize, rate: float, seconds: float, first: int) -> int:
        period, start = 1.0 / rate, time.monotonic()
        n = int(seconds * rate)
        for k in range(n):
            delay = start + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            i = first + k
            color, depth, info = serialize(i, 1_700_000_000 * 10**9 + i * int(period * 1e9))
            self.pubs[2].publish(info)
            self.pubs[0].publish(color)
            self.pubs[1].publish(depth)
        return first + n


def run_once(args, kind: str, serialize, domain: int) -> dict:
    """Start one node (`textbook` or `lingbot:<executor>`), stream, and measure over the
    measured part."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    env.pop(PROFILES_FILE, None)  # the camera's (this process's) profile is not the nodes'
    env.pop("RMW_FASTRTPS_USE_QOS_FROM_XML", None)
    serve, _, executor = kind.partition(":")
    proc = subprocess.Popen([sys.executable, __file__, "--serve", serve, "--engine", args.engine,
                             "--executor", executor or "events", "--upstream", *map(str, args.upstream)],
                            env=env, cwd=Path(__file__).parent, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("bench_camera", context=context)
        camera = Camera(node)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        threading.Thread(target=executor.spin, daemon=True).start()
        deadline = time.monotonic() + 60
        while not camera.ready():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the {kind} node did not come up: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        time.sleep(1.0)  # its output publishers match ours
        i = camera.stream(serialize, args.rate, args.warmup, 0)
        time.sleep(1.0)  # the warm-up's last frames finish and the counters after them arrive
        before = dict(camera.counters)
        camera.stream(serialize, args.rate, args.seconds, i)
        time.sleep(1.0)  # the last frames finish and the counters after them arrive
        after = dict(camera.counters)
        executor.shutdown(timeout_sec=2.0)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        rclpy.shutdown(context=context)
    frames = after["frames"] - before["frames"]
    superseded = (after.get("superseded", 0) - before.get("superseded", 0)) // 2  # counted per image
    overhead = (after["process_cpu_s"] - before["process_cpu_s"]) - (after["engine_cpu_s"] - before["engine_cpu_s"])
    return {"node": kind, "frames": frames, "fps": frames / args.seconds, "superseded_pairs": superseded,
            "cpu_ms_per_frame_excl_engine": 1e3 * overhead / max(frames, 1),
            "engine_cpu_ms_per_frame": 1e3 * (after["engine_cpu_s"] - before["engine_cpu_s"]) / max(frames, 1),
            "outputs_received": dict(camera.received)}


def main() -> int:
    args = parse_args()
    if args.serve == "lingbot":
        serve_lingbot(args)
        return 0
    if args.serve == "textbook":
        serve_textbook(args)
        return 0
    if args.camera_profile.lower() == "none":
        os.environ.pop(PROFILES_FILE, None)
    else:  # read by rclpy.init in run_once, in this process only
        os.environ[PROFILES_FILE] = args.camera_profile
    serialize = camera_frames()
    runs = []
    kinds = [f"lingbot:{e}" for e in args.executors.split(",") if e] + ["textbook"]
    for r in range(args.rounds):
        for kind in kinds:
            runs.append(run_once(args, kind, serialize, 100 + (os.getpid() + len(runs)) % 100))
            print(f"  round {r + 1} {kind:<24}: {runs[-1]['cpu_ms_per_frame_excl_engine']:.2f} ms CPU/frame "
                  f"excl. engine, {runs[-1]['frames']} frames, {runs[-1]['superseded_pairs']} pairs "
                  "superseded", flush=True)
    report(args, runs, kinds)
    if args.json:
        args.json.write_text(json.dumps(runs, indent=2))
    return 0


def report(args, runs: list[dict], kinds: list[str]) -> None:
    def median(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["node"] == kind)

    camera = "none" if args.camera_profile.lower() == "none" else Path(args.camera_profile).name
    print(f"\n{args.engine}, 640x480 at {args.rate:.0f} Hz, depth + cloud subscribed, {args.rounds} "
          f"interleaved rounds of {args.seconds:.0f} s (medians), camera DDS profile {camera}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'node':<24} {'CPU ms/frame excl. engine':>26} {'engine CPU ms':>14} {'frames/s':>9} "
          f"{'superseded':>10} {'ratio':>6}")
    base = median("textbook", "cpu_ms_per_frame_excl_engine")
    for kind in ["textbook", *kinds[:-1]]:
        cpu = median(kind, "cpu_ms_per_frame_excl_engine")
        print(f"{kind:<24} {cpu:>26.2f} {median(kind, 'engine_cpu_ms_per_frame'):>14.2f} "
              f"{median(kind, 'fps'):>9.1f} {median(kind, 'superseded_pairs'):>10.0f} {cpu / base:>6.2f}")
    print(f"target: {kinds[0]} <= 0.50x textbook")


if __name__ == "__main__":
    sys.exit(main())
