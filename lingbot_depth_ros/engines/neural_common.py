"""Frame <-> tensor conversions shared by the neural engines (torch, onnxruntime, tensorrt).

All three feed the network the raw frame: uint8 RGB (1, H, W, 3) and float32 metres
(1, H, W) with 0 for "no data", and turn its depth and mask outputs into one float32
(H, W) prediction with NaN where the mask head is not confident.
"""

from __future__ import annotations

import numpy as np

from ..core.errors import ShapeMismatchError
from ..core.frame import RGBDFrame

#: mask probability at or below which a predicted pixel is dropped (the reference's 0.5)
DEFAULT_MASK_THRESHOLD = 0.5


def frame_to_model_inputs(frame: RGBDFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 (1, H, W, 3), depth float32 (1, H, W) metres with NaN/inf -> 0)."""
    rgb = np.ascontiguousarray(frame.rgb)[None]
    depth = np.nan_to_num(frame.depth, nan=0.0, posinf=0.0, neginf=0.0)
    depth = depth.astype(np.float32, copy=False)
    return rgb, depth[None]


def prediction_from_outputs(depth: np.ndarray, mask: np.ndarray | None,
                            mask_threshold: float = DEFAULT_MASK_THRESHOLD) -> np.ndarray:
    """Network outputs ((1, H, W) or (H, W)) -> float32 (H, W) metres, NaN where the mask
    probability is <= mask_threshold (the reference uses inf there) or depth is not finite
    and positive."""
    depth = np.asarray(depth, dtype=np.float32)
    depth = depth.reshape(depth.shape[-2:])
    with np.errstate(invalid="ignore"):
        drop = ~(np.isfinite(depth) & (depth > 0))
        if mask is not None:
            mask = np.asarray(mask, dtype=np.float32).reshape(depth.shape)
            drop |= ~(mask > mask_threshold)
    return np.where(drop, np.float32(np.nan), depth).astype(np.float32, copy=False)


def check_mask_threshold(value: float) -> float:
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"mask_threshold must be in [0, 1), got {value}")
    return value


def require_frame_size(frame: RGBDFrame, height: int, width: int, what: str) -> None:
    """Raise ShapeMismatchError when a static-shape model gets a frame of another size."""
    if (frame.height, frame.width) != (height, width):
        raise ShapeMismatchError(
            f"{what} takes {width}x{height} frames, got {frame.width}x{frame.height}; "
            f"export one for this size (lingbot-depth export-onnx --width {frame.width} "
            f"--height {frame.height})")
