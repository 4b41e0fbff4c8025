"""Sensor noise: the IR imagers' exposure, shot and read noise, and the depth noise that
grows with distance as the datasheets give it (through disparity noise)."""

from __future__ import annotations

import numpy as np

#: the IR auto exposure brings the left image's mean to IR_MEAN_TARGET digital numbers (near
#: bright surfaces may saturate, as on the device); colour: this percentile to 90% of white
IR_MEAN_TARGET = 70.0
EXPOSURE_PERCENTILE = 99.0


def expose_ir(left: np.ndarray, right: np.ndarray, rng: np.random.Generator,
              read_noise_dn: float, full_well_dn: float) -> tuple[np.ndarray, np.ndarray]:
    """Two radiance images (H, W, 3) -> 8-bit mono IR images with one shared exposure (the
    imagers are synchronised), Poisson-like shot noise and Gaussian read noise."""
    mono = [image.mean(axis=2) if image.ndim == 3 else image for image in (left, right)]
    level = float(mono[0].mean())
    gain = IR_MEAN_TARGET / level if level > 1e-9 else 1.0
    out = []
    for image in mono:
        signal = np.clip(image * gain, 0.0, None)
        shot = rng.standard_normal(signal.shape) * np.sqrt(signal * 255.0 / full_well_dn)
        read = rng.standard_normal(signal.shape) * read_noise_dn
        out.append(np.clip(np.rint(signal + shot + read), 0, 255).astype(np.uint8))
    return out[0], out[1]


def to_srgb8(radiance: np.ndarray) -> np.ndarray:
    """Linear radiance (H, W, 3) -> 8-bit sRGB with a simple auto exposure."""
    level = float(np.percentile(radiance, EXPOSURE_PERCENTILE))
    x = np.clip(radiance * (0.9 / level if level > 1e-9 else 1.0), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.clip(np.rint(srgb * 255.0), 0, 255).astype(np.uint8)


def add_disparity_noise(disparity: np.ndarray, sigma_px: float,
                        rng: np.random.Generator) -> np.ndarray:
    """Gaussian disparity noise: depth error then grows with depth squared (sigma_z =
    z^2 sigma_d / (f b)), the stereo law the datasheets' RMS figures follow."""
    noisy = disparity + rng.standard_normal(disparity.shape).astype(np.float32) * sigma_px
    return np.where(np.isfinite(disparity), noisy, np.nan).astype(np.float32)
