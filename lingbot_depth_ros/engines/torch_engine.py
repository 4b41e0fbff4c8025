"""The `torch` engine: our PyTorch LingBot-Depth on the CPU or a CUDA GPU, any input size (bf16
autocast on CUDA by default, float32 outputs), one FrameRunner per frame size; docs/gpu.md
says what each option is for."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..core.errors import EngineOptionError, EngineUnavailableError, ModelFileError
from ..core.frame import RGBDFrame
from ..model import load_checkpoint, tokens_for_level
from ..model.network import MODES
from .base import Engine, stage
from .neural_common import (DEFAULT_MASK_THRESHOLD, batch_inputs, check_mask_threshold,
                            prediction_from_outputs)
from .torch_runner import FrameRunner, RunnerSettings

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_AUTOCAST = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: attention option -> the network's masking path
ATTENTIONS = {"gather": "drop", "key_mask": "key_mask"}
#: (frame size, batch size) pairs whose runners (and CUDA graphs) are kept; the least recently
#: used goes first
MAX_RUNNERS = 8


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

    def __init__(self, checkpoint: str | Path | None = None, device: str | int = "auto",
                 mode: str = "completion", resolution_level: int = 9,
                 num_tokens: int | None = None, refine_measured: bool = False,
                 precision: str = "auto", mask_threshold: float = DEFAULT_MASK_THRESHOLD,
                 static_grid: bool = True, attention: str = "auto",
                 pinned_io: bool | str | None = "auto", cuda_graph: bool | str | None = "auto",
                 compile: bool = False, cast_weights: bool | str | None = "auto") -> None:
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
        self.static_grid = _flag("static_grid", static_grid)
        self.compile = _flag("compile", compile)
        self.attention, self.cuda_graph = resolve_attention(attention, cuda_graph, self.compile,
                                                            mode, self.device)
        self.pinned_io = _cuda_only("pinned_io", pinned_io, self.device)
        self.cast_weights = _cast_weights(cast_weights, precision)
        self.checkpoint = Path(checkpoint)
        self.model = load_checkpoint(self.checkpoint, map_location=self.device)
        if self.cast_weights:
            self.model.cast_matmul_weights(_AUTOCAST[precision])
        self._runners: dict[tuple[int, int, int], FrameRunner] = {}
        log.info("%s", self.describe())

    def describe(self) -> str:
        tokens = (f"{self.num_tokens} tokens" if self.num_tokens is not None
                  else f"level {self.resolution_level}")
        flags = [name for name in ("static_grid", "cast_weights", "pinned_io", "cuda_graph",
                                   "compile")
                 if getattr(self, name)]
        return (f"torch ({self.checkpoint.name}, {self.device}, {self.precision}, {self.mode}, "
                f"{tokens}, attention {self.attention}"
                + (f", {' '.join(flags)}" if flags else "") + ")")

    def runner(self, height: int, width: int, batch: int = 1) -> FrameRunner:
        """The runner of one frame size and batch size (made on first use; at most
        MAX_RUNNERS kept)."""
        key = (height, width, batch)
        runner = self._runners.pop(key, None)
        if runner is None:
            if len(self._runners) >= MAX_RUNNERS:
                self._runners.pop(next(iter(self._runners)))
            plan = (self.model.plan(height, width, self.resolution_level, self.num_tokens)
                    if self.static_grid else None)
            runner = FrameRunner(self.model, height, width, plan,
                                 RunnerSettings(self.device, _AUTOCAST[self.precision],
                                                ATTENTIONS[self.attention], self.mode,
                                                self.resolution_level, self.num_tokens,
                                                self.pinned_io, self.cuda_graph, self.compile),
                                 batch)
        self._runners[key] = runner  # re-inserted last: the dict's order is recency
        return runner

    def batch_key(self, frame: RGBDFrame):
        """Frames of one size share the token grid and so the network's input shape; a batch
        with dropped tokens pads each frame's kept depth tokens to the longest (masked)."""
        return (frame.height, frame.width)

    def prepare_batch(self, size: int, height: int | None = None,
                      width: int | None = None) -> None:
        """The runner of batches of `size` frames of height x width (nothing without a size:
        a torch runner is per frame size, made with the first batch of it)."""
        if height and width:
            self.runner(int(height), int(width), max(1, int(size)))

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        return self._run([frame], timings)[0]

    def _predict_batch(self, frames: list[RGBDFrame], timings: dict[str, float]):
        if len({(f.height, f.width) for f in frames}) > 1:
            return None  # not one batch_key: frame by frame
        return self._run(frames, timings)

    def _run(self, frames: list[RGBDFrame], timings: dict[str, float]) -> list[np.ndarray]:
        with stage(timings, "preprocess"):
            rgb, depth = batch_inputs(frames)
        out = self.runner(frames[0].height, frames[0].width, len(frames))(rgb, depth, timings,
                                                                           stage)
        with stage(timings, "postprocess"):
            return [prediction_from_outputs(out[0][i], out[1][i] if len(out) > 1 else None,
                                            self.mask_threshold) for i in range(len(frames))]

    def close(self) -> None:
        self._runners.clear()
        self.model = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise EngineOptionError(f"torch: {name} must be true or false, got {value!r}")
    return value


def _cast_weights(value, precision: str) -> bool:
    """'auto'/None -> on for bf16/fp16 autocast; true with fp32 is an error."""
    if value is None or value == "auto":
        return precision != "fp32"
    if _flag("cast_weights", value) and precision == "fp32":
        raise EngineOptionError("torch: cast_weights needs precision bf16 or fp16 (it is fp32)")
    return value


def _cuda_only(name: str, value, device: torch.device) -> bool:
    """'auto'/None -> on with CUDA, off on the CPU; true on the CPU is an error."""
    if value is None or value == "auto":
        return device.type == "cuda"
    if _flag(name, value) and device.type != "cuda":
        raise EngineOptionError(f"torch: {name} needs a CUDA device (device is {device})")
    return value


def resolve_attention(attention: str, cuda_graph, compile: bool, mode: str,
                      device: torch.device) -> tuple[str, bool]:
    """(attention, cuda_graph) from the options, resolving 'auto' (rules: docs/internals.md)."""
    if attention not in ("auto", *ATTENTIONS):
        raise EngineOptionError(
            f"torch: attention must be auto, {' or '.join(ATTENTIONS)}, got {attention!r}")
    graph_asked = cuda_graph is not None and cuda_graph != "auto"
    graph = _cuda_only("cuda_graph", cuda_graph, device)
    if attention == "auto":
        attention = "key_mask" if (graph_asked and graph) or compile else "gather"
    if mode == "monocular" or attention == "key_mask":
        return attention, graph
    # gathered depth tokens: the sequence length changes with every frame
    for name, asked in (("cuda_graph", graph_asked and graph), ("compile", compile)):
        if asked:
            raise EngineOptionError(
                f"torch: {name} needs a static shape: attention key_mask (or mode monocular); "
                "attention gather changes the sequence length with every frame")
    return attention, False
