"""Classical (weight-free, CPU) completion engines: guided (the default), nearest, telea."""

from __future__ import annotations

import cv2
import numpy as np

from ..core.depth import metres_to_16uc1
from ..core.frame import RGBDFrame
from .base import Engine, stage
from .guided import GuidedEngine, measured_mask

__all__ = ["GuidedEngine", "NearestEngine", "TeleaEngine", "nearest_fill", "telea_fill"]


def nearest_fill(depth: np.ndarray) -> np.ndarray:
    """Give every pixel the depth of its nearest valid pixel (Euclidean, 5x5 chamfer)."""
    valid = measured_mask(depth)
    # distanceTransform measures to the nearest zero pixel: valid pixels are the zeros, and
    # DIST_LABEL_PIXEL numbers them 1..N in raster order, the order of depth[valid].
    _, labels = cv2.distanceTransformWithLabels(
        (~valid).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    return depth[valid][labels - 1]


def telea_fill(depth: np.ndarray, radius: float) -> np.ndarray:
    """OpenCV Telea inpainting on 16-bit millimetres (on float32 it leaves holes near 0)."""
    holes = ~measured_mask(depth)
    mm = metres_to_16uc1(depth)
    holes |= mm == 0  # below 0.5 mm: no usable millimetre value
    holes = holes.astype(np.uint8)
    filled = cv2.inpaint(mm, holes, float(radius), cv2.INPAINT_TELEA)
    out = filled.astype(np.float32) * np.float32(0.001)
    out[out <= 0] = np.nan
    return out


class NearestEngine(Engine):
    """Nearest-valid-pixel fill, what camera SDK hole-filling filters do."""

    name = "nearest"

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        with stage(timings, "fill"):
            return nearest_fill(frame.depth)


class TeleaEngine(Engine):
    """OpenCV fast-marching inpainting (Telea 2004) of the depth in millimetres; `radius` is
    the neighbourhood (pixels) each filled pixel is estimated from."""

    name = "telea"

    def __init__(self, radius: float = 5.0, refine_measured: bool = False) -> None:
        super().__init__(refine_measured=refine_measured)
        if not radius > 0:
            raise ValueError(f"telea radius must be positive, got {radius}")
        self.radius = float(radius)

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        with stage(timings, "fill"):
            return telea_fill(frame.depth, self.radius)

    def describe(self) -> str:
        return f"telea(radius={self.radius:g})"
