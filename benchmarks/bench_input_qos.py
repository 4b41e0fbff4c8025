"""Images lost between a camera driver process and the node, by input QoS setting.

    python benchmarks/bench_input_qos.py [--count 60] [--rate 30] [--runs 3] [--json F]

A driver stand-in (test/camera_burst.py, as test_node_qos runs it; its own process, started
without FASTDDS_DEFAULT_PROFILES_FILE: the README's "driver in its own terminal") publishes the
640x480 colour, 16UC1 depth and camera info of examples/0 `count` times at `rate` Hz,
reliable with history depth 10 (the rmw default the drivers keep). The node runs in this
process with the guided engine and each setting below; the table gives the median images
received per stream over `runs` runs, and the ratio against the baseline measured in the
same run: the old default (qos sensor_data, queue_depth 5).
Needs the ROS 2 Python wheels (rclpy) and Fast DDS; run through `./run.sh bench` or with the
same environment as the tests.
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

#: (label, node parameters); the first is the baseline
SETTINGS = (
    ("sensor_data, queue_depth 5 (old default)", {"qos": "sensor_data", "queue_depth": 5}),
    ("auto, queue_depth 5", {"qos": "auto", "queue_depth": 5}),
    ("auto, queue_depth 30 (default)", {"qos": "auto", "queue_depth": 30}),
)
#: the driver stand-in the tests use (test_node_qos): reliable, keep last 10, examples/0
CAMERA_BURST = ROOT / "test" / "camera_burst.py"


def one_run(params: dict, domain: int, count: int, rate: float) -> dict[str, int]:
    """Start the node with `params`, play one burst from a driver process, count arrivals."""
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter

    from lingbot_depth_ros.ros.node import LingbotDepthNode

    context = Context()
    rclpy.init(context=context, domain_id=domain)
    overrides = [Parameter(k, value=v) for k, v in {"engine": "guided", **params}.items()]
    node = LingbotDepthNode(context=context, namespace="/bench_qos", parameter_overrides=overrides)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    env = {k: v for k, v in os.environ.items() if k != "FASTDDS_DEFAULT_PROFILES_FILE"}
    try:
        done = subprocess.run([sys.executable, str(CAMERA_BURST), str(domain), "/bench_qos", str(count),
                               str(rate), "reliable"], env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"publisher failed: {done.stderr[-2000:]}")
        time.sleep(2.0)  # let the executor take what its readers still hold
        return {k: node.stats.received[k] for k in ("color", "depth", "camera_info")}
    finally:
        executor.shutdown(timeout_sec=5.0)
        node.destroy_node()
        rclpy.shutdown(context=context)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=60, help="pairs per burst")
    parser.add_argument("--rate", type=float, default=30.0, help="Hz")
    parser.add_argument("--runs", type=int, default=3, help="bursts per setting")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)
    if "FASTDDS_DEFAULT_PROFILES_FILE" in os.environ:
        print("note: this process (the node's side) runs with a Fast DDS profile file")
    domain = 150 + os.getpid() % 50
    results = {}
    for label, params in SETTINGS:
        runs = [one_run(params, domain, args.count, args.rate) for _ in range(args.runs)]
        results[label] = {k: statistics.median(r[k] for r in runs) for k in runs[0]} | {"runs": runs}
    base = results[SETTINGS[0][0]]
    print(f"{args.count} pairs at {args.rate:g} Hz, 640x480, reliable driver without the "
          f"large-data profile; median of {args.runs} runs")
    print(f"{'node setting':<42} {'colour':>7} {'depth':>7} {'info':>7} {'images vs baseline':>19}")
    for label, r in results.items():
        ratio = (r["color"] + r["depth"]) / max(1, base["color"] + base["depth"])
        print(f"{label:<42} {r['color']:>7g} {r['depth']:>7g} {r['camera_info']:>7g} {ratio:>18.2f}x")
    if args.json:
        args.json.write_text(json.dumps({"count": args.count, "rate": args.rate,
                                         "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
