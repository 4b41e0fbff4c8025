"""Benchmark the classical engines: accuracy on the block-wise protocol and single-core speed.

Accuracy: every capture in examples/ (640x480) is corrupted at --level (default medium) with
each seed of --seeds, completed by guided, nearest and telea, and scored on the dropped
pixels. Telea is tried at every radius of --telea-radii and its best radius (lowest mean
RMSE) is the baseline. Tables: masked RMSE per capture and mean per engine, and the mean per
seed. The guided engine's parameters were tuned on seeds 0-7, so the default seeds
(100-107) are held out.

Speed: one thread (OMP_NUM_THREADS=1, cv2.setNumThreads(1)); median wall and CPU ms per
frame of Engine.complete on the corrupted 640x480 frames, ratio to nearest in the same run.

Targets (issue 2): guided >= 10% lower masked RMSE than the better of nearest and telea (at
its best) at medium, mean over the captures; guided >= 30 frames/s on one core.

    OMP_NUM_THREADS=1 python benchmarks/bench_engines.py [--seeds 100-107] [--level medium]
        [--telea-radii 3,10,20,40] [--levels easy,hard,extreme] [--json F]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/cv2 load their thread pools

import argparse  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lingbot_depth_ros.core.captures import find_captures, load_capture  # noqa: E402
from lingbot_depth_ros.core.protocol import evaluate_engine, make_trials  # noqa: E402
from lingbot_depth_ros.engines import create_engine  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def seed_list(text: str) -> list[int]:
    if "-" in text:
        lo, hi = (int(v) for v in text.split("-"))
        return list(range(lo, hi + 1))
    return [int(v) for v in text.split(",")]


def accuracy(engine, frames, level: str, seeds: list[int]) -> dict:
    """Masked RMSE per seed and capture -> per-capture means, per-seed means, overall mean."""
    table = {}  # seed -> capture -> rmse
    for seed in seeds:
        scores = evaluate_engine(engine, make_trials(frames, level, [seed]), warmup=0)
        table[seed] = {c: s["masked"]["rmse"] for c, s in scores["per_capture"].items()}
    captures = [f.frame_id for f in frames]
    per_capture = {c: float(np.mean([table[s][c] for s in seeds])) for c in captures}
    per_seed = {s: float(np.mean(list(table[s].values()))) for s in seeds}
    return {"per_capture": per_capture, "per_seed": per_seed,
            "mean": float(np.mean(list(per_capture.values())))}


def speed(engine, frames, min_frames: int = 12, min_s: float = 3.0) -> dict:
    """Median wall and CPU milliseconds of engine.complete per frame (after one warm-up)."""
    trials = make_trials(frames, "medium", [100])
    engine.complete(trials[0].frame)
    wall, cpu = [], []
    start = time.perf_counter()
    while len(wall) < min_frames or time.perf_counter() - start < min_s:
        frame = trials[len(wall) % len(trials)].frame
        t0, c0 = time.perf_counter(), time.process_time()
        engine.complete(frame)
        cpu.append((time.process_time() - c0) * 1e3)
        wall.append((time.perf_counter() - t0) * 1e3)
        if len(wall) >= 400:
            break
    return {"wall_ms": float(np.median(wall)), "cpu_ms": float(np.median(cpu)),
            "frames": len(wall)}


def accuracy_section(frames, args) -> dict:
    results = {"guided": accuracy(create_engine("guided"), frames, args.level, args.seeds),
               "nearest": accuracy(create_engine("nearest"), frames, args.level, args.seeds)}
    for radius in args.telea_radii:
        results[f"telea r={radius:g}"] = accuracy(create_engine("telea", radius=radius), frames,
                                                  args.level, args.seeds)
    best = min((k for k in results if k.startswith("telea")), key=lambda k: results[k]["mean"])
    captures = [f.frame_id for f in frames]
    print(f"\nmasked RMSE (m), level {args.level}, seeds {args.seeds[0]}..{args.seeds[-1]} "
          f"({len(args.seeds)}), mean over seeds; telea best radius: {best}")
    print(f"{'engine':<14}" + "".join(f"{'capture ' + c:>12}" for c in captures) + f"{'mean':>10}")
    for name, r in results.items():
        print(f"{name:<14}" + "".join(f"{r['per_capture'][c]:>12.4f}" for c in captures)
              + f"{r['mean']:>10.4f}")
    print(f"\nmean masked RMSE per seed\n{'engine':<14}" + "".join(f"{s:>8}" for s in args.seeds))
    for name, r in results.items():
        print(f"{name:<14}" + "".join(f"{r['per_seed'][s]:>8.4f}" for s in args.seeds))
    baseline = min(results["nearest"]["mean"], results[best]["mean"])
    gain = 1 - results["guided"]["mean"] / baseline
    wins = sum(results["guided"]["per_seed"][s] < min(results["nearest"]["per_seed"][s],
                                                      results[best]["per_seed"][s])
               for s in args.seeds)
    verdict = "MET" if gain >= 0.10 else "MISSED"
    print(f"\nguided {results['guided']['mean']:.4f} m vs best baseline {baseline:.4f} m: "
          f"{100 * gain:.1f}% lower (target >= 10%: {verdict}); guided best on "
          f"{wins}/{len(args.seeds)} seeds")
    return {"results": results, "telea_best": best, "gain": gain, "target_met": gain >= 0.10}


def speed_section(frames, best_telea: str | None) -> dict:
    cv2.setNumThreads(1)
    engines = {"nearest": create_engine("nearest"), "guided": create_engine("guided"),
               "telea r=5": create_engine("telea", radius=5)}
    if best_telea and best_telea != "telea r=5":
        engines[best_telea] = create_engine("telea", radius=float(best_telea.split("=")[1]))
    timings = {name: speed(engine, frames) for name, engine in engines.items()}
    ref = timings["nearest"]["wall_ms"]
    print(f"\nspeed, 640x480, one thread (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, "
          f"cv2 threads {cv2.getNumThreads()}), medians")
    print(f"{'engine':<14}{'wall ms':>10}{'CPU ms':>10}{'frames/s':>10}{'x nearest':>11}"
          f"{'frames':>8}")
    for name, t in timings.items():
        print(f"{name:<14}{t['wall_ms']:>10.1f}{t['cpu_ms']:>10.1f}{1e3 / t['wall_ms']:>10.1f}"
              f"{t['wall_ms'] / ref:>11.2f}{t['frames']:>8}")
    fps = 1e3 / timings["guided"]["wall_ms"]
    print(f"guided {fps:.1f} frames/s on one thread (target >= 30: "
          f"{'MET' if fps >= 30 else 'MISSED'}); load average {os.getloadavg()[0]:.1f}")
    return {"timings": timings, "guided_fps": fps, "target_met": fps >= 30,
            "loadavg": os.getloadavg()[0]}


def levels_section(frames, levels: list[str], seeds: list[int]) -> dict:
    out = {}
    print(f"\nmean masked RMSE (m) by level, seeds {seeds[0]}..{seeds[-1]}, telea radius 5")
    print(f"{'level':<10}{'guided':>10}{'nearest':>10}{'telea':>10}")
    for level in levels:
        out[level] = {name: accuracy(create_engine(name), frames, level, seeds)["mean"]
                      for name in ("guided", "nearest", "telea")}
        print(f"{level:<10}" + "".join(f"{v:>10.4f}" for v in out[level].values()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=EXAMPLES)
    parser.add_argument("--level", default="medium")
    parser.add_argument("--seeds", type=seed_list, default=list(range(100, 108)))
    parser.add_argument("--telea-radii", type=lambda t: [float(v) for v in t.split(",")],
                        default=[3.0, 10.0, 20.0, 40.0])
    parser.add_argument("--levels", type=lambda t: [v for v in t.split(",") if v], default=[],
                        help="extra levels for a guided/nearest/telea table, e.g. easy,hard")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    frames = [load_capture(p) for p in find_captures(args.data)]
    print(f"{len(frames)} captures from {args.data}: "
          + ", ".join(f"{f.frame_id} {f.width}x{f.height}" for f in frames))
    report = {}
    if not args.skip_accuracy:
        report["accuracy"] = accuracy_section(frames, args)
    report["speed"] = speed_section(frames, report.get("accuracy", {}).get("telea_best"))
    if args.levels:
        report["levels"] = levels_section(frames, args.levels, args.seeds)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
