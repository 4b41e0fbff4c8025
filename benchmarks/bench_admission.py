"""The frame runner's admission policies (core/runner.py) against each other, without ROS:

    python benchmarks/bench_admission.py [--engine-ms 20] [--outputs-ms 5] [--rate 30] [--seconds 20]

A stand-in engine and output stage sleep for their time (as the real ones release the GIL
for their heavy parts), so the figures show what the policy costs and saves, not how loaded
the machine is. Pairs arrive at --rate, evenly or in bursts of 3 (the same mean rate); for
each policy: pairs published and superseded, and the latency from admission to the end of
stage 2 (p50, p95, p99). The node's own figures over DDS: bench_node.py --admission --burst.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lingbot_depth_ros.core.pairing import DropCounter  # noqa: E402
from lingbot_depth_ros.core.runner import ADMISSIONS, Admission, FrameRunner  # noqa: E402


def run(policy: str, burst: int, args) -> dict:
    admitted: dict[int, float] = {}
    latencies: list[float] = []
    lock = threading.Lock()

    def complete(item: int) -> int:
        time.sleep(args.engine_ms / 1e3)
        return item

    def publish(item: int) -> None:
        time.sleep(args.outputs_ms / 1e3)
        with lock:
            latencies.append((time.perf_counter() - admitted[item]) * 1e3)

    drops = DropCounter()
    runner = FrameRunner(Admission(policy, drops, cost=1), drops, complete, publish,
                         warn=lambda text: None, name="bench", cost=1)
    period, count = 1.0 / args.rate, int(args.seconds * args.rate)
    time.sleep(0.1)
    start = time.perf_counter()
    for k in range(count):
        delay = start + (k - k % burst) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        admitted[k] = time.perf_counter()
        runner.admission.put(k)
        if burst > 1:
            time.sleep(args.spacing_ms / 1e3)
    runner.drain(timeout=30.0)
    runner.close()
    lat = np.array(latencies)
    return {"policy": policy, "burst": burst, "sent": count, "published": len(latencies),
            "superseded": drops.snapshot().get("superseded", 0),
            **{f"latency_p{q}_ms": round(float(np.percentile(lat, q)), 1) for q in (50, 95, 99)}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-ms", type=float, default=20.0)
    parser.add_argument("--outputs-ms", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--spacing-ms", type=float, default=2.0, help="between pairs of a burst")
    parser.add_argument("--json", type=Path)
    args, _ = parser.parse_known_args()  # run.sh bench passes its arguments to every bench
    rows = [run(policy, burst, args) for burst in (1, 3) for policy in ADMISSIONS]
    print(f"admission policies: stand-in engine {args.engine_ms:g} ms, outputs {args.outputs_ms:g} ms, "
          f"{args.rate:g} Hz for {args.seconds:g} s, evenly or in bursts of 3")
    print("  arrival   policy  published/sent  superseded  latency p50 / p95 / p99 ms")
    for r in rows:
        arrival = "even" if r["burst"] == 1 else f"bursts of {r['burst']}"
        print(f"  {arrival:<11} {r['policy']:<7} {r['published']:>5}/{r['sent']:<5}   {r['superseded']:>8}"
              f"     {r['latency_p50_ms']:6.1f} / {r['latency_p95_ms']:6.1f} / {r['latency_p99_ms']:6.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
