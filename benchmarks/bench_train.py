"""Training throughput (samples/s) of the tiny configuration on this machine.

Uses config/train_example.yaml (tiny network, 84x112 crops of examples/) through the real
trainer: DataLoader (augmentation + masking in the main process), forward, L1, backward,
clipping, AdamW. Each row: median seconds per optimiser step over --steps timed steps after
--warmup steps, samples/s = batch / median, and the data share (time in the loader).
Rows cover both depth-token masking paths (drop = reference, key_mask = batched), the given
batch sizes and CPU thread counts.

    python benchmarks/bench_train.py [--steps 30] [--warmup 5] [--batch 4 8] [--threads 1 2] [--json F]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from lingbot_depth_ros.train.config import load_config  # noqa: E402
from lingbot_depth_ros.train.data import make_loader  # noqa: E402
from lingbot_depth_ros.train.distributed import DistInfo  # noqa: E402
from lingbot_depth_ros.train.loop import Trainer  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "train_example.yaml"


def time_steps(masking: str, batch: int, steps: int, warmup: int, threads: int) -> dict:
    cfg = load_config(EXAMPLE)
    cfg.depth_token_masking, cfg.batch_size, cfg.steps = masking, batch, warmup + steps
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        cfg.out_dir = tmp
        trainer = Trainer(cfg, DistInfo(), resume=False)
        loader = iter(make_loader(trainer.split, cfg, 0))
        step_s, data_s = [], []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            batch_data = next(loader)
            t1 = time.perf_counter()
            trainer.optimiser_step([batch_data])
            t2 = time.perf_counter()
            if i >= warmup:
                step_s.append(t2 - t0)
                data_s.append(t1 - t0)
    med = statistics.median(step_s)
    return {"masking": masking, "batch": batch, "crop": list(cfg.data.crop_size),
            "threads": threads, "median_step_s": med, "samples_per_s": batch / med,
            "data_share": statistics.median(data_s) / med}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, nargs="+", default=[4])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, min(2, os.cpu_count() or 1)])
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = [time_steps(m, b, args.steps, args.warmup, t)
            for t in dict.fromkeys(args.threads) for b in args.batch for m in ("drop", "key_mask")]
    print(f"tiny config ({EXAMPLE.name}), {args.steps} timed steps after {args.warmup} warm-up, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs")
    print("| threads | depth-token masking | batch | crop (HxW) | s/step (median) | samples/s | data share |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['threads']} | {r['masking']} | {r['batch']} | {r['crop'][0]}x{r['crop'][1]} | "
              f"{r['median_step_s']:.3f} | {r['samples_per_s']:.1f} | {100 * r['data_share']:.0f} % |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
