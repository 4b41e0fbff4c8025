"""TensorRT and batches: max_batch in the graph's metadata, the plan key and the cache slot
(pure Python, always run), and a batched plan against the same plan frame by frame (only
where tensorrt and a CUDA GPU are present)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.neural_common import frame_to_model_inputs
from lingbot_depth_ros.engines.trt_cache import (RuntimeIdentity, cached_plan_path, plan_key,
                                                 read_onnx_info, read_sidecar, sidecar_path,
                                                 stale_reasons, write_sidecar)

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAVE_CUDA = torch.cuda.is_available()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HERE = RuntimeIdentity(tensorrt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3 (sm_90)")
METADATA = dict(height=480, width=640, rows=30, cols=40, mode="completion",
                checkpoint_sha256="ab" * 32)
#: a TensorRT fp32 batch (TF32 off) against the same plan one frame at a time: only the
#: kernels' summation order at another batch size differs
TRT_DEPTH_RTOL, TRT_PROB_ATOL = 1e-4, 1e-4


def write_onnx(path: Path, **metadata) -> Path:
    """A minimal valid ONNX file carrying `metadata` as lingbot.* props."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph)
    helper.set_model_props(model, {f"lingbot.{k}": str(v) for k, v in metadata.items()})
    onnx.save(model, str(path))
    return path


def test_max_batch_is_read_keyed_and_slotted(tmp_path):
    single = write_onnx(tmp_path / "model.onnx", **METADATA)
    batched = write_onnx(tmp_path / "rig.onnx", **METADATA, max_batch=3)
    info = read_onnx_info(batched)
    assert info.max_batch == 3 and read_onnx_info(single).max_batch == 1
    assert plan_key(info, "fp16", HERE).max_batch == 3
    assert cached_plan_path(tmp_path, info, "fp16").name == "rig_640x480_b3_fp16.engine"
    assert cached_plan_path(tmp_path, read_onnx_info(single), "fp16").name == \
        "model_640x480_fp16.engine"
    bad = write_onnx(tmp_path / "bad.onnx", **METADATA, max_batch=0)
    with pytest.raises(ModelFileError, match="max_batch is 0, not positive"):
        read_onnx_info(bad)


def test_a_sidecar_from_before_batches_reads_as_batch_1(tmp_path):
    info = read_onnx_info(write_onnx(tmp_path / "model.onnx", **METADATA))
    key = plan_key(info, "fp16", HERE)
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"plan bytes")
    write_sidecar(plan, key)
    old = {k: v for k, v in key.to_dict().items() if k != "max_batch"}
    sidecar_path(plan).write_text(json.dumps(old))
    assert read_sidecar(plan) == key and key.max_batch == 1
    reasons = stale_reasons(plan, dataclasses.replace(key, max_batch=3))
    assert reasons == ["max_batch: 1 (built) != 3 (wanted)"]


needs_gpu = pytest.mark.skipif(
    not (HAVE_TENSORRT and HAVE_CUDA),
    reason="needs the tensorrt package and a CUDA GPU "
           f"(tensorrt {'found' if HAVE_TENSORRT else 'not installed'}, "
           f"CUDA {'available' if HAVE_CUDA else 'not available'})")


@pytest.fixture(scope="module")
def batched_export(tmp_path_factory):
    from lingbot_depth_ros.model import build_model, tiny_config
    from lingbot_depth_ros.model.export import export_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("trt_batch") / "tiny_b3.onnx"
    return export_onnx(build_model(tiny_config()), path, 480, 640, num_tokens=300, max_batch=3)


@needs_gpu
@pytest.mark.numerics
def test_batched_plan_gives_each_frame_its_single_frame_depth(batched_export, tmp_path):
    """One plan with a profile over batches 1..3: frames with different holes in batches of
    1 to 4 (4: a run of 3 and a run of 1) against the same plan one frame at a time."""
    from lingbot_depth_ros.core.captures import load_capture
    from tiny_models import assert_same_prediction

    engine = create_engine("tensorrt", onnx=str(batched_export), precision="fp32",
                           cache_dir=str(tmp_path), refine_measured=True)
    assert engine.max_batch == 3 and engine.key.max_batch == 3
    assert engine.plan_path.name.endswith("_b3_fp32.engine")
    frames = [load_capture(EXAMPLES / name) for name in ("0", "1", "2", "3")]
    frames[1].depth[:, :300] = np.nan  # fewer valid depth tokens than the others
    plain = create_engine("onnxruntime", onnx=str(batched_export), providers="cpu",
                          fuse_attention=False)
    probabilities = []
    for frame in frames:
        rgb, depth = frame_to_model_inputs(frame)
        probabilities.append(plain.session.run(["mask"], {"rgb": rgb, "depth": depth})[0])
    singles = [engine.complete(frame).depth for frame in frames]
    for size in (1, 2, 3, 4):
        batch = engine.complete_batch(frames[:size])
        assert len(batch) == size
        for got, want, prob in zip(batch, singles, probabilities):
            assert_same_prediction(got.depth, want, prob, rtol=TRT_DEPTH_RTOL,
                                   prob_atol=TRT_PROB_ATOL)
