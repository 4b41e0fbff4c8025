"""The block-wise masking protocol: corrupt a valid depth map, complete it, score it against
the capture's own valid depth (levels, noise and seeding: docs/engines.md)."""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass

import numpy as np

from .depth import require_some_valid
from .frame import RGBDFrame
from .metrics import depth_metrics, mean_metrics

REFERENCE_SIZE = (480, 640)  # (H, W) the block parameters are given for


@dataclass(frozen=True)
class Level:
    """Parameters of one corruption level (see the module table)."""

    name: str
    blocks: int
    side_min: int
    side_max: int
    sigma_m: float
    shot_m: float


LEVELS: dict[str, Level] = {
    "easy": Level("easy", 15, 24, 64, 0.005, 2.5e-5),
    "medium": Level("medium", 20, 32, 96, 0.010, 1e-4),
    "hard": Level("hard", 40, 48, 128, 0.020, 4e-4),
    "extreme": Level("extreme", 50, 64, 160, 0.050, 1e-3),
}
LEVEL_NAMES = tuple(LEVELS)


@dataclass
class Corruption:
    """A corrupted depth map: what an engine sees, and which pixels were dropped."""

    depth: np.ndarray    #: float32 metres; NaN in dropped blocks and in the sensor's own holes
    dropped: np.ndarray  #: bool, True inside the dropped blocks (valid ground truth or not)
    level: Level


def get_level(name: str) -> Level:
    try:
        return LEVELS[name]
    except KeyError:
        raise ValueError(f"unknown level '{name}' (choose from {', '.join(LEVEL_NAMES)})") from None


def capture_seed(seed: int, name: str) -> np.random.SeedSequence:
    """Seed for one named capture: independent of which other captures are evaluated."""
    return np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])


def block_mask(shape: tuple[int, int], level: Level, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of the union of the level's random blocks."""
    h, w = shape
    side_scale = min(h, w) / min(REFERENCE_SIZE)
    # as many blocks as fit the same share of the image as at 640x480 (aspect matters)
    count = max(1, round(level.blocks * h * w
                         / (REFERENCE_SIZE[0] * REFERENCE_SIZE[1] * side_scale ** 2)))
    lo = max(1, round(level.side_min * side_scale))
    hi = max(lo, round(level.side_max * side_scale))
    sizes = rng.integers(lo, hi + 1, size=(count, 2))  # (height, width) per block
    centres = rng.random((count, 2)) * np.array([h, w])
    mask = np.zeros(shape, dtype=bool)
    for (bh, bw), (cy, cx) in zip(sizes, centres):
        y0, x0 = int(cy - bh / 2), int(cx - bw / 2)
        mask[max(0, y0):max(0, y0 + bh), max(0, x0):max(0, x0 + bw)] = True
    return mask


def corrupt_depth(depth: np.ndarray, level: str | Level,
                  rng: np.random.Generator | np.random.SeedSequence | int) -> Corruption:
    """Drop random blocks from `depth` (float32 metres, NaN = none) and add noise; raises
    InvalidDepthError if `depth` has no valid pixel."""
    level = get_level(level) if isinstance(level, str) else level
    rng = np.random.default_rng(rng)
    require_some_valid(depth)
    dropped = block_mask(depth.shape, level, rng)
    clean = np.where(np.isfinite(depth) & (depth > 0), depth, np.nan).astype(np.float64)
    gaussian = rng.standard_normal(depth.shape) * level.sigma_m
    shot = rng.standard_normal(depth.shape) * np.sqrt(level.shot_m * np.nan_to_num(clean))
    noisy = np.maximum(clean + gaussian + shot, 1e-3)
    noisy[dropped] = np.nan
    return Corruption(depth=noisy.astype(np.float32), dropped=dropped, level=level)


def score_completion(completed: np.ndarray, ground_truth: np.ndarray,
                     dropped: np.ndarray) -> dict[str, dict[str, float]]:
    """Metrics on the dropped pixels ("masked") and on all valid ground truth ("all")."""
    return {"masked": depth_metrics(completed, ground_truth, dropped),
            "all": depth_metrics(completed, ground_truth)}


@dataclass
class Trial:
    """One corrupted capture to complete: the engine sees `frame`, scoring uses `truth`."""

    capture: str
    seed: int
    frame: RGBDFrame
    truth: np.ndarray
    dropped: np.ndarray


def make_trials(frames: list[RGBDFrame], level: str | Level, seeds: list[int]) -> list[Trial]:
    """Corrupt every frame (named by its frame_id) once per seed."""
    trials = []
    for frame in frames:
        for seed in seeds:
            corruption = corrupt_depth(frame.depth, level, capture_seed(seed, frame.frame_id))
            corrupted = RGBDFrame(rgb=frame.rgb, depth=corruption.depth, K=frame.K,
                                  stamp_ns=frame.stamp_ns, frame_id=frame.frame_id)
            trials.append(Trial(frame.frame_id, int(seed), corrupted, frame.depth,
                                corruption.dropped))
    return trials


def evaluate_engine(engine, trials: list[Trial], warmup: int = 1) -> dict:
    """Complete and score every trial: metrics averaged per capture, then over captures (each
    weighs the same); ``ms_per_frame`` is the median time of ``complete`` after `warmup` calls."""
    for trial in trials[:warmup]:
        engine.complete(trial.frame)
    scores: dict[str, list[dict]] = {}
    times: dict[str, list[float]] = {}
    for trial in trials:
        start = time.perf_counter()
        result = engine.complete(trial.frame)
        times.setdefault(trial.capture, []).append((time.perf_counter() - start) * 1e3)
        scores.setdefault(trial.capture, []).append(
            score_completion(result.depth, trial.truth, trial.dropped))
    per_capture = {
        name: {"masked": mean_metrics([s["masked"] for s in runs]),
               "all": mean_metrics([s["all"] for s in runs]),
               "ms_per_frame": float(np.median(times[name]))}
        for name, runs in scores.items()}
    return {"masked": mean_metrics([c["masked"] for c in per_capture.values()]),
            "all": mean_metrics([c["all"] for c in per_capture.values()]),
            "ms_per_frame": float(np.median([t for ts in times.values() for t in ts])),
            "per_capture": per_capture}
