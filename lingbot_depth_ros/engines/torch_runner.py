"""The torch engine's runner per frame size and batch size: one staging buffer each way, the
forward fixed for both (so torch.compile and a CUDA graph can take it), docs/internals.md."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

#: forward passes run on a side stream before capture (cuBLAS/cuDNN pick their kernels and
#: allocate workspaces then; torch.compile compiles then)
GRAPH_WARMUP_RUNS = 3


@dataclass(frozen=True)
class RunnerSettings:
    device: torch.device
    autocast: torch.dtype | None  # None: fp32
    masking: str  # the network's "drop" (gathered tokens) or "key_mask" (static shape)
    mode: str
    resolution_level: int  # used when there is no GridPlan
    num_tokens: int | None
    pinned_io: bool
    cuda_graph: bool
    compile: bool


class FrameIO:
    """Host and device staging for (batch, H, W) frames: one buffer and one copy each way."""

    def __init__(self, height: int, width: int, outputs: int, device: torch.device,
                 pinned: bool, batch: int = 1) -> None:
        pixels = batch * height * width
        depth_bytes = 4 * pixels  # float32 depth first, so its view is 4-byte aligned
        self.host_in = torch.empty(7 * pixels, dtype=torch.uint8, pin_memory=pinned)
        self.device_in = torch.empty(7 * pixels, dtype=torch.uint8, device=device)
        host = self.host_in.numpy()
        self._host_depth = host[:depth_bytes].view(np.float32).reshape(batch, height, width)
        self._host_rgb = host[depth_bytes:].reshape(batch, height, width, 3)
        self.depth = self.device_in[:depth_bytes].view(torch.float32).view(batch, height, width)
        self.rgb = self.device_in[depth_bytes:].view(batch, height, width, 3)
        self.host_out = torch.empty((outputs, batch, height, width), dtype=torch.float32,
                                    pin_memory=pinned)
        self._device = device
        self._non_blocking = device.type == "cuda"
        self._done = torch.cuda.Event() if self._non_blocking else None

    def upload(self, rgb: np.ndarray, depth: np.ndarray) -> None:
        """uint8 (B, H, W, 3) and float32 (B, H, W) frames -> the device tensors rgb, depth."""
        np.copyto(self._host_rgb, rgb)
        np.copyto(self._host_depth, depth)
        self.device_in.copy_(self.host_in, non_blocking=self._non_blocking)

    def download(self, outputs: torch.Tensor) -> np.ndarray:
        """Device (outputs, B, H, W) -> host float32 array; waits for the copy only."""
        self.host_out.copy_(outputs, non_blocking=self._non_blocking)
        if self._done is not None:
            self._done.record(torch.cuda.current_stream(self._device))
            self._done.synchronize()
        return self.host_out.numpy()


class FrameRunner:
    """Runs batches of `batch` frames of one size through the network: upload, forward,
    download."""

    def __init__(self, model, height: int, width: int, plan, settings: RunnerSettings,
                 batch: int = 1) -> None:
        """plan: the model's GridPlan for this size, or None to recompute it every frame."""
        self.model, self.plan, self.settings = model, plan, settings
        self.height, self.width, self.batch = height, width, batch
        self.outputs = 2 if model.mask_head is not None else 1
        self.io = FrameIO(height, width, self.outputs, settings.device, settings.pinned_io,
                          batch)
        forward = self._forward
        if settings.compile:
            # one frame size per runner and a static shape (the engine refuses compile with
            # gathered tokens), so the forward compiles once
            forward = torch.compile(forward, dynamic=False)
        self._run: Callable[[], torch.Tensor] = forward
        self._graph = None
        self._graph_out: torch.Tensor | None = None
        self.graph_failed: str | None = None

    def _forward(self) -> torch.Tensor:
        """The whole network on the staged frames -> (outputs, B, H, W) float32."""
        s = self.settings
        image = self.io.rgb.permute(0, 3, 1, 2).float() / 255.0
        # cache_enabled=False: autocast's weight-cast cache must not outlive a graph capture
        with torch.autocast(s.device.type, dtype=s.autocast, enabled=s.autocast is not None,
                            cache_enabled=False):
            out = self.model(image, self.io.depth, resolution_level=s.resolution_level,
                             num_tokens=s.num_tokens, mode=s.mode, masking=s.masking,
                             plan=self.plan)
        parts = [out["depth"]] + ([out["mask"]] if "mask" in out else [])
        return torch.stack(parts)

    def __call__(self, rgb: np.ndarray, depth: np.ndarray, timings: dict, stage) -> np.ndarray:
        with stage(timings, "preprocess"):
            self.io.upload(rgb, depth)
        on_device = (torch.cuda.device(self.settings.device)
                     if self.settings.device.type == "cuda" else contextlib.nullcontext())
        with stage(timings, "inference"), on_device:
            with torch.inference_mode():
                result = self._infer()
            out = self.io.download(result)  # waits for the GPU, so the stage is its time
        return out

    def _infer(self) -> torch.Tensor:
        if self.settings.cuda_graph and self._graph is None and self.graph_failed is None:
            self._capture()
        if self._graph is not None:
            self._graph.replay()
            return self._graph_out
        return self._run()

    def _capture(self) -> None:
        """Record the whole forward of the staged frame into a CUDA graph (eager on failure)."""
        side = torch.cuda.Stream(self.settings.device)
        side.wait_stream(torch.cuda.current_stream(self.settings.device))
        try:
            with torch.cuda.stream(side):
                for _ in range(GRAPH_WARMUP_RUNS):
                    self._run()
            torch.cuda.current_stream(self.settings.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                self._graph_out = self._run()
            self._graph = graph
        except RuntimeError as exc:  # a kernel that cannot be captured: run eagerly instead
            torch.cuda.synchronize(self.settings.device)
            self._graph, self._graph_out = None, None
            self.graph_failed = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            log.warning("torch: CUDA graph capture failed for %dx%d, batch %d, running eagerly "
                        "(%s)", self.width, self.height, self.batch, self.graph_failed)
