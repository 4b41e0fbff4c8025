"""One rig node against one node per camera, with the same engine, measured side by side.

    python benchmarks/bench_rig.py [--cameras 1,2,3,4] [--rates 15,30] [--seconds 10]
        [--level 9] [--window-ms 10] [--phase sync|spread] [--engine onnxruntime|guided] [--json F]

For each number of cameras N and camera rate: this process is N cameras (the shipped
640x480 captures, colour rgb8 + depth 16UC1 + camera info, published reliable and
serialized, each camera in its own namespace /bench/cam<k>) and their consumer (it takes
each camera's depth_completed). They feed, in turn, one rig node process (`cameras`
cam0..cam<N-1>, one engine, batched) and N single-camera node processes, all under the
launch file's large-data DDS profile and with the same engine: ONNX Runtime on the CPU with
the small random test model (model/checkpoint.py tiny_config) exported for 640x480 at
--level. Reported per layout: pairs out of sent per camera, end-to-end latency (publish to
consumer receive) p50/p95/p99 per camera, the node processes' CPU time per pair sent (and
per pair out: where the engine cannot keep up, most pairs are superseded and cost little),
and their resident memory in total at the end of the run; then the rig against the separate
nodes (memory, CPU per pair, pairs lost) and each camera's p95 against a rig of one at that
rate. --phase sync: every camera's frames go out at the same instants (a triggered rig);
spread: camera k is k/N of a period late (free-running cameras, the worst case for batching).
--engine guided: the classical engine instead (frame by frame, no model), where the test model
on ONNX Runtime is slower than the cameras on this CPU: the rig against separate nodes when
the engine keeps up.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_node  # noqa: E402  (camera frames, spinning)
import bench_node_rates as rates_bench  # noqa: E402  (per-pair latency bookkeeping, CPU, percentiles)
import rclpy  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402


#: before the measured part: engine warm-up and the DDS matching of every output
WARMUP_S = 3.0


class RigCamera(rates_bench.Camera):
    """A bench_node_rates camera whose topics are in its own namespace."""

    def __init__(self, node, frames: list, namespace: str) -> None:
        self.namespace = namespace
        super().__init__(_Prefixed(node, namespace), frames, [])


class _Prefixed:
    """An rclpy node whose create_publisher/create_subscription put topics under `namespace`."""

    def __init__(self, node, namespace: str) -> None:
        self._node, self._namespace = node, namespace

    def create_publisher(self, msg_type, topic, qos, **kwargs):
        return self._node.create_publisher(msg_type, f"{self._namespace}/{topic}", qos, **kwargs)

    def create_subscription(self, msg_type, topic, callback, qos, **kwargs):
        return self._node.create_subscription(msg_type, f"{self._namespace}/{topic}", callback, qos, **kwargs)


def stream(cameras: list[RigCamera], rate: float, seconds: float, phase: str) -> dict[str, list[int]]:
    """Every camera at `rate` Hz for `seconds`; the stamps each sent."""
    period, count = 1.0 / rate, int(rate * seconds)
    offsets = [(k / len(cameras)) * period if phase == "spread" else 0.0 for k in range(len(cameras))]
    events = sorted((i * period + offsets[k], k) for i in range(count) for k in range(len(cameras)))
    stamps: dict[str, list[int]] = {c.namespace: [] for c in cameras}
    start = time.monotonic()
    for at, k in events:
        delay = start + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        stamps[cameras[k].namespace].append(cameras[k].publish_next())
    deadline = time.monotonic() + rates_bench.DRAIN_S
    while time.monotonic() < deadline and not all(c.all_out(stamps[c.namespace]) for c in cameras):
        time.sleep(0.02)
    return stamps


def node_command(args, onnx: Path, extra: list[str]) -> list[str]:
    engine = (["-p", "engine:=onnxruntime", "-p", f"onnx:={onnx}", "-p", f"resolution_level:={args.level}"]
              if args.engine == "onnxruntime" else ["-p", f"engine:={args.engine}"])
    return [sys.executable, str(ROOT / "scripts" / "lingbot_depth_node"), "--ros-args", *engine,
            "-p", "qos:=reliable", "-p", "fallback:=none", "-p", f"batch_window_ms:={args.window_ms}",
            *extra]


def start_layout(args, layout: str, count: int, onnx: Path, domain: int) -> list[subprocess.Popen]:
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain),
               FASTDDS_DEFAULT_PROFILES_FILE=str(ROOT / "config" / "fastdds_large_data.xml"))
    names = [f"cam{k}" for k in range(count)]
    if layout == "rig":
        commands = [node_command(args, onnx, ["-r", "__ns:=/bench", "-p", f"cameras:=[{', '.join(names)}]"])]
    else:
        commands = [node_command(args, onnx, ["-r", f"__ns:=/bench/{name}"]) for name in names]
    return [subprocess.Popen(c, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(args, layout: str, count: int, rate: float, onnx: Path, frames: list) -> dict:
    domain = 150 + (os.getpid() + count * 7 + int(rate)) % 60
    os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(ROOT / "config" / "fastdds_large_data.xml")
    procs = start_layout(args, layout, count, onnx, domain)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node("bench_rig_cameras", context=context)
        cameras = [RigCamera(node, frames, f"/bench/cam{k}") for k in range(count)]
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)
        threading.Thread(target=bench_node._spin, args=(executor,), daemon=True).start()
        for proc in procs:
            bench_node.wait_for_node(proc, [p for c in cameras for p in c.pubs], timeout=120)
        stream(cameras, rate, WARMUP_S, args.phase)
        cpu0 = sum(rates_bench.process_cpu_s(p.pid) for p in procs)
        stamps = stream(cameras, rate, args.seconds, args.phase)
        cpu = sum(rates_bench.process_cpu_s(p.pid) for p in procs) - cpu0
        rss = sum(rss_mb(p.pid) for p in procs)
        per_camera = {}
        for camera in cameras:
            sent = stamps[camera.namespace]
            latency, _ = camera.outcome(sent)
            per_camera[camera.namespace] = {
                "sent": len(sent), "out": len(latency),
                "p50_ms": rates_bench.percentile(latency, 50), "p95_ms": rates_bench.percentile(latency, 95),
                "p99_ms": rates_bench.percentile(latency, 99)}
        sent_total = sum(len(s) for s in stamps.values())
        executor.shutdown(timeout_sec=2.0)
        out_total = sum(c["out"] for c in per_camera.values())
        return {"layout": layout, "cameras": count, "rate_hz": rate, "per_camera": per_camera,
                "cpu_ms_per_pair": 1e3 * cpu / sent_total, "rss_mb_total": rss,
                "cpu_ms_per_pair_out": 1e3 * cpu / out_total if out_total else float("nan"),
                "lost": sent_total - sum(c["out"] for c in per_camera.values())}
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
        rclpy.try_shutdown(context=context)


def export_model(folder: Path, level: int) -> Path:
    import torch

    from lingbot_depth_ros.model import build_model, tiny_config
    from lingbot_depth_ros.model.export import export_onnx

    torch.manual_seed(0)
    return export_onnx(build_model(tiny_config()).eval(), folder / "tiny.onnx", 480, 640,
                       resolution_level=level)


def print_report(results: list[dict], args) -> None:
    print(f"machine: {rates_bench.machine()}; load average at the end "
          f"{[round(v, 2) for v in os.getloadavg()]}; phase {args.phase}, window {args.window_ms} ms, "
          f"{args.seconds:g} s per run (wall-clock figures on a shared machine include its load)")
    print("| cameras | Hz | layout | pairs out of sent, per camera | latency p50 / p95 / p99 ms, per camera "
          "| CPU per pair sent / out, ms | RSS total, MB |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        cams = r["per_camera"].values()
        print(f"| {r['cameras']} | {r['rate_hz']:g} | {r['layout']} | "
              + ", ".join(f"{c['out']}/{c['sent']}" for c in cams) + " | "
              + ", ".join(f"{c['p50_ms']:.0f}/{c['p95_ms']:.0f}/{c['p99_ms']:.0f}" for c in cams)
              + f" | {r['cpu_ms_per_pair']:.1f} / {r['cpu_ms_per_pair_out']:.0f} | {r['rss_mb_total']:.0f} |")
    print()
    print("| cameras | Hz | RSS rig / nodes | CPU per pair rig / nodes | pairs lost rig, nodes "
          "| worst camera p95, rig / rig of one |")
    print("|---|---|---|---|---|---|")
    for rig in (r for r in results if r["layout"] == "rig"):
        nodes = next(r for r in results if r["layout"] == "nodes" and r["cameras"] == rig["cameras"]
                     and r["rate_hz"] == rig["rate_hz"])
        one = next((r for r in results if r["layout"] == "rig" and r["cameras"] == 1
                    and r["rate_hz"] == rig["rate_hz"]), None)
        p95 = max(c["p95_ms"] for c in rig["per_camera"].values())
        base = next(iter(one["per_camera"].values()))["p95_ms"] if one else float("nan")
        print(f"| {rig['cameras']} | {rig['rate_hz']:g} | {rig['rss_mb_total'] / nodes['rss_mb_total']:.2f}x | "
              f"{rig['cpu_ms_per_pair'] / nodes['cpu_ms_per_pair']:.2f}x | {rig['lost']}, {nodes['lost']} | "
              f"{p95 / base:.2f}x |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,3,4", help="comma-separated numbers of cameras")
    parser.add_argument("--rates", default="15,30", help="comma-separated camera rates, Hz")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of one measured run")
    parser.add_argument("--level", type=int, default=0,
                        help="resolution_level of model and node (0: the fewest tokens)")
    parser.add_argument("--engine", default="onnxruntime", choices=("onnxruntime", "guided"),
                        help="the engine of every node (onnxruntime: the small test model)")
    parser.add_argument("--window-ms", type=float, default=10.0, help="the rig's batch_window_ms")
    parser.add_argument("--phase", default="sync", choices=("sync", "spread"),
                        help="cameras' frames at the same instants, or spread over a period")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args, _ = parser.parse_known_args()  # run.sh bench passes its arguments to every bench

    frames = bench_node.camera_frames()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_rig_") as tmp:
        onnx = export_model(Path(tmp), args.level)
        for rate in (float(r) for r in args.rates.split(",")):
            for count in (int(n) for n in args.cameras.split(",")):
                for layout in ("rig", "nodes"):
                    result = measure(args, layout, count, rate, onnx, frames)
                    print(f"measured {layout} x{count} at {rate:g} Hz: lost {result['lost']}, "
                          f"CPU {result['cpu_ms_per_pair']:.1f} ms/pair, RSS {result['rss_mb_total']:.0f} MB",
                          flush=True)
                    results.append(result)
    print_report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
