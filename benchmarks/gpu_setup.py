"""bench_gpu.py's set-up: the model file, the frames, the time budget, timing helpers and the
matrix-product rate that sets the FLOP floor."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lingbot_depth_ros.core.captures import find_captures, load_capture
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.model import build_model, save_checkpoint, token_grid, tokens_for_level
from lingbot_depth_ros.model.network import depth_patch_validity, remap_depth_input
from lingbot_depth_ros.model.vit import PATCH_SIZE

from flops import count_flops  # benchmarks/flops.py

#: random mask heads sit below p = 0.5 everywhere; this logit shift puts about half of the
#: pixels above it, so that the node publishes filled pixels as with trained weights
MASK_LOGIT_SHIFT = 0.46
#: matrix side of the rate measurement (GPU; the dry run uses a small one)
MATMUL_N = 8192


class Budget:
    """Wall-clock budget: sections ask before starting a measurement."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()


@dataclass
class Setup:
    config: dict
    device: torch.device
    checkpoint: Path
    frames: list  # (capture name, RGBDFrame)
    n_frames: int
    warmup: int
    tmp: Path
    dry_run: bool
    budget: Budget
    compile: bool
    capture_roots: list
    _kept: dict = field(default_factory=dict)

    @classmethod
    def create(cls, config: dict, device: torch.device, capture_roots: list[Path],
               n_frames: int, warmup: int, tmp: Path, dry_run: bool, budget: Budget,
               compile: bool) -> Setup:
        frames = []
        for root in capture_roots:
            for folder in find_captures(root):
                frames.append((f"{root.name}/{folder.name}", load_capture(folder)))
        if not frames:
            raise SystemExit(f"bench_gpu: no captures under {', '.join(map(str, capture_roots))}")
        torch.manual_seed(0)
        model = build_model(config)
        if model.mask_head is not None:
            with torch.no_grad():
                model.mask_head.output_blocks[-1].bias += MASK_LOGIT_SHIFT
        checkpoint = save_checkpoint(model, tmp / "model.pt")
        return cls(config, device, checkpoint, frames, n_frames, warmup, tmp, dry_run, budget,
                   compile, list(capture_roots))

    @property
    def size(self) -> tuple[int, int]:
        frame = self.frames[0][1]
        return frame.height, frame.width

    def describe(self) -> dict:
        height, width = self.size
        enc = self.config["encoder"]
        return {
            "model": ("tiny config (dry run)" if self.dry_run
                      else f"{enc['backbone']} (random weights, official layout)"),
            "device_name": (torch.cuda.get_device_name(self.device)
                            if self.device.type == "cuda" else "CPU"),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "checkpoint_mb": round(self.checkpoint.stat().st_size / 2**20, 1),
            "captures": [name for name, _ in self.frames], "height": height, "width": width,
            "frames": self.n_frames, "warmup": self.warmup, "dry_run": self.dry_run,
        }

    def engine(self, **options):
        options.setdefault("device", str(self.device))
        return create_engine("torch", checkpoint=self.checkpoint, **options)

    def kept_depth_tokens(self, frame, level: int) -> int:
        """Depth tokens the gathering path keeps for `frame` at `level` (cached), computed on
        the CPU from the config alone, as the network's preprocess does it."""
        key = (id(frame), level)
        if key not in self._kept:
            rows, cols = token_grid(frame.height, frame.width, tokens_for_level(
                level, self.config.get("num_tokens_range", (1200, 3600))))
            depth = torch.from_numpy(np.nan_to_num(frame.depth, nan=0.0, posinf=0.0))[None, None]
            depth = F.interpolate(depth, (PATCH_SIZE * rows, PATCH_SIZE * cols), mode="nearest")
            remapped = remap_depth_input(depth, self.config.get("remap_depth_in", "log"))
            self._kept[key] = int(depth_patch_validity(remapped, rows, cols).sum())
        return self._kept[key]

    def flops(self, level: int, mode: str, depth_tokens: int | None = None) -> int:
        height, width = self.size
        return count_flops(self.config, height, width, resolution_level=level, mode=mode,
                           depth_tokens=depth_tokens).total


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_engine(setup: Setup, engine) -> dict:
    """Warm up, then time complete() over n_frames frames cycling through the captures."""
    frames = [frame for _, frame in setup.frames]
    for i in range(setup.warmup):
        engine.complete(frames[i % len(frames)])
    walls, inference, used = [], [], []
    for i in range(setup.n_frames):
        frame = frames[i % len(frames)]
        t0 = time.perf_counter()
        result = engine.complete(frame)
        walls.append((time.perf_counter() - t0) * 1e3)
        inference.append(result.timings_ms["inference"])
        used.append(frame)
    return {"median_ms": statistics.median(walls), "p95_ms": float(np.percentile(walls, 95)),
            "inference_ms": statistics.median(inference), "frames_used": used}


def matmul_section(setup: Setup) -> dict:
    """Median bf16 matrix-product rate over timed products after warm-ups (TFLOP/s)."""
    n = 512 if setup.dry_run else MATMUL_N
    device = setup.device
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        torch.mm(a, b)
    rates = []
    for _ in range(3 if setup.dry_run else 20):
        synchronize(device)
        t0 = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        rates.append(2 * n**3 / (time.perf_counter() - t0) / 1e12)
    return {"status": "ok", "tflops": statistics.median(rates), "n": n, "dtype": "bf16",
            "note": "CPU rate: a dry run's floor is not a GPU's" if setup.dry_run else ""}
