"""bench_gpu.py's measurements: latency against the floor, engine options, bf16 accuracy,
the node end to end, and the engines this machine cannot run."""

from __future__ import annotations

import gc
import importlib
import os
import statistics

import numpy as np
import torch

from gpu_setup import Setup, synchronize, time_engine

LEVELS = (0, 9)
MODES = ("completion", "monocular")
PRECISIONS = ("bf16", "fp16")
#: seconds a measurement is assumed to need at most; none starts with less budget left
MEASUREMENT_S = 25.0
#: the same for a measurement that first compiles ViT-L with torch.compile
COMPILE_S = 180.0
#: engine options against the defaults (level 9, completion, bf16): name -> (options, note)
OPTION_VARIANTS = {
    "defaults": ({}, "gather, static grid, bf16 weights, pinned I/O, no graph"),
    "static_grid off": ({"static_grid": False}, "grid, positional embedding, UV every frame"),
    "pinned_io off": ({"pinned_io": False}, "pageable host buffers"),
    "cast_weights off": ({"cast_weights": False}, "autocast casts the weights every frame"),
    "bf16 autocast off (fp32)": ({"precision": "fp32"}, ""),
    "attention key_mask": ({"attention": "key_mask", "cuda_graph": False},
                           "all depth tokens, aligned key bias"),
    "key_mask + cuda_graph": ({"attention": "key_mask", "cuda_graph": True}, ""),
    "key_mask + cuda_graph + compile": ({"attention": "key_mask", "cuda_graph": True,
                                         "compile": True}, "compile time not counted"),
    "monocular, cuda_graph off": ({"mode": "monocular", "cuda_graph": False},
                                  "compare with the monocular bf16 latency row"),
}


def _release(engine) -> None:
    engine.close()
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _reset_peak(setup: Setup) -> None:
    if setup.device.type == "cuda":
        synchronize(setup.device)
        torch.cuda.reset_peak_memory_stats(setup.device)


def _peak_mib(setup: Setup) -> float | None:
    if setup.device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(setup.device) / 2**20


def _out_of_budget(setup: Setup, needed: float = MEASUREMENT_S) -> dict | None:
    if setup.budget.left() < needed:
        return {"status": "skipped", "reason": "time budget (--budget-s) spent"}
    return None


def measure(setup: Setup, **options) -> dict:
    """One engine configuration: latency, peak memory and the frames' mean FLOPs."""
    _reset_peak(setup)
    engine = setup.engine(**options)
    try:
        timing = time_engine(setup, engine)
        level, mode = options.get("resolution_level", 9), options.get("mode", "completion")
        frames = timing.pop("frames_used")
        rows, cols = engine.model.grid(*setup.size, level)
        tokens = {"tokens": rows * cols}
        if mode == "completion" and engine.attention == "gather":
            kept = [setup.kept_depth_tokens(f, level) for f in frames]
            flops = statistics.mean(setup.flops(level, mode, k) for k in kept)
            tokens["depth_tokens_kept"] = statistics.mean(kept)
        else:  # key masking runs every depth token; monocular none
            flops = setup.flops(level, mode)
        graph_failed = [r.graph_failed for r in engine._runners.values() if r.graph_failed]
        return {**timing, **tokens, "status": "ok", "peak_mib": _peak_mib(setup), "run_gflops": flops / 1e9,
                "engine": engine.describe(),
                **({"graph_failed": graph_failed[0]} if graph_failed else {})}
    finally:
        _release(engine)


def latency_section(setup: Setup, tflops: float | None) -> dict:
    rows = []
    for level in LEVELS:
        for mode in MODES:
            for precision in PRECISIONS:
                row = {"level": level, "mode": mode, "precision": precision}
                row.update(_out_of_budget(setup)
                           or measure(setup, resolution_level=level, mode=mode,
                                      precision=precision))
                if row["status"] == "ok" and tflops:
                    row["floor_ms"] = row["run_gflops"] / tflops
                    row["floor_static_ms"] = setup.flops(level, mode) / 1e9 / tflops
                    row["over_floor"] = row["median_ms"] / row["floor_ms"]
                rows.append(row)
    return {"status": "ok", "rows": rows}


def options_section(setup: Setup) -> dict:
    rows, default_ms = [], None
    for name, (options, note) in OPTION_VARIANTS.items():
        row = {"name": name, "note": note}
        options = dict(options, resolution_level=9)
        options.setdefault("precision", "bf16")
        needs_cuda = options.get("cuda_graph") or options.get("pinned_io")
        if setup.device.type != "cuda" and needs_cuda:
            row.update(status="skipped", reason="needs CUDA")
        elif options.get("compile") and not setup.compile:
            row.update(status="skipped", reason="--no-compile")
        elif setup.device.type != "cuda" and "cuda_graph" in options:
            options["cuda_graph"] = False  # the dry run still checks the rest of the variant
        if "status" not in row:
            needed = COMPILE_S if options.get("compile") else MEASUREMENT_S
            row.update(_out_of_budget(setup, needed) or measure(setup, **options))
        if row["status"] == "ok":
            default_ms = default_ms or row["median_ms"]
            row["vs_default"] = row["median_ms"] / default_ms
        rows.append(row)
    return {"status": "ok", "rows": rows}


def _relative(depth: np.ndarray, reference: np.ndarray) -> np.ndarray:
    both = np.isfinite(depth) & np.isfinite(reference) & (reference > 0)
    return np.abs(depth[both] - reference[both]) / reference[both]


def accuracy_section(setup: Setup) -> dict:
    """Each precision against fp32 on the same device, per capture, raw network depth."""
    if _out_of_budget(setup):
        return _out_of_budget(setup)
    # every pixel predicted: measured ones replaced, no mask-head threshold
    common = dict(resolution_level=9, refine_measured=True, mask_threshold=0.0)
    predictions = {}
    for precision in ("fp32", *PRECISIONS):
        engine = setup.engine(precision=precision, **common)
        try:
            predictions[precision] = [engine.complete(frame).depth for _, frame in setup.frames]
        finally:
            _release(engine)
    rows = []
    for precision in PRECISIONS:
        for (name, _), got, want in zip(setup.frames, predictions[precision],
                                        predictions["fp32"]):
            rel = _relative(got, want)
            rows.append({"capture": name, "precision": precision, "pixels": int(rel.size),
                         "median_rel": float(np.median(rel)),
                         "p95_rel": float(np.percentile(rel, 95))})
    return {"status": "ok", "rows": rows,
            "note": "random weights: figures for trained weights may differ"}


def node_section(setup: Setup) -> dict:
    """The demo bag at 30 Hz into the node on the torch engine (level 9)."""
    try:
        importlib.import_module("rclpy")
        importlib.import_module("rosbags")
    except ImportError as exc:
        return {"status": "skipped", "reason": f"ROS 2 Python packages missing: {exc}"}
    if _out_of_budget(setup):
        return _out_of_budget(setup)
    from lingbot_depth_ros.bag.demo import write_demo_bag
    from lingbot_depth_ros.paths import data_path
    from lingbot_depth_ros.ros.dds_profile import use_launch_profile

    use_launch_profile(os.environ, str(data_path("config/fastdds_large_data.xml")))  # as the demo
    from lingbot_depth_ros.ros.replay import replay

    repeat = 2 if setup.dry_run else 45  # 4 captures: 8 or 180 frames at 30 Hz
    # The node runs as its own process (ros/replay.py), so its first frame is a cold one
    # (CUDA context, kernels): the frames it supersedes are counted, not hidden.
    made = write_demo_bag(setup.capture_roots[0], setup.tmp / "demo_in", fps=30.0, repeat=repeat,
                          storage="mcap")
    summary = replay(setup.tmp / "demo_in", setup.tmp / "demo_out",
                     params_file=data_path("config/realsense_d435i.yaml"),
                     overrides={"engine": "torch", "checkpoint": str(setup.checkpoint),
                                "resolution_level": 9, "qos": "reliable", "queue_depth": 30})
    status = "ok" if summary.engine.startswith("torch") else "failed"
    kept_up = summary.published == made["frames"] and not summary.dropped
    return {"status": status, "engine": summary.engine, "frames": made["frames"],
            "received": summary.received, "published": summary.published, "dropped": summary.dropped,
            "queued": summary.queued, "rate_hz": summary.rate_hz,
            "latency_p50_ms": summary.latency_p50_ms, "latency_p95_ms": summary.latency_p95_ms,
            "engine_p50_ms": summary.engine_p50_ms, "wall_s": summary.wall_s,
            "kept_up_with_30hz": kept_up,
            **({"error": f"the node fell back to {summary.engine}"} if status != "ok" else {})}


def skipped_engines() -> dict:
    """Why the engines beside torch cannot be measured on this machine."""
    reasons = {}
    try:
        importlib.import_module("tensorrt")
        reasons["tensorrt"] = "importable: measured in the batches section only"
    except ImportError as exc:
        reasons["tensorrt"] = f"not installed ({exc}); it cannot be carried (over 64 MiB)"
    try:
        ort = importlib.import_module("onnxruntime")
        providers = ort.get_available_providers()
        if "CUDAExecutionProvider" in providers:
            reasons["onnxruntime(CUDA)"] = "available, but not measured by this script"
        else:
            reasons["onnxruntime(CUDA)"] = (f"CUDAExecutionProvider not in onnxruntime "
                                            f"{ort.__version__}'s providers {providers}")
    except ImportError as exc:
        reasons["onnxruntime(CUDA)"] = f"onnxruntime not installed ({exc})"
    return reasons
