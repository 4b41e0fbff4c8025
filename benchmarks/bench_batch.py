"""Batched inference on the CPU: ms per frame at batch 1, 2 and 3 (issue 22, part 5).

The small test model (tiny_config, random weights) is exported once with a batch axis
(export-onnx --max-batch) and run by the onnxruntime engine (CPU, fused attention) and the
torch engine (CPU, fp32) through Engine.complete_batch on the four 640x480 example captures,
whose holes differ (so do their counts of valid depth tokens). Batch sizes take turns in
every round, so a load that drifts during the run weighs on all of them alike. Reported per
engine and batch size: median wall and process-CPU ms per frame (CPU: every thread of this
process), and their ratio to batch 1 measured in the same run.

Target (issue 22): ms per frame at batch 3 against batch 1, stated; a CPU may gain little.

    python benchmarks/bench_batch.py [--batches 1,2,3] [--rounds 15] [--threads 0]
        [--engines onnxruntime,torch] [--num-tokens 600] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lingbot_depth_ros.core.captures import find_captures, load_capture  # noqa: E402
from lingbot_depth_ros.engines import create_engine  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
ENGINES = ("onnxruntime", "torch")
WARMUP_ROUNDS = 2


def int_list(text: str) -> list[int]:
    values = sorted({int(v) for v in text.split(",")})
    if not values or values[0] < 1:
        raise argparse.ArgumentTypeError(f"positive batch sizes, got {text!r}")
    return values


def make_engines(names, folder: Path, max_batch: int, num_tokens: int, threads: int) -> dict:
    import torch

    from lingbot_depth_ros.model import build_model, save_checkpoint, tiny_config
    from lingbot_depth_ros.model.export import export_onnx

    torch.manual_seed(0)
    model = build_model(tiny_config())
    engines = {}
    if "onnxruntime" in names:
        onnx = export_onnx(model, folder / "tiny.onnx", 480, 640, num_tokens=num_tokens,
                           max_batch=max_batch)
        engines["onnxruntime"] = create_engine("onnxruntime", onnx=onnx, providers="cpu",
                                               threads=threads)
    if "torch" in names:
        if threads:
            torch.set_num_threads(threads)
        checkpoint = save_checkpoint(model, folder / "tiny.pt")
        engines["torch"] = create_engine("torch", checkpoint=checkpoint, device="cpu",
                                         num_tokens=num_tokens)
    return engines


def measure(engine, frames, batches: list[int], rounds: int) -> dict:
    """batch -> (wall ms per frame, CPU ms per frame) of each round."""
    samples = {b: [] for b in batches}
    for round_index in range(WARMUP_ROUNDS + rounds):
        for b in batches:
            batch = [frames[(round_index + i) % len(frames)] for i in range(b)]
            wall, cpu = time.perf_counter(), time.process_time()
            results = engine.complete_batch(batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            assert len(results) == b
            if round_index >= WARMUP_ROUNDS:
                samples[b].append((wall * 1e3 / b, cpu * 1e3 / b))
    return samples


def summarise(samples: dict) -> list[dict]:
    rows = []
    base = None
    for b, values in samples.items():
        wall, cpu = (float(np.median([v[i] for v in values])) for i in (0, 1))
        base = base or (wall, cpu)
        rows.append({"batch": b, "wall_ms_per_frame": wall, "cpu_ms_per_frame": cpu,
                     "wall_ratio": wall / base[0], "cpu_ratio": cpu / base[1],
                     "rounds": len(values)})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batches", type=int_list, default=[1, 2, 3],
                        help="batch sizes, comma-separated; the smallest is the baseline")
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds (medians)")
    parser.add_argument("--threads", type=int, default=0,
                        help="intra-op threads of both engines (0: each runtime's own choice)")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--num-tokens", type=int, default=600,
                        help="token budget of the exported graph and the torch engine")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.engines.split(",") if n.strip()]
    if not names or set(names) - set(ENGINES):
        parser.error(f"--engines takes {', '.join(ENGINES)}")
    logging.basicConfig(level=logging.WARNING)
    frames = [load_capture(path) for path in find_captures(EXAMPLES)]
    if any(f.depth.shape != (480, 640) for f in frames):
        parser.error("the example captures are expected at 640x480")
    report = {"batches": args.batches, "num_tokens": args.num_tokens, "threads": args.threads,
              "rounds": args.rounds, "engines": {}}
    with tempfile.TemporaryDirectory() as tmp:
        engines = make_engines(names, Path(tmp), max(args.batches), args.num_tokens,
                               args.threads)
        for name, engine in engines.items():
            report["engines"][name] = {"describe": engine.describe(),
                                       "rows": summarise(measure(engine, frames, args.batches,
                                                                 args.rounds))}
    print(f"tiny model, 640x480, {args.num_tokens} tokens, threads {args.threads}, "
          f"medians of {args.rounds} rounds")
    print(f"{'engine':<12} {'batch':>5} {'wall ms/frame':>14} {'CPU ms/frame':>13} "
          f"{'wall x b1':>10} {'CPU x b1':>9}")
    for name, result in report["engines"].items():
        for row in result["rows"]:
            print(f"{name:<12} {row['batch']:>5} {row['wall_ms_per_frame']:>14.1f} "
                  f"{row['cpu_ms_per_frame']:>13.1f} {row['wall_ratio']:>9.2f}x "
                  f"{row['cpu_ratio']:>8.2f}x")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
