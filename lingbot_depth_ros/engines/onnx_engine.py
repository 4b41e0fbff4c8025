"""The `onnxruntime` engine: a static-shape graph from `lingbot-depth export-onnx`, one session
run per frame (pre- and post-processing are in the graph). On the CPU the session runs the
rewritten graph of ort_cpu; fuse_attention=False runs the file as exported."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..core.errors import EngineUnavailableError, ModelFileError
from ..core.frame import RGBDFrame
from .base import Engine, stage
from .neural_common import (DEFAULT_MASK_THRESHOLD, check_mask_threshold, check_output_shape,
                            inputs_at_graph_size, prediction_at_frame_size,
                            prediction_from_outputs)

log = logging.getLogger(__name__)

# Names fixed by lingbot_depth_ros.model.export (kept here so this engine needs no torch).
RGB_INPUT, DEPTH_INPUT = "rgb", "depth"
DEPTH_OUTPUT, MASK_OUTPUT = "depth_out", "mask"
_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
_DISABLED_OPTIMIZERS = "optimization.disable_specified_optimizers"


def resolve_providers(providers) -> list:
    """'auto' (CUDA when this onnxruntime has it, else CPU), 'cpu', 'cuda', a comma-separated
    string or a list of provider names / (name, options) pairs -> an ORT providers list."""
    available = ort.get_available_providers()
    if providers is None or providers == "auto":
        return [_CUDA, _CPU] if _CUDA in available else [_CPU]
    if isinstance(providers, str):
        aliases = {"cpu": [_CPU], "cuda": [_CUDA, _CPU]}
        providers = aliases.get(providers.lower()) or [p.strip() for p in providers.split(",")]
    names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
    missing = [n for n in names if n not in available]
    if missing:
        raise EngineUnavailableError(
            f"onnxruntime: provider {', '.join(missing)} not available "
            f"(this onnxruntime {ort.__version__} has {', '.join(available)})")
    return [tuple(p) if isinstance(p, list) else p for p in providers]


def _provider_name(provider) -> str:
    return provider[0] if isinstance(provider, tuple) else provider


class OnnxRuntimeEngine(Engine):
    name = "onnxruntime"

    def __init__(self, onnx: str | Path | None = None, providers="auto",
                 refine_measured: bool = False, mask_threshold: float = DEFAULT_MASK_THRESHOLD,
                 threads: int = 0, fuse_attention: bool = True) -> None:
        super().__init__(refine_measured)
        if onnx is None:
            raise ModelFileError("onnxruntime: needs onnx=PATH (from lingbot-depth export-onnx)")
        self.path = Path(onnx)
        if not self.path.is_file():
            raise ModelFileError(f"ONNX file {self.path} does not exist or is not a file")
        self.mask_threshold = check_mask_threshold(mask_threshold)
        requested = resolve_providers(providers)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = int(threads)  # 0 = one per physical core
        self.fused_attention = 0  # attention blocks running as MultiHeadAttention
        self.session = None
        if fuse_attention and _provider_name(requested[0]) == _CPU:
            self.session = self._cpu_session(options, requested)
        if self.session is None:
            try:
                self.session = ort.InferenceSession(str(self.path), options, providers=requested)
            except Exception as exc:  # ORT raises its own classes for unreadable or invalid graphs
                raise ModelFileError(f"cannot load ONNX file {self.path}: {exc}") from exc
        self.height, self.width = self._check_signature()
        self.providers = self.session.get_providers()
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        wanted_cuda = any(_provider_name(p) == _CUDA for p in requested)
        if wanted_cuda and _CUDA not in self.providers:
            log.warning("onnxruntime could not start CUDA; running %s on the CPU", self.path.name)
        log.info("%s", self.describe())

    def _cpu_session(self, options, providers):
        """A session on the graph with fused attention, or None to load the file as it is
        (the rewrite is only a speed-up: whatever goes wrong, the exported graph still runs)."""
        try:
            from .ort_cpu import prepare_cpu_graph

            graph = prepare_cpu_graph(self.path)
        except Exception as exc:  # an unreadable file: loading it plainly reports that
            log.info("onnxruntime: attention of %s not fused: %s", self.path.name, exc)
            return None
        if not graph.use_nchwc:  # its convolutions are narrower than ORT's channel blocks
            options.add_session_config_entry(_DISABLED_OPTIMIZERS, "NchwcTransformer")
        if graph.model_bytes is None:
            log.info("onnxruntime: attention of %s not fused: %s", self.path.name, graph.note)
            return None
        try:
            session = ort.InferenceSession(graph.model_bytes, options, providers=providers)
        except Exception as exc:  # ORT refuses the rewritten graph: our bug, not the file's
            log.warning("onnxruntime: fused graph of %s refused (%s); using it unfused",
                        self.path.name, exc)
            return None
        self.fused_attention = graph.fused
        log.info("onnxruntime: %s%s", graph.note, "" if graph.use_nchwc else "; NCHWc layout off")
        return session

    def _check_signature(self) -> tuple[int, int]:
        """(height, width) of the graph; ModelFileError unless it is one of our exports."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        rgb = inputs.get(RGB_INPUT)
        if (set(inputs) != {RGB_INPUT, DEPTH_INPUT} or not {DEPTH_OUTPUT, MASK_OUTPUT} <= outputs
                or len(rgb.shape) != 4 or not all(isinstance(d, int) for d in rgb.shape)):
            raise ModelFileError(
                f"ONNX file {self.path} is not a static-shape lingbot-depth graph: inputs "
                f"{sorted(inputs)}, outputs {sorted(outputs)}, need inputs '{RGB_INPUT}' "
                f"(1,H,W,3) and '{DEPTH_INPUT}', outputs '{DEPTH_OUTPUT}' and '{MASK_OUTPUT}'")
        height, width = int(rgb.shape[1]), int(rgb.shape[2])
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        for name in (DEPTH_OUTPUT, MASK_OUTPUT):
            check_output_shape(name, shapes[name], height, width, f"ONNX file {self.path}")
        return height, width

    def describe(self) -> str:
        grid = f"{self.metadata.get('lingbot.cols', '?')}x{self.metadata.get('lingbot.rows', '?')}"
        fused = f", {self.fused_attention} fused attention" if self.fused_attention else ""
        return (f"onnxruntime ({self.path.name}, {self.width}x{self.height}, {grid} tokens, "
                f"{self.metadata.get('lingbot.mode', '?')}, {self.providers[0]}{fused})")

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        with stage(timings, "preprocess"):
            rgb, depth = inputs_at_graph_size(frame, self.height, self.width)
        with stage(timings, "inference"):
            depth_out, mask = self.session.run([DEPTH_OUTPUT, MASK_OUTPUT],
                                               {RGB_INPUT: rgb, DEPTH_INPUT: depth})
        with stage(timings, "postprocess"):
            prediction = prediction_from_outputs(depth_out, mask, self.mask_threshold)
            return prediction_at_frame_size(prediction, frame)

    def close(self) -> None:
        self.session = None
