"""bench_gpu.py's batch section: per-frame time of one engine call over a batch of frames
(Engine.complete_batch) at batch sizes 1, 2 and 4, on the torch engine and on TensorRT where
it imports; the issue-22 target is batch 4 per frame <= 0.6x batch 1."""

from __future__ import annotations

import statistics
import time

import numpy as np

from gpu_setup import Setup, synchronize

BATCHES = (1, 2, 4)
#: issue 22: per-frame time at batch 4 over batch 1, at most
TARGET_BATCH4_RATIO = 0.6
#: seconds one engine's sweep over the batch sizes is assumed to need at most
SWEEP_S = 40.0
#: TensorRT: the ViT-L export with a batch axis and its plan build come first
TENSORRT_S = 300.0
#: torch variants: name -> (options, note)
TORCH_VARIANTS = {
    "torch defaults": ({}, "gathered tokens: a batch pads each frame's kept tokens"),
    "torch key_mask + cuda_graph": ({"attention": "key_mask", "cuda_graph": True},
                                    "all depth tokens; one CUDA graph per batch size"),
}


def time_batches(setup: Setup, engine, batch: int, rounds: int) -> dict:
    """Warm up, then time complete_batch on `batch` frames cycling through the captures."""
    frames = [frame for _, frame in setup.frames]

    def call(index: int) -> float:
        chosen = [frames[(index * batch + i) % len(frames)] for i in range(batch)]
        synchronize(setup.device)
        t0 = time.perf_counter()
        results = engine.complete_batch(chosen)
        synchronize(setup.device)
        assert len(results) == batch
        return (time.perf_counter() - t0) * 1e3

    for index in range(max(1, setup.warmup)):
        call(index)
    walls = [call(index) for index in range(rounds)]
    return {"batch_ms": statistics.median(walls),
            "ms_per_frame": statistics.median(walls) / batch,
            "p95_ms_per_frame": float(np.percentile(walls, 95)) / batch}


def _sweep(setup: Setup, name: str, note: str, make_engine) -> list[dict]:
    """The batch sizes on one engine; rows carry per-frame ms and the ratio to batch 1."""
    if setup.budget.left() < SWEEP_S:
        return [{"engine": name, "batch": b, "status": "skipped",
                 "reason": "time budget (--budget-s) spent"} for b in BATCHES]
    engine = make_engine()
    rows = []
    try:
        # a batch of b is b frames: fewer rounds for larger batches keep the frame count even
        rounds = max(2, setup.n_frames // 2)
        for batch in BATCHES:
            row = {"engine": name, "batch": batch, "note": note, "describe": engine.describe()}
            row.update(time_batches(setup, engine, batch, max(2, rounds // batch)),
                       status="ok")
            rows.append(row)
    finally:
        engine.close()
    base = rows[0]["ms_per_frame"]
    for row in rows:
        row["vs_batch1"] = row["ms_per_frame"] / base
    return rows


def torch_rows(setup: Setup) -> list[dict]:
    rows = []
    for name, (options, note) in TORCH_VARIANTS.items():
        options = dict(options, resolution_level=9, precision="bf16")
        if setup.device.type != "cuda" and options.get("cuda_graph"):
            options["cuda_graph"] = False  # the dry run checks the rest of the variant
            note += " (dry run: no CUDA graph)"
        rows += _sweep(setup, name, note, lambda options=options: setup.engine(**options))
    return rows


def tensorrt_rows(setup: Setup) -> list[dict]:
    """ViT-L exported with a batch axis of 1..4, built bf16 with a profile over it, timed."""
    try:
        import tensorrt  # noqa: F401
    except (ImportError, OSError) as exc:
        return [{"engine": "tensorrt", "batch": b, "status": "skipped",
                 "reason": f"tensorrt does not import ({exc})"} for b in BATCHES]
    if setup.device.type != "cuda":
        return [{"engine": "tensorrt", "batch": b, "status": "skipped",
                 "reason": "needs CUDA"} for b in BATCHES]
    if setup.budget.left() < TENSORRT_S:
        return [{"engine": "tensorrt", "batch": b, "status": "skipped",
                 "reason": "time budget (--budget-s) too short for export and build"}
                for b in BATCHES]
    from lingbot_depth_ros.engines import create_engine
    from lingbot_depth_ros.model import load_checkpoint
    from lingbot_depth_ros.model.export import export_onnx

    height, width = setup.size
    onnx = export_onnx(load_checkpoint(setup.checkpoint), setup.tmp / "vitl_b4.onnx", height,
                       width, resolution_level=9, max_batch=max(BATCHES))
    return _sweep(setup, "tensorrt bf16", "profile over batches 1..4, tuned at 4",
                  lambda: create_engine("tensorrt", onnx=str(onnx), precision="bf16",
                                        cache_dir=str(setup.tmp / "trt")))


def batch_section(setup: Setup) -> dict:
    """torch's rows, then TensorRT's; a TensorRT failure (export, build or run) keeps the
    torch figures and marks the section failed with its error."""
    rows = torch_rows(setup)
    try:
        rows += tensorrt_rows(setup)
    except Exception as exc:  # report the torch figures whatever broke TensorRT
        error = f"tensorrt: {type(exc).__name__}: {exc}"
        rows.append({"engine": "tensorrt", "batch": None, "status": "failed", "error": error})
        return {"status": "failed", "error": error, "rows": rows}
    return {"status": "ok", "rows": rows}


def batch_target(rows: list[dict]) -> dict:
    """Batch 4 per frame against batch 1, per engine (None where not measured)."""
    ratios = {row["engine"]: row.get("vs_batch1") for row in rows
              if row["batch"] == max(BATCHES) and row.get("status") == "ok"}
    best = min(ratios.values()) if ratios else None
    return {"batch4_over_batch1": ratios or None,
            "batch4_met": None if best is None else best <= TARGET_BATCH4_RATIO}
