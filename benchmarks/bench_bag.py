"""Benchmark `bag process` end to end against the engine alone over the same frames.

A 640x480 MCAP demo bag is written from examples/ (--frames pairs). Each repeat times, in
turn: the engine alone over every frame (decoded beforehand, in memory) and `bag process` from
the input bag to a new bag, on tmpfs (/dev/shm, no disk in the way) and on --disk-dir, with
every node output, and on tmpfs with only depth, camera info and source mask ("lean": no
cloud, no CompletedRGBD, a fifth of the output bytes). The table gives medians over the
repeats, frames/s and the ratio to the engine alone.

Targets (issue 5): with `guided`, at least 20 frames/s end to end and at most 1.3x the
engine alone.

    python benchmarks/bench_bag.py [--engine guided] [--frames 60] [--repeats 3] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lingbot_depth_ros.bag.demo import write_demo_bag  # noqa: E402
from lingbot_depth_ros.bag.frames import FrameAssembler, PairStats, iter_frames  # noqa: E402
from lingbot_depth_ros.bag.process import process_bag  # noqa: E402
from lingbot_depth_ros.bag.reader import BagReader  # noqa: E402
from lingbot_depth_ros.bag.topics import select_topics  # noqa: E402
from lingbot_depth_ros.core.allocator import tune_for_frame_buffers  # noqa: E402
from lingbot_depth_ros.core.pairing import DropCounter  # noqa: E402
from lingbot_depth_ros.core.threads import set_math_threads  # noqa: E402
from lingbot_depth_ros.engines import create_engine  # noqa: E402
from lingbot_depth_ros.ros.params import NodeConfig  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_frames(bag: Path, config: NodeConfig) -> list:
    with BagReader(bag) as reader:
        topics = select_topics(reader)
        return [item.frame for item in iter_frames(reader, topics, config, DropCounter(),
                                                    PairStats(), FrameAssembler(config))]


def time_engine(engine, frames: list) -> float:
    t0 = time.perf_counter()
    for frame in frames:
        engine.complete(frame)
    return time.perf_counter() - t0


def time_process(bag: Path, out: Path, engine, config: NodeConfig) -> tuple[float, dict]:
    if out.exists():
        shutil.rmtree(out) if out.is_dir() else out.unlink()
    t0 = time.perf_counter()
    summary = process_bag(bag, out, engine, config, show_progress=False)
    wall = time.perf_counter() - t0
    size = out.stat().st_size
    out.unlink()
    return wall, {"processed": summary.processed, "engine_s": summary.engine_s, "bytes": size}


def main() -> int:
    tune_for_frame_buffers()  # as the lingbot-depth CLI does, for both rows
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="guided")
    parser.add_argument("--frames", type=int, default=60, help="pairs in the bag (multiple of 4)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--disk-dir", type=Path, default=Path(tempfile.gettempdir()),
                        help="where the on-disk output goes (default: the temp dir)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = NodeConfig.from_values({})
    set_math_threads(config.math_threads)  # as `bag process` does, for both rows
    engine = create_engine(args.engine)
    work = Path(tempfile.mkdtemp(prefix="bench_bag_"))
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else work
    try:
        bag = work / "in.mcap"
        write_demo_bag(EXAMPLES, bag, repeat=max(1, args.frames // 4))
        frames = load_frames(bag, config)
        n = len(frames)
        for frame in frames[:4]:  # warm-up: caches, allocator, lazy imports
            engine.complete(frame)
        name = f"bench_bag_{os.getpid()}.mcap"
        lean = NodeConfig.from_values({"publish_cloud": False, "publish_rgbd": False})
        # run name -> (output path, node parameters); "lean": depth, camera info and mask only
        runs = {"tmpfs": (shm / name, config), "disk": (args.disk_dir / name, config),
                "tmpfs-lean": (shm / name, lean)}
        times: dict[str, list[float]] = {"engine alone": [], **{f"bag process -> {k}": [] for k in runs}}
        details = {}
        for _ in range(args.repeats):
            times["engine alone"].append(time_engine(engine, frames))
            for kind, (out, run_config) in runs.items():
                wall, details[kind] = time_process(bag, out, engine, run_config)
                times[f"bag process -> {kind}"].append(wall)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = _report(args.engine, n, args.repeats, times, details)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def _report(engine: str, n: int, repeats: int, times: dict, details: dict) -> dict:
    base = statistics.median(times["engine alone"])
    print(f"bag process, engine {engine}, {n} frames 640x480 MCAP, median of {repeats} repeats")
    print("| run | median s | frames/s | x engine alone | output MB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    rows = {}
    for name, values in times.items():
        median = statistics.median(values)
        detail = details.get(name.rsplit(" ", 1)[-1])
        size = f"{detail['bytes'] / 1e6:.0f}" if detail else "-"
        rows[name] = {"median_s": median, "fps": n / median, "ratio": median / base, "all_s": values}
        print(f"| {name} | {median:.2f} | {n / median:.1f} | {median / base:.2f} | {size} |")
    per_repeat = [p / e for p, e in zip(times["bag process -> tmpfs"], times["engine alone"])]
    print("tmpfs / engine alone, each repeat: " + ", ".join(f"{r:.2f}" for r in per_repeat))
    fps_ok = rows["bag process -> tmpfs"]["fps"] >= 20
    ratio_ok = rows["bag process -> tmpfs"]["ratio"] <= 1.3
    print(f"targets (tmpfs): >= 20 frames/s {'met' if fps_ok else 'MISSED'}, "
          f"<= 1.3x engine alone {'met' if ratio_ok else 'MISSED'}")
    return {"engine": engine, "frames": n, "repeats": repeats, "rows": rows}


if __name__ == "__main__":
    sys.exit(main())
