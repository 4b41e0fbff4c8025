"""Static-shape ONNX export (through the CLI) and the onnxruntime engine, on real captures."""

import hashlib

import cv2
import numpy as np
import onnx
import pytest
import torch

from lingbot_depth_ros.cli import main as cli_main
from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.core.frame import RGBDFrame, SourceMask
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.neural_common import frame_to_model_inputs, prediction_from_outputs
from lingbot_depth_ros.model import save_checkpoint
from lingbot_depth_ros.model.export import INPUT_NAMES, OUTPUT_NAMES, StaticPipeline, export_onnx
from tiny_models import (CAPTURES, ORT_THREADS, assert_close, capture, frame_tensors, ort_session,
                         tiny_model)

TOKENS = 600  # 21x28 patches
#: ONNX Runtime's kernels against PyTorch's: depth (relative), mask probability (absolute)
ORT_DEPTH_RTOL, ORT_PROB_ATOL = 1e-4, 1e-5
#: the export wrapper's resizes (gathers of the interpolation taps) against F.interpolate
PIPELINE_DEPTH_RTOL, PIPELINE_PROB_ATOL = 1e-5, 1e-6
#: DINOv2 ViT-S/14's widths and blocks, four of them read out, and a decoder whose finest
#: level holds millions of values per norm group at resolution level 9 (a 52x69 grid)
VIT_S = dict(embed_dim=384, depth=12, num_heads=6, intermediate_layers=4,
             decoder_dims=(128, 64, 32, 16, 8))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    model = tiny_model()
    checkpoint = save_checkpoint(model, folder / "model.pt")
    onnx_path = folder / "model.onnx"
    assert cli_main(["export-onnx", "--checkpoint", str(checkpoint), "--height", "480",
                     "--width", "640", "--num-tokens", str(TOKENS), "--out", str(onnx_path)]) == 0
    session = ort_session(onnx_path)
    return model, checkpoint, onnx_path, session


def test_graph_is_static_with_the_agreed_signature_and_metadata(exported):
    _, checkpoint, onnx_path, _ = exported
    graph = onnx.load(str(onnx_path))
    onnx.checker.check_model(graph)
    assert max(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17

    def signature(values):
        return {v.name: (v.type.tensor_type.elem_type,
                         [d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values}
    assert signature(graph.graph.input) == {
        INPUT_NAMES[0]: (onnx.TensorProto.UINT8, [1, 480, 640, 3]),
        INPUT_NAMES[1]: (onnx.TensorProto.FLOAT, [1, 480, 640])}
    assert signature(graph.graph.output) == {name: (onnx.TensorProto.FLOAT, [1, 480, 640])
                                             for name in OUTPUT_NAMES}
    meta = {p.key: p.value for p in graph.metadata_props}
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()
    assert meta == {"lingbot.height": "480", "lingbot.width": "640", "lingbot.rows": "21",
                    "lingbot.cols": "28", "lingbot.mode": "completion",
                    "lingbot.checkpoint_sha256": digest}


@pytest.mark.numerics
@pytest.mark.parametrize("name", CAPTURES)
def test_onnxruntime_matches_torch_on_real_captures(exported, name):
    model, _, _, session = exported
    frame = capture(name)
    rgb, depth = frame_to_model_inputs(frame)
    depth_ort, mask_ort = session.run(list(OUTPUT_NAMES), {"rgb": rgb, "depth": depth})
    with torch.no_grad():
        ref = model(*frame_tensors(frame), num_tokens=TOKENS, masking="drop")
    assert_close(depth_ort, ref["depth"], rtol=ORT_DEPTH_RTOL)
    assert_close(mask_ort, ref["mask"], rtol=0, atol=ORT_PROB_ATOL)


@pytest.mark.numerics
@pytest.mark.numerics
def test_onnxruntime_matches_torch_at_level_9_with_a_vit_s_sized_model(tmp_path):
    """The realistic size: the decoder's norms then reduce over 832x1104 maps, where ONNX
    Runtime's InstanceNormalization drifted (docs/engines.md)."""
    model = tiny_model(**VIT_S)
    path = export_onnx(model, tmp_path / "vit_s.onnx", 480, 640, resolution_level=9)
    assert model.grid(480, 640) == (52, 69)
    frame = capture("3")
    rgb, depth = frame_to_model_inputs(frame)
    depth_ort, mask_ort = ort_session(path).run(list(OUTPUT_NAMES), {"rgb": rgb, "depth": depth})
    with torch.no_grad():
        ref = model(*frame_tensors(frame), resolution_level=9, masking="drop")
    assert_close(depth_ort, ref["depth"], rtol=ORT_DEPTH_RTOL)
    assert_close(mask_ort, ref["mask"], rtol=0, atol=ORT_PROB_ATOL)


@pytest.mark.numerics
def test_graph_treats_nan_inf_and_zero_depth_alike(exported):
    session = exported[3]
    frame = capture("3")
    rgb, depth = frame_to_model_inputs(frame)
    holes = depth == 0
    with_nan, with_inf = depth.copy(), depth.copy()
    with_nan[holes] = np.nan
    with_inf[holes] = np.inf
    outputs = [session.run(None, {"rgb": rgb, "depth": d})[0] for d in (depth, with_nan, with_inf)]
    # the graph zeroes NaN and inf first: the same numbers after that, the same outputs
    assert np.array_equal(outputs[0], outputs[1]) and np.array_equal(outputs[0], outputs[2])


@pytest.mark.numerics
def test_static_pipeline_reproduces_monocular_mode(exported):
    """The export wrapper's own resizes and constant grids, in torch (no export needed)."""
    model = exported[0]
    frame = capture("1")
    rows, cols = model.grid(480, 640, num_tokens=TOKENS)
    pipeline = StaticPipeline(model, 480, 640, rows, cols, "monocular")
    rgb, depth = (torch.from_numpy(a) for a in frame_to_model_inputs(frame))
    with torch.no_grad():
        metres, prob = pipeline(rgb, depth)
        ref = model(*frame_tensors(frame), num_tokens=TOKENS, mode="monocular")
    assert_close(metres, ref["depth"], rtol=PIPELINE_DEPTH_RTOL)
    assert_close(prob, ref["mask"], rtol=0, atol=PIPELINE_PROB_ATOL)


def test_onnxruntime_engine_completes_and_keeps_measured_pixels(exported):
    frame = capture("3")
    engine = create_engine("onnxruntime", onnx=exported[2], providers="cpu", threads=ORT_THREADS)
    assert "640x480" in engine.describe()
    result = engine.complete(frame)
    measured = np.isfinite(frame.depth)
    assert np.array_equal(result.depth[measured], frame.depth[measured])
    filled = result.source == SourceMask.FILLED
    assert filled.any() and (~measured & ~filled).any()
    refined = create_engine("onnxruntime", onnx=exported[2], refine_measured=True).complete(frame)
    assert not np.array_equal(refined.depth[measured & (refined.source == SourceMask.FILLED)],
                              frame.depth[measured & (refined.source == SourceMask.FILLED)])


def test_onnxruntime_engine_completes_a_frame_of_another_size_through_the_graph_size(exported):
    engine = create_engine("onnxruntime", onnx=exported[2])
    full = capture("3")
    half = cv2.resize(full.depth, (320, 240), interpolation=cv2.INTER_NEAREST)
    small = RGBDFrame(rgb=cv2.resize(full.rgb, (320, 240), interpolation=cv2.INTER_AREA),
                      depth=half, K=full.K / 2 + np.diag([0, 0, 0.5]))
    result = engine.complete(small)
    assert result.depth.shape == (240, 320)
    measured = np.isfinite(half)
    assert np.array_equal(result.depth[measured], half[measured])
    filled = result.source == SourceMask.FILLED
    assert filled.any() and np.isfinite(result.depth[filled]).all()


def test_onnxruntime_engine_refuses_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        create_engine("onnxruntime", onnx=tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07 not a protobuf graph")
    with pytest.raises(ModelFileError, match="cannot load ONNX file"):
        create_engine("onnxruntime", onnx=garbage)


def test_prediction_drops_pixels_the_mask_head_rejects():
    depth = np.array([[[1.0, 2.0, np.inf, 4.0]]], np.float32)
    mask = np.array([[[0.9, 0.5, 0.9, 0.51]]], np.float32)
    out = prediction_from_outputs(depth, mask)
    assert out.shape == (1, 4) and out.dtype == np.float32
    assert np.array_equal(np.isnan(out), [[False, True, True, False]])
    assert np.isnan(prediction_from_outputs(depth, mask, mask_threshold=0.95)).all()
