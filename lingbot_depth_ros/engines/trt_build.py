"""Build TensorRT plans from our exported ONNX graphs (TensorRT 10 Python API): `build_engine`
for ``lingbot-depth build-engine``, `prepare_plan` (cached or built) for the tensorrt engine."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from ..core.errors import EngineUnavailableError, ModelFileError
from .trt_cache import (
    PRECISIONS,
    PlanKey,
    RuntimeIdentity,
    cached_plan_path,
    check_given_plan,
    default_cache_dir,
    plan_key,
    read_onnx_info,
    sidecar_path,
    stale_reasons,
    write_sidecar,
)

log = logging.getLogger(__name__)

TIMING_CACHE_NAME = "timing.cache"


def import_tensorrt():
    """The ``tensorrt`` module (10 or newer), or EngineUnavailableError saying why not."""
    try:
        import tensorrt as trt
    except (ImportError, OSError) as exc:  # OSError: the wheel is there but libnvinfer is not
        raise EngineUnavailableError(
            f"tensorrt: not installed ({exc}); on a machine with an NVIDIA GPU: "
            "pip install 'lingbot_depth_ros[tensorrt]'") from exc
    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise EngineUnavailableError(
            f"tensorrt: version {trt.__version__} is too old, 10 or newer is needed "
            "(name-based I/O tensors and execute_async_v3)")
    return trt


def cuda_device_index(device) -> int | None:
    """CUDA device index named by a `device` option (None/'auto', N, 'cuda', 'cuda:N');
    None for 'cpu'."""
    if device is None:
        return 0
    if isinstance(device, int):
        return device
    text = str(device).strip().lower()
    if text == "cpu":
        return None
    if text in ("cuda", "auto"):
        return 0
    if text.startswith("cuda:") and text[5:].isdigit():
        return int(text[5:])
    if text.isdigit():
        return int(text)
    raise ValueError(f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or N, got {device!r}")


def require_cuda(device: int):
    """torch with CUDA device `device` usable, or EngineUnavailableError saying why not."""
    try:
        import torch
    except ImportError as exc:
        raise EngineUnavailableError(
            "tensorrt: PyTorch is needed for the CUDA buffers and stream and is not "
            f"installed ({exc})") from exc
    if not torch.cuda.is_available():
        build = f"CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
        raise EngineUnavailableError(f"tensorrt: no CUDA device (torch {torch.__version__}, {build})")
    count = torch.cuda.device_count()
    if not 0 <= device < count:
        raise EngineUnavailableError(f"tensorrt: CUDA device {device} does not exist ({count} present)")
    return torch


def runtime_identity(trt, device: int) -> RuntimeIdentity:
    """TensorRT version and GPU model (with compute capability) of this machine."""
    torch = require_cuda(device)
    major, minor = torch.cuda.get_device_capability(device)
    return RuntimeIdentity(tensorrt_version=trt.__version__,
                           gpu_name=f"{torch.cuda.get_device_name(device)} (sm_{major}{minor})")


def _parse_onnx(trt, logger, onnx_path: Path):
    """Parse into a fresh network; every parser error goes into the raised message."""
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    # parse_from_file also resolves weights stored as external data next to the graph.
    if not parser.parse_from_file(str(onnx_path)):
        errors = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            where = f"node {err.node()}"
            if err.node_name():
                where += f" '{err.node_name()}' ({err.node_operator()})"
            errors.append(f"  [{err.code()}] {where}: {err.desc()}")
        raise ModelFileError(f"TensorRT's ONNX parser rejected {onnx_path} with "
                             f"{parser.num_errors} error(s):\n" + "\n".join(errors))
    return builder, network, parser


def _configure(trt, builder, precision: str, workspace_gb: float, timing_cache: Path | None):
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    if precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
    elif precision == "bf16":
        config.set_flag(trt.BuilderFlag.BF16)
    else:
        # fp32 is the parity reference: keep TensorRT from silently using TF32 matmuls.
        config.clear_flag(trt.BuilderFlag.TF32)
    if timing_cache is not None:
        blob = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(blob)
        if not config.set_timing_cache(cache, ignore_mismatch=False):
            # A cache from another GPU/TensorRT: start afresh rather than fail the build.
            log.warning("timing cache %s does not match this GPU/TensorRT; starting a new one",
                        timing_cache)
            config.set_timing_cache(config.create_timing_cache(b""), ignore_mismatch=False)
    return config


def add_batch_profile(trt, builder, network, config, max_batch: int) -> None:
    """An optimisation profile over batches of 1..max_batch frames for a graph whose inputs
    have a dynamic first axis (tuned for max_batch: a rig's full batch); ModelFileError when
    the graph's batch axis and its metadata disagree."""
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    dynamic = [tensor for tensor in inputs if tuple(tensor.shape)[:1] == (-1,)]
    if max_batch == 1 and not dynamic:
        return
    rest = [tensor.name for tensor in inputs if any(d < 0 for d in tuple(tensor.shape)[1:])]
    if rest or len(dynamic) != len(inputs):
        raise ModelFileError(
            f"the graph's inputs {[(t.name, tuple(t.shape)) for t in inputs]} are not one "
            "dynamic batch axis over a fixed frame size (export it with export-onnx)")
    if max_batch == 1:
        raise ModelFileError("the graph has a dynamic batch axis but states no lingbot.max_batch "
                             "(export it with export-onnx --max-batch)")
    profile = builder.create_optimization_profile()
    for tensor in dynamic:
        frame = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *frame), (max_batch, *frame), (max_batch, *frame))
    config.add_optimization_profile(profile)


def _write_atomic(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(memoryview(data))
    os.replace(tmp, path)


def build_plan(key: PlanKey, onnx_path: str | Path, out_path: str | Path,
               workspace_gb: float = 4.0, timing_cache: str | Path | None = None,
               device: int = 0) -> Path:
    """Build `onnx_path` into a plan at `out_path` for an already computed `key`."""
    trt = import_tensorrt()
    torch = require_cuda(device)
    onnx_path, out_path = Path(onnx_path), Path(out_path)
    timing_cache = Path(timing_cache) if timing_cache is not None else None
    # -v (debug logging) also shows TensorRT's own builder messages.
    logger = trt.Logger(trt.Logger.INFO if log.isEnabledFor(logging.DEBUG) else trt.Logger.WARNING)
    started = time.perf_counter()
    with torch.cuda.device(device):  # TensorRT builds for the current CUDA device
        # The parser owns weights the network points at: keep it alive through the build.
        builder, network, _parser = _parse_onnx(trt, logger, onnx_path)
        config = _configure(trt, builder, key.precision, workspace_gb, timing_cache)
        add_batch_profile(trt, builder, network, config, key.max_batch)
        plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ModelFileError(
            f"TensorRT could not build {onnx_path} ({key.precision}, workspace "
            f"{workspace_gb} GiB); run with -v for the builder log, or raise --workspace-gb")
    # Drop the old sidecar first: a crash between the two writes must not leave a new plan
    # described by the previous build's key.
    sidecar_path(out_path).unlink(missing_ok=True)
    _write_atomic(out_path, plan)
    write_sidecar(out_path, key, workspace_gb=workspace_gb, onnx_path=str(onnx_path),
                  build_seconds=round(time.perf_counter() - started, 1))
    if timing_cache is not None:
        _write_atomic(timing_cache, config.get_timing_cache().serialize())
    log.info("built TensorRT %s engine %s (%dx%d, %dx%d tokens, batches of up to %d) in %.0f s",
             key.precision, out_path, key.width, key.height, key.cols, key.rows, key.max_batch,
             time.perf_counter() - started)
    return out_path


def build_engine(onnx_path: str | Path, out_path: str | Path, precision: str = "fp16",
                 workspace_gb: float = 4.0, timing_cache: str | Path | None = None,
                 device: int = 0) -> PlanKey:
    """Build a plan from one of our ONNX exports; write it with its sidecar; return its key."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    trt = import_tensorrt()
    key = plan_key(read_onnx_info(onnx_path), precision, runtime_identity(trt, device))
    build_plan(key, onnx_path, out_path, workspace_gb, timing_cache, device)
    return key


def prepare_plan(runtime: RuntimeIdentity, engine_file: str | Path | None = None,
                 onnx: str | Path | None = None, precision: str = "fp16",
                 cache_dir: str | Path | None = None, workspace_gb: float = 4.0,
                 device: int = 0) -> tuple[Path, PlanKey | None]:
    """The plan to load: a given engine_file alone is vetted and used as is; from onnx, the
    plan (at engine_file or in the cache) is built when missing or its sidecar key differs."""
    if onnx is None:
        if engine_file is None:
            raise ModelFileError("the tensorrt engine needs an engine file or an ONNX file")
        return Path(engine_file), check_given_plan(engine_file, runtime)
    info = read_onnx_info(onnx)
    wanted = plan_key(info, precision, runtime)
    if engine_file is not None:
        plan_path = Path(engine_file)
    else:
        plan_path = cached_plan_path(cache_dir or default_cache_dir(), info, precision)
    reasons = stale_reasons(plan_path, wanted)
    if reasons:
        log.info("building TensorRT engine %s: %s", plan_path, "; ".join(reasons))
        build_plan(wanted, onnx, plan_path, workspace_gb,
                   timing_cache=plan_path.parent / TIMING_CACHE_NAME, device=device)
    return plan_path, wanted
