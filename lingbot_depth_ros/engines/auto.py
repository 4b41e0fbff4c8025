"""``engine: auto``: the fastest engine this machine can run with the model files given
(order and why torch on the CPU is never chosen: docs/engines.md). Only "cannot run here"
(EngineUnavailableError) moves on; a broken model file raises ModelFileError, since falling
back silently would hide a broken deployment."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..core.errors import EngineUnavailableError
from .base import Engine
from .trt_build import cuda_device_index

log = logging.getLogger(__name__)
#: builds engine `name` from those of `options` it takes (the registry's, passed in so this
#: module does not import the registry that imports it)
Construct = Callable[[str, dict], Engine]


def _onnxruntime_providers() -> list[str]:
    try:
        import onnxruntime
    except ImportError as exc:
        raise EngineUnavailableError(f"onnxruntime not installed ({exc})") from exc
    return list(onnxruntime.get_available_providers())


def _torch_cuda_devices() -> int:
    try:
        import torch
    except ImportError as exc:
        raise EngineUnavailableError(f"torch not installed ({exc})") from exc
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        raise EngineUnavailableError(f"no CUDA device (torch {torch.__version__}, {build})")
    return torch.cuda.device_count()


class _Candidates:
    """One method per candidate: returns an engine or raises EngineUnavailableError."""

    def __init__(self, construct: Construct, checkpoint, onnx, engine_file, cuda: int | None,
                 opts: dict) -> None:
        self.construct = construct
        self.checkpoint, self.onnx, self.engine_file = checkpoint, onnx, engine_file
        self.cuda, self.opts = cuda, opts

    def _need_cuda(self) -> int:
        if self.cuda is None:
            raise EngineUnavailableError("device 'cpu' was requested")
        return self.cuda

    def tensorrt(self) -> Engine:
        if self.onnx is None and self.engine_file is None:
            raise EngineUnavailableError("no ONNX or engine file given")
        return self.construct("tensorrt", {**self.opts, "onnx": self.onnx,
                                       "engine_file": self.engine_file,
                                       "device": self._need_cuda()})

    def onnxruntime_cuda(self) -> Engine:
        if self.onnx is None:
            raise EngineUnavailableError("no ONNX file given")
        index = self._need_cuda()
        providers = _onnxruntime_providers()
        if "CUDAExecutionProvider" not in providers:
            raise EngineUnavailableError(
                f"CUDAExecutionProvider not available (this onnxruntime has {', '.join(providers)})")
        cuda_provider = ("CUDAExecutionProvider", {"device_id": index})
        engine = self.construct("onnxruntime", {**self.opts, "onnx": self.onnx,
                                            "providers": [cuda_provider]})
        if engine.providers[0] != "CUDAExecutionProvider":
            # onnxruntime falls back to the CPU when CUDA fails to start (driver, cuDNN);
            # that is the later onnxruntime(CPU) candidate, not this one.
            engine.close()
            raise EngineUnavailableError(f"CUDAExecutionProvider failed to start (session "
                                         f"runs on {', '.join(engine.providers)})")
        return engine

    def torch_cuda(self) -> Engine:
        if self.checkpoint is None:
            raise EngineUnavailableError("no checkpoint given")
        index = self._need_cuda()
        count = _torch_cuda_devices()
        if index >= count:
            raise EngineUnavailableError(f"CUDA device {index} does not exist ({count} present)")
        return self.construct("torch", {**self.opts, "checkpoint": self.checkpoint,
                                    "device": f"cuda:{index}"})

    def onnxruntime_cpu(self) -> Engine:
        if self.onnx is None:
            raise EngineUnavailableError("no ONNX file given")
        _onnxruntime_providers()
        return self.construct("onnxruntime", {**self.opts, "onnx": self.onnx,
                                          "providers": ["CPUExecutionProvider"]})

    def neural(self) -> list[tuple[str, Callable[[], Engine]]]:
        """The neural candidates, best first (guided, always available, comes after)."""
        return [("tensorrt", self.tensorrt), ("onnxruntime(CUDA)", self.onnxruntime_cuda),
                ("torch(CUDA)", self.torch_cuda), ("onnxruntime(CPU)", self.onnxruntime_cpu)]


def _reason(exc: Exception) -> str:
    # Engines prefix their own messages with their name ("tensorrt: not installed ...");
    # the log line already starts with the candidate label.
    text = str(exc)
    head, sep, rest = text.partition(": ")
    return rest if sep and head in ("tensorrt", "onnxruntime", "torch") else text


def create_auto_engine(construct: Construct, options: dict) -> Engine:
    """Create the best available engine; its ``selection_log`` lists each candidate's fate.
    `construct` gives each candidate the `options` its constructor accepts."""
    opts = {k: v for k, v in options.items() if v is not None}
    checkpoint, onnx, engine_file = (opts.pop(k, None) for k in ("checkpoint", "onnx", "engine_file"))
    cuda = cuda_device_index(opts.pop("device", None))
    opts.pop("providers", None)  # auto decides the onnxruntime providers itself
    candidates = _Candidates(construct, checkpoint, onnx, engine_file, cuda, opts)
    selection_log: list[str] = []
    for label, attempt in candidates.neural():
        try:
            engine = attempt()
        except EngineUnavailableError as exc:
            selection_log.append(f"{label}: skipped, {_reason(exc)}")
            log.info("auto: %s", selection_log[-1])
            continue
        break
    else:
        label, engine = "guided", construct("guided", opts)
    selection_log.append(f"{label}: selected")
    log.info("auto: chose %s (%s)", label, engine.describe())
    engine.selection_log = selection_log
    return engine
