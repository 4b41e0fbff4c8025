"""lingbot_depth_node end to end over real DDS, 640x480, on this machine.

    python benchmarks/bench_node.py [--seconds 60] [--warmup 30] [--idle-seconds 8] [--engine guided]
        [--rate 30] [--qos sensor_data|reliable] [--dds-profile F.xml|''] [--heap-trim-period 5]
        [--output-queue-depth 5] [--admission burst|latest|every] [--burst 1] [--json F]

The node runs as its own process (as `ros2 run` starts it); this process plays the camera
(colour rgb8, depth 16UC1, camera info at --rate Hz from the shipped captures, published
serialized as a driver's C++ publisher would hand them over) and the consumer (subscribed to
every output by default, the worst case); --burst N sends the pairs in bursts of N back to
back, one burst every N/--rate s (the same mean rate, the arrival jitter a driver or a
network hiccup gives), to compare the node's --admission policies. Both use config/fastdds_large_data.xml unless
--dds-profile '' is given. The consumer takes the outputs serialized (--consumer raw, the
default), as a C++ grasp planner on its own cores costs the node nothing; with
--consumer messages it builds rclpy messages of every output in this process, on the same
two cores as the node. Reported:
- node overhead per frame excluding the engine: the node's own per-frame measurement of
  every stage but the engine call (receive: reading + pairing the two images in the
  subscription callbacks; decode + validate; build outputs incl. the cloud; publish),
  median over the node's last 600 frames, as wall time and as the node threads' CPU time
  (/diagnostics overhead_p50_ms, overhead_cpu_p50_ms);
- output rate at the consumer over the measured --seconds and its slowest 5 s window;
- the node's memory sampled each second (resident: anonymous, files, shared memory; and the
  malloc heap's bytes in use and free, from /diagnostics): over the measured --seconds, the
  first vs the last 10 s and the least-squares slope; and at the end of two --idle-seconds
  pauses with no frame in flight, one after the --warmup and one after the measured part,
  where what the node keeps between frames can be compared without in-flight frames.
Targets: overhead < 5 ms median; >= 25 Hz sustained for 60 s with guided, no memory growth.
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

import rclpy  # noqa: E402
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402

from lingbot_depth_ros.core import serialized  # noqa: E402
from lingbot_depth_ros.core.captures import read_intrinsics, read_raw_depth, read_rgb, rgb_path  # noqa: E402
from lingbot_depth_ros.core.codec import encode_image  # noqa: E402
from lingbot_depth_ros.core.outputs import CameraInfoFields  # noqa: E402
from lingbot_depth_ros.ros import messages  # noqa: E402
from lingbot_depth_ros.ros.diagnostics import OVERHEAD_STAGES  # noqa: E402

from lingbot_depth_ros.ros.diagnostics import parse_values  # noqa: E402

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
FRAME_ID = "camera_color_optical_frame"


def camera_frames() -> list:
    """The four shipped captures as (colour, depth, camera info) fields."""
    frames = []
    for i in range(4):
        folder = ROOT / "examples" / str(i)
        rgb, raw = read_rgb(rgb_path(folder)), read_raw_depth(folder / "raw_depth.png")
        info = CameraInfoFields.from_K(read_intrinsics(folder / "intrinsics.txt"), *raw.shape)
        frames.append((encode_image(rgb, "rgb8"), encode_image(raw, "16UC1"), info))
    return frames


#: --outputs names -> (topic, type) the consumer subscribes to besides depth_completed
OPTIONAL_OUTPUTS = {"points": ("depth_completed/points", PointCloud2),
                    "mask": ("depth_completed/source_mask", Image),
                    "info": ("depth_completed/camera_info", CameraInfo),
                    "rgbd": ("depth_completed/rgbd", messages.CompletedRGBD)}


class Consumer:
    """Subscribes to the outputs; counts depth frames, keeps the latest diagnostics."""

    def __init__(self, node, outputs: list[str], raw: bool) -> None:
        self.arrivals: list[float] = []
        self.diagnostics: dict[str, str] = {}
        self._lock = threading.Lock()
        node.create_subscription(Image, "depth_completed", self._on_depth, RELIABLE, raw=raw)
        for name in outputs:
            topic, msg_type = OPTIONAL_OUTPUTS[name]
            if msg_type is not None:  # CompletedRGBD exists only after the colcon build
                node.create_subscription(msg_type, topic, lambda _: None, RELIABLE, raw=raw)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _on_depth(self, _msg) -> None:
        with self._lock:
            self.arrivals.append(time.monotonic())

    def _on_diagnostics(self, msg) -> None:
        values = parse_values(msg)
        if values:
            with self._lock:
                self.diagnostics = values


#: the node's own account of its malloc heap (/diagnostics, read for each message)
HEAP_FIELDS = {"heap_in_use_mb": "heap_in_use", "heap_free_mb": "heap_free"}
#: /proc/PID/status and smaps_rollup fields sampled: resident memory and its parts (anonymous: malloc'ed
#: and other private memory; file: mapped libraries; shmem: shared memory, i.e. Fast DDS's
#: shared-memory transport segments, whose pages count once touched; huge: the part of anon
#: in 2 MB transparent huge pages, which count whole however little of them is in use)
MEMORY_FIELDS = {"VmRSS": "rss", "RssAnon": "anon", "AnonHugePages": "huge", "RssFile": "file",
                 "RssShmem": "shmem"}
#: every per-sample series: /proc, the [heap] mapping (idle samples only), /diagnostics
SERIES = (*MEMORY_FIELDS.values(), "brk_heap", *HEAP_FIELDS.values())


def memory_mb(pid: int) -> dict[str, float]:
    out = dict.fromkeys(MEMORY_FIELDS.values(), float("nan"))
    for name in ("status", "smaps_rollup"):  # the latter has AnonHugePages
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key = line.split(":", 1)[0]
            if key in MEMORY_FIELDS:
                out[MEMORY_FIELDS[key]] = int(line.split()[1]) / 1024
    return out


def start_node(args, domain: int, extra: tuple | list = (), env: dict | None = None) -> subprocess.Popen:
    """The node as its own process under /bench; `extra` ROS arguments, `env` (default: ours)."""
    env = dict(os.environ if env is None else env, ROS_DOMAIN_ID=str(domain))
    command = [sys.executable, str(ROOT / "scripts" / "lingbot_depth_node"), "--ros-args",
               "-r", "__ns:=/bench", "-p", f"engine:={args.engine}", "-p", f"qos:={args.qos}",
               "-p", "diagnostics_period:=1.0", "-p", f"output_queue_depth:={args.output_queue_depth}",
               "-p", f"heap_trim_period:={args.heap_trim_period}", "-p", f"admission:={args.admission}",
               *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_for_node(proc: subprocess.Popen, publishers, timeout: float = 60.0) -> None:
    """Until the node process subscribes to every camera publisher, then 2 s for its outputs to
    match the consumer; RuntimeError with its stderr if it exits or does not come up."""
    deadline = time.monotonic() + timeout
    while any(p.get_subscription_count() == 0 for p in publishers):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the node did not come up: " + proc.stderr.read().decode()[-2000:])
        time.sleep(0.1)
    time.sleep(2.0)


def brk_heap_mb(pid: int) -> float:
    """Resident part of the [heap] mapping: the main malloc arena (the node's only one)."""
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError:
        return float("nan")
    for i, line in enumerate(lines):
        if line.endswith("[heap]"):
            for entry in lines[i + 1:i + 30]:
                if entry.startswith("Rss:"):
                    return int(entry.split()[1]) / 1024
    return float("nan")


def sample_memory(node_pid: int, consumer: Consumer, phase: str) -> dict:
    sample = memory_mb(node_pid)
    # smaps is long; read where it matters (no frame in flight) and NaN elsewhere
    sample["brk_heap"] = brk_heap_mb(node_pid) if phase.startswith("idle") else float("nan")
    with consumer._lock:
        sample.update({part: float(consumer.diagnostics.get(key, "nan"))
                       for key, part in HEAP_FIELDS.items()})
    sample["phase"] = phase
    return sample


def play(args, frames, publishers, node_pid: int, consumer: Consumer) -> tuple[list[dict], float, float]:
    """Warm-up, an idle pause, the measured part, another idle pause: publish at args.rate
    while streaming and sample the node's memory each second throughout (each sample names
    its phase). Returns the samples and when the measured part began and ended."""
    color_pub, depth_pub, info_pub = publishers
    period, samples, i = 1.0 / args.rate, [], 0

    def stream(phase: str, seconds: float) -> None:
        nonlocal i
        start = next_sample = time.monotonic()
        for k in range(int(seconds * args.rate)):
            delay = start + (k - k % args.burst) * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            color, depth, info = frames[i % 4]
            stamp = 1_700_000_000 * 10**9 + i * int(period * 1e9)
            info_pub.publish(serialized.camera_info_cdr(stamp, FRAME_ID, info))
            color_pub.publish(serialized.image_cdr(stamp, FRAME_ID, color))
            depth_pub.publish(serialized.image_cdr(stamp, FRAME_ID, depth))
            i += 1
            if time.monotonic() >= next_sample:
                samples.append(sample_memory(node_pid, consumer, phase))
                next_sample += 1.0

    def pause(phase: str) -> None:
        # No frame in flight: memory in use is what the node keeps between frames (DDS
        # histories, engine state). Diagnostics come each second and the idle node trims its
        # heap within heap_trim_period, so the last sample of a long enough pause is settled.
        for _ in range(int(args.idle_seconds)):
            time.sleep(1.0)
            samples.append(sample_memory(node_pid, consumer, phase))

    stream("warmup", args.warmup)
    pause("idle_after_warmup")
    measured_from = time.monotonic()
    stream("measured", args.seconds)
    measured_to = time.monotonic()
    pause("idle_at_end")
    return samples, measured_from, measured_to


def rate_summary(arrivals: list[float], window_s: float = 5.0) -> tuple[float, float]:
    """(mean Hz over the run, Hz of the slowest full window)."""
    if len(arrivals) < 2:
        return 0.0, 0.0
    span = arrivals[-1] - arrivals[0]
    mean = (len(arrivals) - 1) / span
    slowest, i = float("inf"), 0
    for j, t in enumerate(arrivals):
        while arrivals[i] < t - window_s:
            i += 1
        if t - arrivals[0] >= window_s:
            slowest = min(slowest, (j - i) / window_s)
    return mean, slowest if slowest != float("inf") else mean


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured part of the run")
    parser.add_argument("--warmup", type=float, default=30.0,
                        help="seconds of the same stream before the measured part")
    parser.add_argument("--engine", default="guided")
    parser.add_argument("--rate", type=float, default=30.0, help="camera rate, Hz")
    parser.add_argument("--qos", default="sensor_data", choices=("sensor_data", "reliable"),
                        help="the node's input QoS")
    parser.add_argument("--dds-profile", default=str(ROOT / "config" / "fastdds_large_data.xml"),
                        help="FASTDDS_DEFAULT_PROFILES_FILE for both processes ('' = Fast DDS defaults)")
    parser.add_argument("--outputs", default="points,mask,info,rgbd",
                        help="outputs subscribed besides depth_completed (the node builds only "
                             "subscribed ones); '' = depth only")
    parser.add_argument("--consumer", default="raw", choices=("raw", "messages"),
                        help="how this process takes the outputs (see the docstring)")
    parser.add_argument("--output-queue-depth", type=int, default=5,
                        help="the node's output_queue_depth (history kept per output)")
    parser.add_argument("--idle-seconds", type=float, default=8.0,
                        help="pause after the warm-up and after the measured part, where the "
                             "node's memory is read with no frame in flight (longer than "
                             "--heap-trim-period + 1 s, so the idle node has trimmed)")
    parser.add_argument("--heap-trim-period", type=float, default=5.0,
                        help="the node's heap_trim_period (seconds between malloc_trim; 0 = never)")
    parser.add_argument("--admission", default="burst", choices=("latest", "burst", "every"),
                        help="the node's admission policy")
    parser.add_argument("--burst", type=int, default=1,
                        help="pairs per burst, sent back to back (1: evenly spaced)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args, _ = parser.parse_known_args()  # run.sh bench passes its arguments to every bench

    domain = 150 + os.getpid() % 60
    if args.dds_profile:  # this process (camera and consumer) and, inherited, the node
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = args.dds_profile
    else:
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    frames = camera_frames()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node_proc = start_node(args, domain)
    try:
        node = rclpy.create_node("bench_camera", namespace="/bench", context=context)
        publishers = (node.create_publisher(Image, "color/image_raw", RELIABLE),
                      node.create_publisher(Image, "depth/image_raw", RELIABLE),
                      node.create_publisher(CameraInfo, "color/camera_info", RELIABLE))
        consumer = Consumer(node, [o for o in args.outputs.split(",") if o], args.consumer == "raw")
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        threading.Thread(target=_spin, args=(executor,), daemon=True).start()
        wait_for_node(node_proc, publishers)
        samples, measured_from, measured_to = play(args, frames, publishers, node_proc.pid, consumer)
        results = summarise(args, consumer, samples, measured_from, measured_to)
        executor.shutdown(timeout_sec=2.0)
    finally:
        node_proc.terminate()
        node_proc.wait(timeout=20)
        rclpy.shutdown(context=context)
    print_report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _spin(executor) -> None:
    try:
        executor.spin()
    except ExternalShutdownException:
        pass


def rss_slope_mb_per_min(rss: list[float]) -> float:
    """Least-squares slope of per-second samples, MB per minute."""
    if len(rss) < 2:
        return float("nan")
    t = [float(i) for i in range(len(rss))]
    t_mean, r_mean = statistics.fmean(t), statistics.fmean(rss)
    num = sum((a - t_mean) * (b - r_mean) for a, b in zip(t, rss))
    return 60.0 * num / sum((a - t_mean) ** 2 for a in t)


def memory_summary(samples_all: list[dict]) -> dict:
    """Per part of memory: at the start, at the end of each idle pause, and over the measured
    part the medians of its first and last 10 s, the max and the least-squares slope."""
    out = {}
    for part in SERIES:
        every = [m[part] for m in samples_all]
        series = [m[part] for m in samples_all if m["phase"] == "measured"]
        idle = {phase: [m[part] for m in samples_all if m["phase"] == phase]
                for phase in ("idle_after_warmup", "idle_at_end")}
        tail = max(1, min(10, len(series) // 3))
        out[part] = {
            "at_start_mb": round(every[0], 1) if every else None,
            **{f"{phase}_mb": round(v[-1], 1) if v else None for phase, v in idle.items()},
            "first_mb": round(statistics.median(series[:tail]), 1) if series else None,
            "last_mb": round(statistics.median(series[-tail:]), 1) if series else None,
            "max_mb": round(max(series), 1) if series else None,
            "slope_mb_per_min": round(rss_slope_mb_per_min(series), 3),
        }
    return out


def summarise(args, consumer: Consumer, samples_all: list[dict], measured_from: float,
              measured_to: float) -> dict:
    arrivals = [t for t in consumer.arrivals if measured_from <= t <= measured_to + 0.5]
    mean_hz, slowest_hz = rate_summary(arrivals)
    d = consumer.diagnostics
    return {
        "engine": args.engine, "seconds": args.seconds, "warmup_s": args.warmup,
        "input_hz": args.rate, "qos": args.qos, "output_queue_depth": args.output_queue_depth,
        "heap_trim_period": args.heap_trim_period,
        "admission": args.admission, "burst": args.burst,
        "consumer": args.consumer,
        "outputs": "depth," + args.outputs if args.outputs else "depth",
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "dds_profile": Path(args.dds_profile).name if args.dds_profile else "fastdds defaults",
        "frames_sent": int(args.seconds * args.rate), "frames_out": len(arrivals),
        "output_hz_mean": round(mean_hz, 2), "output_hz_slowest_5s": round(slowest_hz, 2),
        "overhead_p50_ms": float(d.get("overhead_p50_ms", "nan")),
        "overhead_cpu_p50_ms": float(d.get("overhead_cpu_p50_ms", "nan")),
        "engine_p50_ms": float(d.get("engine_p50_ms", "nan")),
        **{f"{k}_p50_ms": float(d.get(f"{k}_p50_ms", "nan")) for k in OVERHEAD_STAGES},
        **{f"{k}_cpu_p50_ms": float(d.get(f"{k}_cpu_p50_ms", "nan")) for k in OVERHEAD_STAGES},
        "latency_p50_ms": float(d.get("latency_p50_ms", "nan")),
        "latency_p95_ms": float(d.get("latency_p95_ms", "nan")),
        "heap_trims": int(d.get("heap_trims", "0")),
        "heap_trim_last_ms": float(d.get("heap_trim_last_ms", "nan")),
        "drops": {k.split(".", 1)[1]: int(v) for k, v in d.items() if k.startswith("dropped.")},
        **memory_summary(samples_all),
        "idle_seconds": args.idle_seconds,
        "memory_mb_each_second": {part: [round(m[part], 1) for m in samples_all]
                                  for part in SERIES}
                                 | {"phase": [m["phase"] for m in samples_all]},
    }


def print_report(r: dict) -> None:
    print(f"lingbot_depth_node, engine {r['engine']}, {r['input_hz']:.0f} Hz in for {r['seconds']:.0f} s "
          f"after {r['warmup_s']:.0f} s of warm-up "
          f"(640x480; subscribed: {r['outputs']}, consumer {r['consumer']}; input QoS {r['qos']}, "
          f"{r['dds_profile']}; admission {r['admission']}, bursts of {r['burst']})")
    print(f"  node overhead per frame (excl. engine), median : {r['overhead_p50_ms']:.2f} ms"
          "   target < 5 ms")
    print(f"    the same in CPU time of the node's threads       : {r['overhead_cpu_p50_ms']:.2f} ms")
    print(f"    stages, medians: receive {r['receive_p50_ms']:.2f} ms, decode {r['decode_p50_ms']:.2f} ms, "
          f"outputs incl. cloud {r['outputs_p50_ms']:.2f} ms, publish {r['publish_p50_ms']:.2f} ms")
    print(f"    the same in CPU time: receive {r['receive_cpu_p50_ms']:.2f} ms, decode "
          f"{r['decode_cpu_p50_ms']:.2f} ms, outputs {r['outputs_cpu_p50_ms']:.2f} ms, publish "
          f"{r['publish_cpu_p50_ms']:.2f} ms")
    print(f"  engine per frame, median                       : {r['engine_p50_ms']:.2f} ms")
    print(f"  output rate: mean {r['output_hz_mean']:.2f} Hz, slowest 5 s {r['output_hz_slowest_5s']:.2f} Hz"
          f"   target >= 25 Hz")
    print(f"  frames: {r['frames_sent']} sent, {r['frames_out']} completed; drops over the whole run {r['drops']}")
    print(f"  latency p50 {r['latency_p50_ms']:.1f} ms, p95 {r['latency_p95_ms']:.1f} ms")
    print(f"  machine load average at the end (1, 5, 15 min): {r['load_average']}")
    names = {"rss": "RSS", "anon": "  anonymous (heap)", "huge": "    of it huge pages",
             "brk_heap": "    of it the malloc heap", "file": "  files (libraries)",
             "shmem": "  shared memory (DDS)", "heap_in_use": "malloc: in use",
             "heap_free": "malloc: free, held for reuse"}
    print(f"  node memory, MB: at start | idle after warm-up, idle at the end ({r['idle_seconds']:g} s "
          "pauses, no frame in flight) | streaming: first 10 s, last 10 s, max, slope/min")
    for part, name in names.items():
        m = r[part]
        print(f"    {name:<30}: {m['at_start_mb']} | {m['idle_after_warmup_mb']}, {m['idle_at_end_mb']} | "
              f"{m['first_mb']}, {m['last_mb']}, {m['max_mb']}, {m['slope_mb_per_min']:+.3f}")
    print(f"  heap trims (every {r['heap_trim_period']:g} s): {r['heap_trims']}, the last took "
          f"{r['heap_trim_last_ms']:.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
