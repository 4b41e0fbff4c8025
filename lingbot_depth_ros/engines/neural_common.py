"""Frame <-> tensor conversions shared by the neural engines (torch, onnxruntime, tensorrt):
raw frame in, one float32 (H, W) prediction out, NaN where the mask head is not confident."""

from __future__ import annotations

import cv2
import numpy as np

from ..core.errors import ModelFileError
from ..core.frame import RGBDFrame

#: mask probability at or below which a predicted pixel is dropped (the reference's 0.5)
DEFAULT_MASK_THRESHOLD = 0.5


def frame_to_model_inputs(frame: RGBDFrame) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 (1, H, W, 3), depth float32 (1, H, W) metres with NaN/inf -> 0)."""
    rgb = np.ascontiguousarray(frame.rgb)[None]
    depth = np.nan_to_num(frame.depth, nan=0.0, posinf=0.0, neginf=0.0)
    depth = depth.astype(np.float32, copy=False)
    return rgb, depth[None]


def batch_at_graph_size(frames, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """inputs_at_graph_size of several frames, stacked: uint8 (N, H, W, 3), float32 (N, H, W)."""
    pairs = [inputs_at_graph_size(frame, height, width) for frame in frames]
    if len(pairs) == 1:  # one frame: no copy
        return pairs[0]
    return (np.concatenate([rgb for rgb, _ in pairs]),
            np.concatenate([depth for _, depth in pairs]))


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


def batch_inputs(frames) -> tuple[np.ndarray, np.ndarray]:
    """frame_to_model_inputs of same-size frames, stacked: (N, H, W, 3) and (N, H, W)."""
    pairs = [frame_to_model_inputs(frame) for frame in frames]
    if len(pairs) == 1:  # one frame: no copy
        return pairs[0]
    return (np.concatenate([rgb for rgb, _ in pairs]),
            np.concatenate([depth for _, depth in pairs]))


def inputs_at_graph_size(frame: RGBDFrame, height: int, width: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """frame_to_model_inputs for a static-shape graph of `height` x `width`: another frame
    size is stretched to it, colour by area, depth by nearest (docs/internals.md)."""
    rgb, depth = frame_to_model_inputs(frame)
    if (frame.height, frame.width) == (height, width):
        return rgb, depth
    shrink = height * width < frame.height * frame.width
    rgb = cv2.resize(rgb[0], (width, height),
                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    depth = cv2.resize(depth[0], (width, height), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(rgb)[None], depth[None]


def prediction_at_frame_size(prediction: np.ndarray, frame: RGBDFrame) -> np.ndarray:
    """A graph-size prediction back at the frame's size (nearest neighbour: NaN stays NaN
    and no depth is averaged across an edge); measured pixels are merged in at full size."""
    if prediction.shape == (frame.height, frame.width):
        return prediction
    return cv2.resize(prediction, (frame.width, frame.height), interpolation=cv2.INTER_NEAREST)


def check_output_shape(name: str, shape, height: int, width: int, what: str,
                       batch: int | None = 1) -> None:
    """Raise ModelFileError unless a graph output is (batch, H, W) at the input's size (batch
    None: a dynamic batch axis, any symbol or -1 there)."""
    dims = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(dims) != 3 or dims[1:] != [height, width] or (batch is not None and dims[0] != batch):
        raise ModelFileError(f"{what}: output '{name}' has shape {list(shape)}, expected "
                             f"[{'batch' if batch is None else batch}, {height}, {width}] "
                             "(the graph's input size)")


def predict_in_runs(run, frames: list[RGBDFrame], timings: dict[str, float],
                    max_batch: int) -> list[np.ndarray] | None:
    """`run(frames, timings)` of a graph or plan that takes up to `max_batch` frames, over runs
    of that many; None (the caller goes frame by frame) where it takes one."""
    if max_batch < 2:
        return None
    predictions = []
    for start in range(0, len(frames), max_batch):
        predictions += run(frames[start:start + max_batch], timings)
    return predictions
