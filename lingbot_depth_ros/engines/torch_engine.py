"""The `torch` engine: our PyTorch LingBot-Depth on the CPU or a CUDA GPU.

Any input size works (the token grid follows the frame). On CUDA the network runs under
bf16 autocast by default, like the reference; outputs are float32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..core.errors import EngineUnavailableError, ModelFileError
from ..core.frame import RGBDFrame
from ..model import load_checkpoint, tokens_for_level
from ..model.network import MODES
from .base import Engine, stage
from .neural_common import (DEFAULT_MASK_THRESHOLD, check_mask_threshold, frame_to_model_inputs,
                            prediction_from_outputs)

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | int | None) -> torch.device:
    """'auto' (CUDA when present), 'cpu', 'cuda', 'cuda:N' or N -> a usable torch.device."""
    text = "auto" if device is None else str(device).strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if text.isdigit():
        text = f"cuda:{text}"
    try:
        resolved = torch.device(text)
    except RuntimeError as exc:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from exc
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise EngineUnavailableError(f"torch: no CUDA device (torch {torch.__version__})")
        if (resolved.index or 0) >= torch.cuda.device_count():
            raise EngineUnavailableError(f"torch: CUDA device {resolved.index} does not exist")
    elif resolved.type != "cpu":
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}")
    return resolved


class TorchEngine(Engine):
    name = "torch"
    OPTIONS = ("checkpoint", "device", "mode", "resolution_level", "num_tokens",
               "refine_measured", "precision", "mask_threshold")

    def __init__(self, checkpoint: str | Path | None = None, device: str | int = "auto",
                 mode: str = "completion", resolution_level: int = 9,
                 num_tokens: int | None = None, refine_measured: bool = False,
                 precision: str = "auto", mask_threshold: float = DEFAULT_MASK_THRESHOLD) -> None:
        super().__init__(refine_measured)
        if checkpoint is None:
            raise ModelFileError("torch: needs checkpoint=PATH (an official-format model.pt)")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
        if num_tokens is not None and int(num_tokens) < 1:
            raise ValueError(f"num_tokens must be positive, got {num_tokens}")
        tokens_for_level(int(resolution_level))  # fail on a bad level before a long load
        self.device = resolve_device(device)
        self.mode = mode
        self.num_tokens = None if num_tokens is None else int(num_tokens)
        self.resolution_level = int(resolution_level)
        self.mask_threshold = check_mask_threshold(mask_threshold)
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.precision = precision
        self.checkpoint = Path(checkpoint)
        self.model = load_checkpoint(self.checkpoint, map_location=self.device)
        log.info("%s", self.describe())

    def describe(self) -> str:
        tokens = (f"{self.num_tokens} tokens" if self.num_tokens is not None
                  else f"level {self.resolution_level}")
        return (f"torch ({self.checkpoint.name}, {self.device}, "
                f"{self.precision}, {self.mode}, {tokens})")

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        with stage(timings, "preprocess"):
            rgb, depth = frame_to_model_inputs(frame)
            image = torch.from_numpy(rgb).to(self.device).permute(0, 3, 1, 2).float() / 255.0
            depth_t = torch.from_numpy(depth).to(self.device)
        with stage(timings, "inference"):
            dtype = _AUTOCAST[self.precision]
            with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype,
                                                        enabled=dtype is not None):
                out = self.model(image, depth_t, resolution_level=self.resolution_level,
                                 num_tokens=self.num_tokens, mode=self.mode)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)  # so the stage time is the GPU's time
        with stage(timings, "postprocess"):
            mask = out.get("mask")
            return prediction_from_outputs(out["depth"].cpu().numpy(),
                                           None if mask is None else mask.cpu().numpy(),
                                           self.mask_threshold)

    def close(self) -> None:
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
