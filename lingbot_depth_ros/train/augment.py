"""Training augmentation on numpy + OpenCV: geometric steps move RGB, depth (nearest) and K
together, photometric ones touch RGB only (why our own: docs/training.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .config import AugmentConfig


@dataclass
class View:
    """One RGB-D view: uint8 (H, W, 3) RGB, float32 (H, W) metres (NaN = none), 3x3 K."""

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray


def crop_box(height: int, width: int, out_aspect: float, cfg: AugmentConfig,
             rng: np.random.Generator) -> tuple[int, int, int, int]:
    """Random (x0, y0, w, h) covering crop_scale of the area at an aspect near out_aspect."""
    area = height * width
    log_lo, log_hi = math.log(cfg.crop_ratio[0]), math.log(cfg.crop_ratio[1])
    for _ in range(10):
        target = area * rng.uniform(*cfg.crop_scale)
        aspect = out_aspect * math.exp(rng.uniform(log_lo, log_hi))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    # Fall back to the largest centred crop at the output aspect.
    w = min(width, int(round(height * out_aspect)))
    h = min(height, int(round(w / out_aspect)))
    return (width - w) // 2, (height - h) // 2, w, h


def crop_resize(view: View, box: tuple[int, int, int, int], out_hw: tuple[int, int]) -> View:
    """Cut `box` out of the view and resize it to out_hw, keeping K consistent."""
    x0, y0, w, h = box
    out_h, out_w = out_hw
    rgb = view.rgb[y0:y0 + h, x0:x0 + w]
    shrinking = out_w * out_h < w * h
    rgb = cv2.resize(rgb, (out_w, out_h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    # Nearest (pixel-centre exact) so a hole never averages into its valid neighbours.
    depth = cv2.resize(view.depth[y0:y0 + h, x0:x0 + w], (out_w, out_h),
                       interpolation=cv2.INTER_NEAREST_EXACT)
    sx, sy = out_w / w, out_h / h
    K = view.K.copy()
    K[0, 0] *= sx
    K[1, 1] *= sy
    K[0, 1] *= sx
    K[0, 2] = (K[0, 2] - x0 + 0.5) * sx - 0.5  # pixel centres map to pixel centres
    K[1, 2] = (K[1, 2] - y0 + 0.5) * sy - 0.5
    return View(np.ascontiguousarray(rgb), depth, K)


def hflip(view: View) -> View:
    K = view.K.copy()
    K[0, 2] = view.rgb.shape[1] - 1 - K[0, 2]
    K[0, 1] = -K[0, 1]
    return View(np.ascontiguousarray(view.rgb[:, ::-1]), np.ascontiguousarray(view.depth[:, ::-1]), K)


def color_jitter(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, saturation and hue, each by a random factor/shift."""
    img = rgb.astype(np.float32) / 255.0
    img *= rng.uniform(1 - cfg.brightness, 1 + cfg.brightness)
    gray = img @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    img = (img - gray.mean()) * rng.uniform(1 - cfg.contrast, 1 + cfg.contrast) + gray.mean()
    gray = (img @ np.array([0.299, 0.587, 0.114], dtype=np.float32))[..., None]
    img = (img - gray) * rng.uniform(1 - cfg.saturation, 1 + cfg.saturation) + gray
    hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)  # float: H in degrees
    hsv[..., 0] = (hsv[..., 0] + 360.0 * rng.uniform(-cfg.hue, cfg.hue)) % 360.0
    img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


def motion_blur(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Blur along a random direction: a normalised line kernel of random length."""
    length = int(rng.integers(cfg.blur_length[0], cfg.blur_length[1] + 1))
    if length < 2:
        return rgb
    angle = rng.uniform(0, math.pi)
    kernel = np.zeros((length, length), np.float32)
    c = (length - 1) / 2
    dx, dy = math.cos(angle) * c, math.sin(angle) * c
    cv2.line(kernel, (int(round(c - dx)), int(round(c - dy))),
             (int(round(c + dx)), int(round(c + dy))), 1.0, 1)
    kernel /= kernel.sum()
    return cv2.filter2D(rgb, -1, kernel, borderType=cv2.BORDER_REFLECT)


def shot_noise(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Poisson photon noise: a white pixel collects `photons` (log-uniform in the range)."""
    lo, hi = cfg.shot_noise_photons
    photons = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    noisy = rng.poisson(rgb.astype(np.float64) * (photons / 255.0)) * (255.0 / photons)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("OpenCV could not JPEG-encode an RGB image")
    return cv2.cvtColor(cv2.imdecode(buf, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def augment(view: View, out_hw: tuple[int, int], cfg: AugmentConfig,
            rng: np.random.Generator) -> View:
    """Random resized crop to out_hw, flip, then the photometric steps, each with its chance."""
    h, w = view.depth.shape
    view = crop_resize(view, crop_box(h, w, out_hw[1] / out_hw[0], cfg, rng), out_hw)
    if rng.random() < cfg.hflip_prob:
        view = hflip(view)
    rgb = view.rgb
    for chance, step in ((cfg.jitter_prob, color_jitter), (cfg.blur_prob, motion_blur),
                         (cfg.shot_noise_prob, shot_noise), (cfg.jpeg_prob, jpeg)):
        if rng.random() < chance:
            rgb = step(rgb, cfg, rng)
    return View(rgb, view.depth, view.K)

