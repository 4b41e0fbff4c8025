"""Supervised samples from synthetic frames (`lingbot-depth simulate` folders): the network
sees the simulated sensor's depth, with its holes where a real camera has them, and learns
the ground truth everywhere, weighted toward the pixels the sensor missed or got wrong."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch

from ..core.captures import read_raw_depth
from ..core.frame import RGBDFrame
from .augment import View, augment
from .config import PATCH_SIZE, DataConfig, TrainConfig
from .masking import patch_valid_counts

TRUTH_NAME, LABELS_NAME = "gt_depth.png", "labels.png"
#: a sensor pixel off by more than this share of the true depth counts as missed
WRONG_SHARE = 0.10


def load_truth(folder: Path, data: DataConfig) -> tuple[np.ndarray, np.ndarray]:
    """(ground-truth depth in metres, NaN outside the data's range; uint8 material labels)."""
    import cv2
    raw = read_raw_depth(folder / TRUTH_NAME).astype(np.float32) * np.float32(0.001)
    truth = np.where((raw >= data.min_depth_m) & (raw <= data.max_depth_m), raw, np.nan)
    labels = cv2.imread(str(folder / LABELS_NAME), cv2.IMREAD_UNCHANGED)
    if labels is None:
        labels = np.zeros(raw.shape, np.uint8)
    return truth.astype(np.float32), labels


def missed(sensor: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Pixels with a true depth that the sensor left empty or got more than 10% wrong."""
    has_truth = np.isfinite(truth)
    measured = np.isfinite(sensor) & (sensor > 0)
    with np.errstate(invalid="ignore"):
        wrong = measured & (np.abs(sensor - truth) > WRONG_SHARE * truth)
    return has_truth & (~measured | wrong)


def synthetic_sample(frame: RGBDFrame, truth: np.ndarray, hole_weight: float, cfg: TrainConfig,
                     rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """One training sample: the same crop and flip of sensor depth and truth (the augment
    draws replayed from a copy of the generator), input = the sensor depth as measured, its
    depth tokens dropped only where a patch holds no measurement (the sensor's own mask)."""
    replay = copy.deepcopy(rng)
    view = augment(View(frame.rgb, frame.depth, frame.K), cfg.data.crop_size, cfg.augment, rng)
    truth_view = augment(View(frame.rgb, truth, frame.K), cfg.data.crop_size, cfg.augment, replay)
    sensor = view.depth
    measured = np.isfinite(sensor) & (sensor > 0)
    keep = patch_valid_counts(measured, PATCH_SIZE) > 0
    target = np.nan_to_num(truth_view.depth, nan=0.0).astype(np.float32)
    weight = np.where(target > 0, 1.0, 0.0).astype(np.float32)
    weight[missed(sensor, truth_view.depth)] = hole_weight
    return {
        "rgb": torch.from_numpy(view.rgb).permute(2, 0, 1).float().div_(255.0),
        "depth": torch.from_numpy(np.where(measured, sensor, 0.0).astype(np.float32)),
        "keep": torch.from_numpy(keep),
        "target": torch.from_numpy(target),
        "weight": torch.from_numpy(weight),
        "K": torch.from_numpy(view.K),
    }


#: material groups of the per-material evaluation (sim.materials.LABELS values)
MATERIAL_GROUPS = {"glass": (3,), "mirror": (4,), "metal": (5,), "dark": (6,), "diffuse": (1, 2)}


def material_rmse(engine, refs: list, data: DataConfig) -> dict:
    """Masked RMSE (metres) per material over held-out synthetic frames: on the pixels the
    simulated sensor missed or got wrong ("missed"), and on all pixels with ground truth."""
    from ..core.captures import load_capture
    from ..core.depth import DepthRange

    sums = {name: {"missed": [0.0, 0], "all": [0.0, 0]} for name in MATERIAL_GROUPS}
    for ref in refs:
        frame = load_capture(ref.folder, ref.depth_scale, DepthRange(data.min_depth_m, data.max_depth_m))
        truth, labels = load_truth(ref.folder, data)
        done = engine.complete(frame)
        error = (np.asarray(done.depth, np.float64) - truth) ** 2
        miss = missed(frame.depth, truth)
        for name, values in MATERIAL_GROUPS.items():
            region = np.isin(labels, values) & np.isfinite(truth) & np.isfinite(error)
            for key, mask in (("missed", region & miss), ("all", region)):
                sums[name][key][0] += float(error[mask].sum())
                sums[name][key][1] += int(mask.sum())
    return {name: {key: {"rmse": float(np.sqrt(total / n)) if n else float("nan"), "pixels": n}
                   for key, (total, n) in parts.items()} for name, parts in sums.items()}


def materials_markdown(materials: dict) -> list[str]:
    """Rows of the report's per-material table (RMSE on the pixels the sensor missed)."""
    runs = list(materials)
    lines = ["", "Held-out synthetic frames: masked RMSE (m) per material on the pixels the "
             "simulated sensor missed or got more than 10% wrong (pixels in brackets).", "",
             "| material | " + " | ".join(runs) + " |", "|---|" + "---|" * len(runs)]
    for name in MATERIAL_GROUPS:
        cells = [f"{materials[r][name]['missed']['rmse']:.4f} ({materials[r][name]['missed']['pixels']})"
                 for r in runs]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines
