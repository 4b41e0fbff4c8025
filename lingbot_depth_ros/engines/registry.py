"""Build an engine by name. Heavy runtimes (torch, onnxruntime, tensorrt) import lazily."""

from __future__ import annotations

import importlib
import logging

from ..core.errors import EngineOptionError, EngineUnavailableError
from .base import Engine

log = logging.getLogger(__name__)

#: name -> "module:Class" (relative to this package)
_ENGINES = {
    "guided": "classical:GuidedEngine",
    "nearest": "classical:NearestEngine",
    "telea": "classical:TeleaEngine",
    "torch": "torch_engine:TorchEngine",
    "onnxruntime": "onnx_engine:OnnxRuntimeEngine",
    "tensorrt": "tensorrt_engine:TensorRTEngine",
}
ENGINE_NAMES = (*_ENGINES, "auto")
CLASSICAL_ENGINES = ("guided", "nearest", "telea")


def engine_class(name: str) -> type[Engine]:
    try:
        module_name, class_name = _ENGINES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown engine '{name}' (choose from {', '.join(ENGINE_NAMES)})") from None
    try:
        module = importlib.import_module(f".{module_name}", __package__)
    except ImportError as exc:
        raise EngineUnavailableError(f"engine '{name}' cannot be imported: {exc}") from exc
    return getattr(module, class_name)


def create_engine(name: str = "guided", **options) -> Engine:
    """Create engine `name` with its options (see each engine's constructor).

    ``auto`` tries tensorrt > onnxruntime(CUDA) > torch(CUDA) > onnxruntime(CPU) > guided
    with whatever model files are given, logging why each better one was skipped.
    """
    if name == "auto":
        from .auto import create_auto_engine

        return create_auto_engine(**options)
    cls = engine_class(name)
    if name in CLASSICAL_ENGINES:
        # Classical engines take no model files; ignore the neural options a config may carry.
        options = {k: v for k, v in options.items() if k in cls.OPTIONS}
    unknown = sorted(set(options) - set(cls.OPTIONS))
    if unknown:
        raise EngineOptionError(
            f"engine '{name}' does not take {', '.join(unknown)} "
            f"(it takes: {', '.join(cls.OPTIONS)})")
    return cls(**options)
