"""The ``tensorrt`` engine: a serialized TensorRT plan run on a CUDA stream. Pre- and
post-processing are inside the exported graph, so a frame (or a batch of frames, with a plan
built from a batched export) is two host->device copies, one ``execute_async_v3``, the mask
threshold on the GPU and one device->host copy."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ..core.errors import EngineUnavailableError, ModelFileError
from ..core.frame import RGBDFrame
from .base import Engine, stage
from .neural_common import (DEFAULT_MASK_THRESHOLD, batch_at_graph_size, check_mask_threshold,
                            predict_in_runs, prediction_at_frame_size)
from .trt_build import (cuda_device_index, import_tensorrt, prepare_plan, require_cuda,
                        runtime_identity)

log = logging.getLogger(__name__)

#: I/O tensor names of graphs written by model.export (INPUT_NAMES, OUTPUT_NAMES there)
RGB_INPUT, DEPTH_INPUT = "rgb", "depth"
DEPTH_OUTPUT, MASK_OUTPUT = "depth_out", "mask"


def confident_depth(depth: torch.Tensor, mask: torch.Tensor, threshold: float,
                    out: torch.Tensor) -> torch.Tensor:
    """neural_common.prediction_from_outputs on the device: depth where the mask probability
    exceeds `threshold` and the depth is finite and positive, NaN elsewhere (into `out`)."""
    keep = (mask > threshold) & torch.isfinite(depth) & (depth > 0)
    # masked_fill_ takes the NaN as a kernel argument: no scalar tensor copied to the device.
    return out.copy_(depth).masked_fill_(~keep, float("nan"))


def _torch_dtype(trt, dtype):
    table = {
        trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
        trt.DataType.BF16: torch.bfloat16, trt.DataType.INT8: torch.int8,
        trt.DataType.INT32: torch.int32, trt.DataType.INT64: torch.int64,
        trt.DataType.BOOL: torch.bool, trt.DataType.UINT8: torch.uint8,
    }
    if dtype not in table:
        raise ModelFileError(f"TensorRT I/O tensor type {dtype} has no torch equivalent")
    return table[dtype]


def _io_shape(engine, name: str) -> tuple[tuple[int, ...], bool]:
    """(the buffer shape of an I/O tensor, whether its batch axis is dynamic): a dynamic
    batch axis gets the largest batch of the rgb input's profile (the outputs follow the
    inputs' batch); any other dynamic axis is refused."""
    shape = tuple(engine.get_tensor_shape(name))
    if shape[:1] == (-1,) and all(d >= 0 for d in shape[1:]):
        largest = tuple(engine.get_tensor_profile_shape(RGB_INPUT, 0)[2])
        return (largest[0], *shape[1:]), True
    if any(d < 0 for d in shape):
        raise ModelFileError(f"engine tensor '{name}' has a dynamic shape {shape}; "
                             "export the ONNX graph with a fixed --height/--width")
    return shape, False


def _bind_io(trt, engine, context, device) -> tuple[dict, bool]:
    """Allocate one device tensor per I/O tensor (for the largest batch), bind its address;
    check the interface. (buffers, whether the batch axis is dynamic)."""
    buffers, modes, dynamic = {}, {}, set()
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        modes[name] = engine.get_tensor_mode(name)
    want = {RGB_INPUT: trt.TensorIOMode.INPUT, DEPTH_INPUT: trt.TensorIOMode.INPUT,
            DEPTH_OUTPUT: trt.TensorIOMode.OUTPUT, MASK_OUTPUT: trt.TensorIOMode.OUTPUT}
    if modes != want:
        raise ModelFileError(
            f"engine I/O is {sorted((n, str(m)) for n, m in modes.items())}; expected inputs "
            f"'{RGB_INPUT}', '{DEPTH_INPUT}' and outputs '{DEPTH_OUTPUT}', '{MASK_OUTPUT}' "
            "(a graph from `lingbot-depth export-onnx`)")
    for name in modes:
        shape, is_dynamic = _io_shape(engine, name)
        if is_dynamic:
            dynamic.add(name)
        tensor = torch.empty(shape, dtype=_torch_dtype(trt, engine.get_tensor_dtype(name)),
                             device=device)
        context.set_tensor_address(name, tensor.data_ptr())
        buffers[name] = tensor
    rgb = buffers[RGB_INPUT]
    if rgb.dtype != torch.uint8 or rgb.dim() != 4 or rgb.shape[3] != 3 or (
            rgb.shape[0] != 1 and RGB_INPUT not in dynamic):
        raise ModelFileError(f"engine input '{RGB_INPUT}' is {rgb.dtype} {tuple(rgb.shape)}, "
                             "expected uint8 (1, H, W, 3) or (batch, H, W, 3)")
    if dynamic and dynamic != set(modes):
        raise ModelFileError(f"engine tensors {sorted(dynamic)} have a dynamic batch axis, "
                             f"the others not: {sorted(set(modes) - dynamic)}")
    size = tuple(rgb.shape[:3])
    for name in (DEPTH_INPUT, DEPTH_OUTPUT, MASK_OUTPUT):
        if tuple(buffers[name].shape) != size or buffers[name].dtype != torch.float32:
            raise ModelFileError(f"engine tensor '{name}' is {buffers[name].dtype} "
                                 f"{tuple(buffers[name].shape)}, expected float32 {size}")
    return buffers, bool(dynamic)


class TensorRTEngine(Engine):
    """LingBot-Depth through TensorRT on one CUDA device: from `onnx` (plan built and cached
    on first use, rebuilt when its key changes) or a prebuilt `engine_file`; precision fp16,
    bf16, fp32 or auto. EngineUnavailableError when tensorrt or a CUDA device is missing."""

    name = "tensorrt"

    def __init__(self, engine_file: str | Path | None = None, onnx: str | Path | None = None,
                 precision: str = "auto", cache_dir: str | Path | None = None,
                 workspace_gb: float = 4.0, refine_measured: bool = False, device: int | str = 0,
                 mask_threshold: float = DEFAULT_MASK_THRESHOLD) -> None:
        super().__init__(refine_measured)
        if engine_file is None and onnx is None:
            raise ModelFileError("the tensorrt engine needs engine_file or onnx")
        trt = import_tensorrt()
        device = cuda_device_index(device)
        if device is None:
            raise EngineUnavailableError("tensorrt: runs on a CUDA device, but device 'cpu' was requested")
        require_cuda(device)
        if precision == "auto":
            # bf16 is what the reference runs under; GPUs before Ampere lack it.
            precision = "bf16" if torch.cuda.get_device_capability(device)[0] >= 8 else "fp16"
        self._device = torch.device("cuda", device)
        self.mask_threshold = check_mask_threshold(mask_threshold)
        self.plan_path, self.key = prepare_plan(
            runtime_identity(trt, device), engine_file=engine_file, onnx=onnx,
            precision=precision, cache_dir=cache_dir, workspace_gb=workspace_gb, device=device)
        self._load(trt)

    def _load(self, trt) -> None:
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self._device):
            self._engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
            if self._engine is None:
                raise ModelFileError(
                    f"TensorRT could not deserialise {self.plan_path}: it is corrupt or was "
                    f"built by another TensorRT version or for another GPU (this is TensorRT "
                    f"{trt.__version__} on {torch.cuda.get_device_name(self._device)})")
            self._context = self._engine.create_execution_context()
            self._buffers, self._dynamic_batch = _bind_io(trt, self._engine, self._context,
                                                          self._device)
            self.max_batch, self.height, self.width, _ = self._buffers[RGB_INPUT].shape
            self._stream = torch.cuda.Stream(device=self._device)
            # Pinned staging so the copies are truly asynchronous on the stream.
            batch, size = self.max_batch, (self.height, self.width)
            self._host_rgb = torch.empty((batch, *size, 3), dtype=torch.uint8, pin_memory=True)
            self._host_depth = torch.empty((batch, *size), dtype=torch.float32, pin_memory=True)
            self._host_pred = torch.empty((batch, *size), dtype=torch.float32, pin_memory=True)
            self._device_pred = torch.empty((batch, *size), dtype=torch.float32,
                                            device=self._device)
        log.info("tensorrt engine %s: %dx%d, batches of up to %d, on %s", self.plan_path,
                 self.width, self.height, self.max_batch,
                 torch.cuda.get_device_name(self._device))

    def batch_key(self, frame: RGBDFrame):
        """Every frame enters the plan at its one size, so any frames can share a batch."""
        return (self.height, self.width)

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        return self._run([frame], timings)[0]

    def _predict_batch(self, frames: list[RGBDFrame], timings: dict[str, float]):
        """Runs of up to max_batch frames; None (frame by frame) for a batch-1 plan."""
        return predict_in_runs(self._run, frames, timings, self.max_batch)

    def _run(self, frames: list[RGBDFrame], timings: dict[str, float]) -> list[np.ndarray]:
        n = len(frames)
        with stage(timings, "preprocess"):
            # another frame size goes through the graph's size and back, as in onnxruntime
            rgb, depth = batch_at_graph_size(frames, self.height, self.width)
            self._host_rgb.numpy()[:n] = rgb
            self._host_depth.numpy()[:n] = depth
        with stage(timings, "inference"):
            with torch.cuda.device(self._device), torch.cuda.stream(self._stream):
                self._enqueue(n)
                confident_depth(self._buffers[DEPTH_OUTPUT][:n], self._buffers[MASK_OUTPUT][:n],
                                self.mask_threshold, out=self._device_pred[:n])
                self._host_pred[:n].copy_(self._device_pred[:n], non_blocking=True)
            self._stream.synchronize()
        predictions = self._host_pred.numpy()[:n].copy()
        return [prediction_at_frame_size(predictions[i], frame) for i, frame in enumerate(frames)]

    def _enqueue(self, n: int) -> None:
        """Copy the first n staged frames in and run the plan on them (buffers are
        contiguous, so a batch of n is the first n frames of each)."""
        self._buffers[RGB_INPUT][:n].copy_(self._host_rgb[:n], non_blocking=True)
        self._buffers[DEPTH_INPUT][:n].copy_(self._host_depth[:n], non_blocking=True)
        if self._dynamic_batch:
            for name in (RGB_INPUT, DEPTH_INPUT):
                shape = (n, *self._buffers[name].shape[1:])
                if not self._context.set_input_shape(name, shape):
                    raise RuntimeError(f"TensorRT refused input shape {shape} for '{name}'")
        if not self._context.execute_async_v3(self._stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to enqueue {self.plan_path.name}")

    def describe(self) -> str:
        batches = f", batches of 1..{self.max_batch}" if self.max_batch > 1 else ""
        return (f"tensorrt ({self.plan_path.name}, {self.width}x{self.height}, "
                f"{self.key.precision if self.key else 'prebuilt'}{batches})")

    def close(self) -> None:
        # Context before engine before runtime, as TensorRT requires.
        for attr in ("_context", "_engine", "_runtime", "_buffers"):
            if hasattr(self, attr):
                delattr(self, attr)
