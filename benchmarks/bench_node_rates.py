"""lingbot_depth_node under a camera stream, measured as ROS perception benchmarks measure nodes.

    python benchmarks/bench_node_rates.py [--engines guided] [--admissions latest,burst]
        [--rates 15,30] [--runs 5] [--seconds 10] [--search-frames 150] [--outputs points]
        [--camera-profile large|none] [--json F]

The method of NVIDIA's ros2_benchmark, in our own code: the node runs as its own process (as
`ros2 run`/`ros2 launch` start it, under the launch file's large-data DDS profile); this
process is the camera (colour rgb8, depth 16UC1 and camera info from the shipped captures,
published reliable and serialized, as a driver hands them over) and the consumer (it takes
depth_completed, plus --outputs, serialized). For each engine and admission policy:
- peak sustainable input rate: the highest camera rate at which every pair of
  --search-frames pairs comes out as depth_completed, found by bisection (1 Hz steps);
- fixed-rate runs at each of --rates: --runs runs of --seconds, each reporting pairs out of
  pairs sent, end-to-end latency (camera publish to consumer receive) p50/p95/p99, the jitter
  of the output period (standard deviation of the gaps between outputs) and the node
  process's CPU time per pair sent; each figure is the mean of the runs left after dropping
  its best and its worst run.
The first admission policy is the baseline: the others are reported as ratios against it,
measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import struct
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_node  # noqa: E402  (camera frames, node process start-up)
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from lingbot_depth_ros.core import serialized  # noqa: E402

START_NS = 1_700_000_000 * 10**9
#: after the last pair is sent, how long the consumer waits for the outputs still on their way
DRAIN_S = 2.0


class Camera:
    """Publishes numbered pairs at a rate; the consumer side records when each output came."""

    def __init__(self, node, frames: list, outputs: list[str]) -> None:
        self.frames, self.next_index, self.short = frames, 0, 0
        self.pubs = (node.create_publisher(Image, "color/image_raw", bench_node.RELIABLE),
                     node.create_publisher(Image, "depth/image_raw", bench_node.RELIABLE),
                     node.create_publisher(CameraInfo, "color/camera_info", bench_node.RELIABLE))
        self.sent: dict[int, float] = {}  # stamp -> monotonic time its colour image went out
        self.received: dict[int, float] = {}  # stamp -> monotonic time depth_completed came
        self._lock = threading.Lock()
        node.create_subscription(Image, "depth_completed", self._on_output, bench_node.RELIABLE, raw=True)
        for name in outputs:  # the node builds an output only when someone subscribes
            topic, msg_type = bench_node.OPTIONAL_OUTPUTS[name]
            if msg_type is not None:
                node.create_subscription(msg_type, topic, lambda _: None, bench_node.RELIABLE, raw=True)

    def _on_output(self, raw: bytes) -> None:
        now = time.monotonic()
        # CDR: 4-byte encapsulation header, then std_msgs/Header's stamp (int32 s, uint32 ns)
        sec, nanosec = struct.unpack_from("<iI", raw, 4)
        with self._lock:
            self.received[sec * 10**9 + nanosec] = now

    def stream(self, rate: float, count: int) -> list[int]:
        """Send `count` pairs at `rate` Hz; the stamps sent, in order. A publisher that blocks
        (a reliable writer without the large-data profile waits for acknowledgements) may
        not hold the rate: sending stops at 1.5x the planned time plus a second, and
        `self.short` says how many pairs were never sent."""
        period, stamps, start = 1.0 / rate, [], time.monotonic()
        give_up = start + 1.5 * count * period + 1.0
        self.short = 0
        for k in range(count):
            if time.monotonic() > give_up:
                self.short = count - k
                break
            delay = start + k * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            stamps.append(self.publish_next())
        deadline = time.monotonic() + DRAIN_S
        while time.monotonic() < deadline and not self.all_out(stamps):
            time.sleep(0.02)
        return stamps

    def publish_next(self) -> int:
        """Send the next pair (camera info, colour, depth) now; its stamp."""
        color, depth, info = self.frames[self.next_index % len(self.frames)]
        # stamps 1/30 s apart whatever the rate: each stamp names one pair, never reused
        stamp = START_NS + self.next_index * 33_333_333
        self.next_index += 1
        with self._lock:
            self.sent[stamp] = time.monotonic()
        self.pubs[2].publish(serialized.camera_info_cdr(stamp, bench_node.FRAME_ID, info))
        self.pubs[0].publish(serialized.image_cdr(stamp, bench_node.FRAME_ID, color))
        self.pubs[1].publish(serialized.image_cdr(stamp, bench_node.FRAME_ID, depth))
        return stamp

    def all_out(self, stamps: list[int]) -> bool:
        with self._lock:
            return all(s in self.received for s in stamps)

    def outcome(self, stamps: list[int]) -> tuple[list[float], list[float]]:
        """(latency ms of each pair that came out, output arrival times in order)."""
        with self._lock:
            done = [s for s in stamps if s in self.received]
            latency = [(self.received[s] - self.sent[s]) * 1e3 for s in done]
            arrivals = sorted(self.received[s] for s in done)
        return latency, arrivals


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def fixed_rate_run(camera: Camera, pid: int, rate: float, seconds: float) -> dict:
    cpu0 = process_cpu_s(pid)
    planned = int(rate * seconds)
    stamps = camera.stream(rate, planned)
    cpu = process_cpu_s(pid) - cpu0
    latency, arrivals = camera.outcome(stamps)
    gaps = [(b - a) * 1e3 for a, b in zip(arrivals, arrivals[1:])]
    return {"sent": len(stamps), "unsent": planned - len(stamps), "out": len(latency),
            "out_pct": 100.0 * len(latency) / max(1, len(stamps)),
            "latency_p50_ms": percentile(latency, 50), "latency_p95_ms": percentile(latency, 95),
            "latency_p99_ms": percentile(latency, 99),
            "jitter_ms": statistics.pstdev(gaps) if len(gaps) > 1 else float("nan"),
            "cpu_ms_per_pair": 1e3 * cpu / len(stamps)}


def trimmed(runs: list[dict]) -> dict:
    """Each figure: the mean of the runs left after dropping its best and its worst."""
    out = {}
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        kept = values[1:-1] if len(values) > 2 else values
        out[key] = statistics.fmean(kept)
    return out


def peak_rate(camera: Camera, frames: int, low: int = 5, high: int = 60) -> float:
    """The highest rate (1 Hz steps, bisection between `low` and `high`) at which all of
    `frames` pairs come out; 0 if none above `low` does."""
    best = 0.0
    while high - low > 1:
        rate = (low + high) // 2  # strictly between: the search always narrows
        stamps = camera.stream(rate, frames)
        if not camera.short and camera.all_out(stamps):  # the camera held the rate, none lost
            best, low = rate, rate
        else:
            high = rate
        time.sleep(0.5)  # let a saturated node finish before the next trial
    return best


def measure(args, engine: str, admission: str, frames: list, domain: int) -> dict:
    node_args = SimpleNamespace(engine=engine, qos="reliable", output_queue_depth=5, heap_trim_period=5.0,
                                admission=admission)
    # the node always gets the launch file's profile; the camera (this process) as
    # --camera-profile says (a driver started by the launch file, or one on its own)
    node_env = dict(os.environ, FASTDDS_DEFAULT_PROFILES_FILE=str(ROOT / "config" / "fastdds_large_data.xml"))
    proc = bench_node.start_node(node_args, domain, env=node_env)
    if args.camera_profile == "large":
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = node_env["FASTDDS_DEFAULT_PROFILES_FILE"]
    else:
        os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("bench_camera", namespace="/bench", context=context)
        camera = Camera(node, frames, [o for o in args.outputs.split(",") if o])
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        threading.Thread(target=bench_node._spin, args=(executor,), daemon=True).start()
        bench_node.wait_for_node(proc, camera.pubs)
        camera.stream(30.0, 90)  # warm-up: engine caches, DDS matching of every output
        result = {"engine": engine, "admission": admission,
                  "peak_hz": peak_rate(camera, args.search_frames)}
        for rate in args.rates:
            runs = [fixed_rate_run(camera, proc.pid, rate, args.seconds) for _ in range(args.runs)]
            result[f"{rate:g}hz"] = trimmed(runs) | {"runs": runs}
        executor.shutdown(timeout_sec=2.0)
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        rclpy.try_shutdown(context=context)


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    return f"{model}, {os.cpu_count()} cores, Python {platform.python_version()}"


def print_report(results: list[dict], rates: list[float]) -> None:
    print(f"machine: {machine()}; load average at the end {[round(v, 2) for v in os.getloadavg()]}")
    print("| engine | admission | peak rate, Hz | camera, Hz | pairs out of sent | latency p50 / p95 / p99, ms "
          "| output jitter, ms | node CPU per pair, ms | p95 vs baseline |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        base = next(b for b in results if b["engine"] == r["engine"])
        for rate in rates:
            m, b = r[f"{rate:g}hz"], base[f"{rate:g}hz"]
            unsent = f", camera fell behind: {m['unsent']:.0f} unsent" if m["unsent"] else ""
            print(f"| {r['engine']} | {r['admission']} | {r['peak_hz']:.0f} | {rate:g} | "
                  f"{m['out']:.1f} / {m['sent']:.0f} ({m['out_pct']:.1f}%{unsent}) | "
                  f"{m['latency_p50_ms']:.1f} / {m['latency_p95_ms']:.1f} / {m['latency_p99_ms']:.1f} | "
                  f"{m['jitter_ms']:.1f} | {m['cpu_ms_per_pair']:.1f} | "
                  f"{m['latency_p95_ms'] / b['latency_p95_ms']:.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="guided", help="comma-separated engines")
    parser.add_argument("--admissions", default="latest,burst",
                        help="comma-separated admission policies; the first is the baseline")
    parser.add_argument("--rates", default="15,30", help="comma-separated camera rates, Hz")
    parser.add_argument("--runs", type=int, default=5, help="runs per rate (best and worst dropped)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one fixed-rate run")
    parser.add_argument("--search-frames", type=int, default=150,
                        help="pairs per trial of the peak-rate search")
    parser.add_argument("--outputs", default="points",
                        help="outputs subscribed besides depth_completed ('' = depth only)")
    parser.add_argument("--camera-profile", default="large", choices=("large", "none"),
                        help="DDS profile of the camera process: the launch file's large-data "
                             "profile (what it gives a driver it starts) or Fast DDS defaults")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args, _ = parser.parse_known_args()  # run.sh bench passes its arguments to every bench
    args.rates = [float(r) for r in args.rates.split(",")]

    frames = bench_node.camera_frames()
    results = [measure(args, engine, admission, frames, 150 + os.getpid() % 60)
               for engine in args.engines.split(",") for admission in args.admissions.split(",")]
    print_report(results, args.rates)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
