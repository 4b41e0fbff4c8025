"""Small random LingBot-Depth models and the real example captures, for the model tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.model import build_model, tiny_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAPTURES = ("0", "1", "2", "3")
#: random mask heads sit at p ~ 0.39; this logit shift puts about half the pixels above 0.5,
#: so engines both fill and drop pixels
MASK_LOGIT_SHIFT = 0.46


def tiny_model(seed: int = 0, **config_options):
    torch.manual_seed(seed)
    model = build_model(tiny_config(**config_options))
    if model.mask_head is not None:
        with torch.no_grad():
            model.mask_head.output_blocks[-1].bias += MASK_LOGIT_SHIFT
    return model


def capture(name: str):
    return load_capture(EXAMPLES / name)


def frame_tensors(frame) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (1,3,H,W) in [0,1], depth (1,H,W) metres with 0 for none) of an RGBDFrame."""
    image = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255.0
    return image, torch.from_numpy(np.nan_to_num(frame.depth))[None]


def max_relative(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.abs(b)))
