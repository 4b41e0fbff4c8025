"""The `onnxruntime` engine: a graph from `lingbot-depth export-onnx`, one session run per frame
or per batch (pre- and post-processing are in the graph). On the CPU a session runs the
rewritten graph of ort_cpu, one per batch size (the rewrites need static shapes);
fuse_attention=False or CUDA runs the file as exported, one session for every batch size."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ..core.errors import EngineUnavailableError, ModelFileError
from ..core.frame import RGBDFrame
from .base import Engine, stage
from .neural_common import (DEFAULT_MASK_THRESHOLD, batch_at_graph_size, check_mask_threshold,
                            check_output_shape, prediction_at_frame_size, prediction_from_outputs,
                            predict_in_runs)

log = logging.getLogger(__name__)

# Names fixed by lingbot_depth_ros.model.export (kept here so this engine needs no torch).
RGB_INPUT, DEPTH_INPUT = "rgb", "depth"
DEPTH_OUTPUT, MASK_OUTPUT = "depth_out", "mask"
_CUDA, _CPU = "CUDAExecutionProvider", "CPUExecutionProvider"
_DISABLED_OPTIMIZERS = "optimization.disable_specified_optimizers"
#: metadata of a graph exported with a dynamic batch axis: the largest batch it takes
MAX_BATCH_KEY = "lingbot.max_batch"


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
        self._requested = resolve_providers(providers)
        self._threads = int(threads)  # 0 = one per physical core
        self._fuse = fuse_attention and _provider_name(self._requested[0]) == _CPU
        self.fused_attention = 0  # attention blocks running as MultiHeadAttention
        # batch size -> session; key 0: the file as exported, which takes any batch size
        self._sessions: dict[int, ort.InferenceSession] = {}
        self.session = self._session(1)
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
        self.height, self.width, self.max_batch = self._check_signature()
        self.providers = self.session.get_providers()
        wanted_cuda = any(_provider_name(p) == _CUDA for p in self._requested)
        if wanted_cuda and _CUDA not in self.providers:
            log.warning("onnxruntime could not start CUDA; running %s on the CPU", self.path.name)
        log.info("%s", self.describe())

    def _session(self, batch: int):
        """The session that runs batches of `batch` frames (made on first use)."""
        session = self._sessions.get(batch) or self._sessions.get(0)
        if session is not None:
            return session
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = self._threads
        session = self._cpu_session(options, self._requested, batch) if self._fuse else None
        if session is not None:
            self._sessions[batch] = session
            return session
        try:
            session = ort.InferenceSession(str(self.path), options, providers=self._requested)
        except Exception as exc:  # ORT raises its own classes for unreadable or invalid graphs
            raise ModelFileError(f"cannot load ONNX file {self.path}: {exc}") from exc
        self._sessions[0] = session
        return session

    def _cpu_session(self, options, providers, batch: int):
        """A session on the graph with fused attention, or None to load the file as it is
        (the rewrite is only a speed-up: whatever goes wrong, the exported graph still runs)."""
        try:
            from .ort_cpu import prepare_cpu_graph

            graph = prepare_cpu_graph(self.path, batch)
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
        self.fused_attention = self.fused_attention or graph.fused
        log.info("onnxruntime: batch %d: %s%s", batch, graph.note,
                 "" if graph.use_nchwc else "; NCHWc layout off")
        return session

    def _check_signature(self) -> tuple[int, int, int]:
        """(height, width, max batch) of the graph; ModelFileError unless it is one of our
        exports (a static batch of 1, or a dynamic batch axis up to its stated max_batch)."""
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        rgb = inputs.get(RGB_INPUT)
        if (set(inputs) != {RGB_INPUT, DEPTH_INPUT} or not {DEPTH_OUTPUT, MASK_OUTPUT} <= outputs
                or len(rgb.shape) != 4 or not all(isinstance(d, int) for d in rgb.shape[1:])):
            raise ModelFileError(
                f"ONNX file {self.path} is not a lingbot-depth graph of a fixed frame size: "
                f"inputs {sorted(inputs)}, outputs {sorted(outputs)}, need inputs "
                f"'{RGB_INPUT}' (N,H,W,3) and '{DEPTH_INPUT}', outputs '{DEPTH_OUTPUT}' and "
                f"'{MASK_OUTPUT}'")
        height, width = int(rgb.shape[1]), int(rgb.shape[2])
        max_batch = _max_batch(self.path, rgb.shape[0], self.metadata)
        shapes = {o.name: o.shape for o in self.session.get_outputs()}
        batch = rgb.shape[0] if isinstance(rgb.shape[0], int) else None
        for name in (DEPTH_OUTPUT, MASK_OUTPUT):
            check_output_shape(name, shapes[name], height, width, f"ONNX file {self.path}",
                               batch)
        return height, width, max_batch

    def describe(self) -> str:
        grid = f"{self.metadata.get('lingbot.cols', '?')}x{self.metadata.get('lingbot.rows', '?')}"
        fused = f", {self.fused_attention} fused attention" if self.fused_attention else ""
        batches = f", batches of 1..{self.max_batch}" if self.max_batch > 1 else ""
        return (f"onnxruntime ({self.path.name}, {self.width}x{self.height}, {grid} tokens, "
                f"{self.metadata.get('lingbot.mode', '?')}, {self.providers[0]}{fused}"
                f"{batches})")

    def batch_key(self, frame: RGBDFrame):
        """Every frame enters the graph at its one size, so any frames can share a batch."""
        return (self.height, self.width)

    def prepare_batch(self, size: int) -> None:
        """The session of runs of min(size, max_batch) frames (on the CPU, one per size)."""
        self._session(max(1, min(int(size), self.max_batch)))

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        return self._run([frame], timings)[0]

    def _predict_batch(self, frames: list[RGBDFrame], timings: dict[str, float]):
        """Runs of up to max_batch frames each; None (frame by frame) for a batch-1 graph."""
        return predict_in_runs(self._run, frames, timings, self.max_batch)

    def _run(self, frames: list[RGBDFrame], timings: dict[str, float]) -> list[np.ndarray]:
        with stage(timings, "preprocess"):
            rgb, depth = batch_at_graph_size(frames, self.height, self.width)
            session = self._session(len(frames))
        with stage(timings, "inference"):
            depth_out, mask = session.run([DEPTH_OUTPUT, MASK_OUTPUT],
                                          {RGB_INPUT: rgb, DEPTH_INPUT: depth})
        with stage(timings, "postprocess"):
            return [prediction_at_frame_size(
                prediction_from_outputs(depth_out[i], mask[i], self.mask_threshold), frame)
                for i, frame in enumerate(frames)]

    def close(self) -> None:
        self._sessions.clear()
        self.session = None


def _max_batch(path: Path, batch_dim, metadata: dict) -> int:
    """1 for a static batch-1 graph; the export's stated max batch for a dynamic batch axis
    (the batch-1 session of which has it fixed to 1 in memory)."""
    if isinstance(batch_dim, int) and batch_dim != 1:
        raise ModelFileError(f"ONNX file {path} has a fixed batch of {batch_dim}; export it "
                             "with --max-batch for batches (a fixed batch takes 1 frame)")
    if isinstance(batch_dim, int) and MAX_BATCH_KEY not in metadata:
        return 1
    try:
        value = int(metadata[MAX_BATCH_KEY])
    except (KeyError, ValueError):
        raise ModelFileError(f"ONNX file {path} has a dynamic batch axis but no integer "
                             f"{MAX_BATCH_KEY} metadata (export it with export-onnx "
                             "--max-batch)") from None
    if value < 1:
        raise ModelFileError(f"ONNX file {path}: {MAX_BATCH_KEY} is {value}, not positive")
    return value
