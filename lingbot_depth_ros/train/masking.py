"""Masked depth modelling: which depth tokens the network sees during training (the paper's
rule: holes always, mixed patches with p = 0.75, then fully valid patches up to a drawn
ratio; docs/training.md)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import PATCH_SIZE, MaskingConfig


@dataclass
class MaskedDepth:
    """What the network gets for one sample, and how it was drawn."""

    keep: np.ndarray  #: bool (rows, cols): depth tokens the network sees
    input_depth: np.ndarray  #: float32 (H, W) metres; 0 where invalid or in a masked patch
    target_ratio: float  #: the drawn r


def patch_valid_counts(valid: np.ndarray, patch: int = PATCH_SIZE) -> np.ndarray:
    """Number of valid pixels in each patch of a (rows*patch, cols*patch) boolean map."""
    h, w = valid.shape
    if h % patch or w % patch:
        raise ValueError(f"a {w}x{h} map is not a whole number of {patch}-pixel patches")
    return valid.reshape(h // patch, patch, w // patch, patch).sum(axis=(1, 3))


def draw_token_mask(valid_counts: np.ndarray, patch_area: int, cfg: MaskingConfig,
                    rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """Return (masked (rows, cols) bool, drawn target ratio) following the paper's rule."""
    empty = valid_counts == 0
    full = valid_counts == patch_area
    mixed = ~empty & ~full
    masked = empty | (mixed & (rng.random(valid_counts.shape) < cfg.mixed_mask_prob))
    ratio = float(rng.uniform(*cfg.ratio_range))
    missing = int(round(ratio * masked.size)) - int(np.count_nonzero(masked))
    if missing > 0:
        candidates = np.flatnonzero(full & ~masked)
        chosen = rng.choice(candidates, size=min(missing, candidates.size), replace=False)
        masked.flat[chosen] = True
    return masked, ratio


def add_depth_noise(depth: np.ndarray, relative_std: float, rng: np.random.Generator) -> np.ndarray:
    """Multiply each depth by (1 + e), e ~ N(0, std^2) clipped at 3 std: stays positive, and
    the error grows with range as a real sensor's does."""
    if relative_std == 0:
        return depth.astype(np.float32, copy=True)
    e = np.clip(rng.standard_normal(depth.shape), -3.0, 3.0) * relative_std
    return (depth * (1.0 + e)).astype(np.float32)


def mask_sample(depth: np.ndarray, cfg: MaskingConfig, rng: np.random.Generator,
                patch: int = PATCH_SIZE) -> MaskedDepth:
    """Draw the token mask for a (H, W) metric depth map (NaN/0 = no data) and build the
    noisy network input: masked patches and invalid pixels are 0 (the network's "no data")."""
    valid = np.isfinite(depth) & (depth > 0)
    counts = patch_valid_counts(valid, patch)
    masked, ratio = draw_token_mask(counts, patch * patch, cfg, rng)
    noisy = add_depth_noise(np.where(valid, depth, 0.0), cfg.depth_noise_std, rng)
    pixel_masked = np.repeat(np.repeat(masked, patch, axis=0), patch, axis=1)
    noisy[pixel_masked | ~valid] = 0.0
    return MaskedDepth(keep=~masked, input_depth=noisy, target_ratio=ratio)
