"""Engines take batches: a batched call gives each frame what a single call gives, within the
stated tolerance, with frames of different hole patterns (so different counts of valid depth
tokens) in one batch. torch and ONNX Runtime run one network call per batch; guided and the
classical engines run a batch frame by frame (TensorRT: test_tensorrt_batches.py)."""


import numpy as np
import onnx
import pytest
import torch

from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.neural_common import frame_to_model_inputs
from lingbot_depth_ros.engines.ort_batch import fix_batch
from lingbot_depth_ros.engines.ort_cpu import prepare_cpu_graph
from lingbot_depth_ros.model import save_checkpoint
from lingbot_depth_ros.model.export import MAX_BATCH_KEY, OUTPUT_NAMES, export_onnx
from lingbot_depth_ros.model.network import depth_patch_validity
from log_capture import listening
from tiny_models import (ORT_THREADS, assert_close, assert_same_prediction, capture,
                         frame_tensors, ort_session, tiny_model)

TOKENS = 300
MAX_BATCH = 3
#: a batch against single frames, torch: the batch pads each frame's kept depth tokens to the
#: longest and masks the padding (exactly zero weight), so only the kernels' summation order
#: differs: depth (relative) and mask probability (absolute), as the key-mask path's test
TORCH_DEPTH_RTOL, TORCH_PROB_ATOL = 1e-5, 1e-6
#: ONNX Runtime: batch 1 drops the masked tokens, batches of more keep them as masked keys of
#: the fused attention (test_ort_fusion's tolerance for fused against plain)
ORT_DEPTH_RTOL, ORT_PROB_ATOL = 1e-5, 1e-5


def _holed(frame, rows: slice, cols: slice) -> RGBDFrame:
    depth = frame.depth.copy()
    depth[rows, cols] = np.nan
    return RGBDFrame(rgb=frame.rgb, depth=depth, K=frame.K)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def frames(model):
    """Three 640x480 frames whose valid depth tokens differ in number and place."""
    frames = [capture("0"), _holed(capture("1"), slice(None), slice(0, 300)),
              _holed(capture("2"), slice(200, 480), slice(None))]
    rows, cols = model.grid(480, 640, num_tokens=TOKENS)
    counts = set()
    for frame in frames:
        image, depth = frame_tensors(frame)
        _, remapped = model.preprocess(image, depth, rows, cols)
        counts.add(int(depth_patch_validity(remapped, rows, cols).sum()))
    assert len(counts) == len(frames)  # the batch needs padding: a real test of it
    return frames


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_checkpoint(model, tmp_path_factory.mktemp("batches") / "tiny.pt")


@pytest.fixture(scope="module")
def batched_onnx(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("batches") / "batched.onnx"
    return export_onnx(model, path, 480, 640, num_tokens=TOKENS, max_batch=MAX_BATCH)


def _reference_probability(model, frame) -> torch.Tensor:
    image, depth = frame_tensors(frame)
    with torch.no_grad():
        return model(image, depth, num_tokens=TOKENS, masking="drop")["mask"][0]


def _check_batches(engine, frames, probabilities, rtol, prob_atol) -> None:
    singles = [engine.complete(frame) for frame in frames]
    for size in (1, 2, 3):
        batch = engine.complete_batch(frames[:size])
        assert len(batch) == size
        for got, want, prob in zip(batch, singles, probabilities):
            assert_same_prediction(got.depth, want.depth, prob, rtol=rtol, prob_atol=prob_atol)
            assert got.engine == engine.name


@pytest.mark.numerics
@pytest.mark.parametrize("attention", ["gather", "key_mask"])
def test_torch_batches_give_each_frame_its_single_frame_depth(model, checkpoint, frames,
                                                              attention):
    engine = create_engine("torch", checkpoint=checkpoint, device="cpu", num_tokens=TOKENS,
                           refine_measured=True, attention=attention)
    probabilities = [_reference_probability(model, f) for f in frames]
    _check_batches(engine, frames, probabilities, TORCH_DEPTH_RTOL, TORCH_PROB_ATOL)
    assert (480, 640, 3) in engine._runners  # one runner ran the three frames together


def test_torch_batch_of_mixed_sizes_runs_frame_by_frame(checkpoint, frames):
    engine = create_engine("torch", checkpoint=checkpoint, device="cpu", num_tokens=60)
    small = RGBDFrame(rgb=np.ascontiguousarray(frames[0].rgb[:240, :320]),
                      depth=np.ascontiguousarray(frames[0].depth[:240, :320]), K=frames[0].K)
    assert engine.batch_key(small) != engine.batch_key(frames[0])
    results = engine.complete_batch([frames[0], small])
    assert [r.depth.shape for r in results] == [(480, 640), (240, 320)]
    assert all(key[2] == 1 for key in engine._runners)


def test_batched_export_has_a_dynamic_batch_axis_and_states_its_max(batched_onnx):
    graph = onnx.load(str(batched_onnx))
    onnx.checker.check_model(graph)
    for value in (*graph.graph.input, *graph.graph.output):
        dims = value.type.tensor_type.shape.dim
        assert dims[0].dim_param and [d.dim_value for d in dims[1:3]] == [480, 640]
    assert {p.key: p.value for p in graph.metadata_props}[MAX_BATCH_KEY] == str(MAX_BATCH)


def test_cpu_rewrites_drop_tokens_at_batch_1_and_keep_them_masked_in_batches(batched_onnx):
    one = prepare_cpu_graph(batched_onnx, 1)
    assert one.fused == 3 and "masked tokens dropped" in one.note
    three = prepare_cpu_graph(batched_onnx, 3)
    assert three.fused == 3 and "masked tokens dropped" not in three.note
    assert "masked tokens kept: batches of more than one frame" in three.note


def test_fixing_the_batch_of_a_static_graph_to_another_size_is_refused(tmp_path, model):
    static = onnx.load(str(export_onnx(model, tmp_path / "one.onnx", 96, 128, num_tokens=48)))
    with pytest.raises(ValueError, match="static batch of 1, not 2"):
        fix_batch(static, 2)


@pytest.mark.numerics
def test_onnxruntime_batches_give_each_frame_its_single_frame_depth(batched_onnx, frames,
                                                                    caplog):
    with listening(caplog, "lingbot_depth_ros.engines.onnx_engine"):
        engine = create_engine("onnxruntime", onnx=batched_onnx, providers="cpu",
                               refine_measured=True, threads=ORT_THREADS)
        plain = ort_session(batched_onnx)
        probabilities = []
        for frame in frames:
            rgb, depth = frame_to_model_inputs(frame)
            probabilities.append(plain.run([OUTPUT_NAMES[1]], {"rgb": rgb, "depth": depth})[0])
        _check_batches(engine, frames, probabilities, ORT_DEPTH_RTOL, ORT_PROB_ATOL)
    assert engine.max_batch == MAX_BATCH and "batches of 1..3" in engine.describe()
    assert "batch 3:" in caplog.text and "masked tokens kept" in caplog.text


def test_onnxruntime_splits_a_batch_larger_than_the_graph_takes(batched_onnx, frames):
    engine = create_engine("onnxruntime", onnx=batched_onnx, providers="cpu",
                           threads=ORT_THREADS)
    results = engine.complete_batch([*frames, frames[0]])
    assert len(results) == 4 and set(engine._sessions) == {1, 3}
    assert np.array_equal(results[3].source, results[0].source)
    # timings: each frame carries its share of the batch's stages, the merge its own
    assert all(set(r.timings_ms) == {"preprocess", "inference", "postprocess", "merge"}
               for r in results)


@pytest.mark.numerics
def test_onnxruntime_batch_1_of_a_batched_export_equals_the_fixed_export(model, batched_onnx,
                                                                          frames, tmp_path):
    fixed = export_onnx(model, tmp_path / "fixed.onnx", 480, 640, num_tokens=TOKENS)
    engines = [create_engine("onnxruntime", onnx=path, providers="cpu", refine_measured=True,
                             threads=ORT_THREADS) for path in (fixed, batched_onnx)]
    assert engines[0].max_batch == 1
    for frame in frames:
        want, got = (e.complete(frame).depth for e in engines)
        assert_close(got, want, rtol=ORT_DEPTH_RTOL)


def test_prepare_batch_makes_the_session_or_runner_beforehand(batched_onnx, checkpoint):
    engine = create_engine("onnxruntime", onnx=batched_onnx, providers="cpu",
                           threads=ORT_THREADS)
    engine.prepare_batch(5)  # more than the graph takes: its largest runs
    engine.prepare_batch(2)
    assert set(engine._sessions) == {1, 2, 3}
    torch_engine = create_engine("torch", checkpoint=checkpoint, device="cpu", num_tokens=60)
    torch_engine.prepare_batch(2, 480, 640)
    assert set(torch_engine._runners) == {(480, 640, 2)}
    create_engine("guided").prepare_batch(3)  # needs nothing


def test_onnxruntime_fixed_graph_runs_a_batch_frame_by_frame(model, frames, tmp_path):
    fixed = export_onnx(model, tmp_path / "fixed.onnx", 240, 320, num_tokens=60)
    engine = create_engine("onnxruntime", onnx=fixed, providers="cpu", threads=ORT_THREADS)
    assert engine._predict_batch(frames, {}) is None
    results = engine.complete_batch(frames)
    assert [r.depth.shape for r in results] == [(480, 640)] * 3
    assert set(engine._sessions) == {1}


@pytest.mark.numerics
def test_onnxruntime_batches_of_a_monocular_graph(model, frames, tmp_path):
    path = export_onnx(model, tmp_path / "mono.onnx", 240, 320, num_tokens=60, mode="monocular",
                       max_batch=2)
    engine = create_engine("onnxruntime", onnx=path, providers="cpu", refine_measured=True,
                           mask_threshold=0.0, threads=ORT_THREADS)
    batch = engine.complete_batch(frames[:2])  # 640x480 frames through the 320x240 graph
    for got, frame in zip(batch, frames):
        assert_close(got.depth, engine.complete(frame).depth, rtol=ORT_DEPTH_RTOL)
    assert engine.fused_attention == 3


def test_a_dynamic_graph_without_its_max_batch_is_refused(batched_onnx, tmp_path):
    graph = onnx.load(str(batched_onnx))
    del graph.metadata_props[:]
    stripped = tmp_path / "stripped.onnx"
    onnx.save(graph, str(stripped))
    with pytest.raises(ModelFileError, match="no integer lingbot.max_batch"):
        create_engine("onnxruntime", onnx=stripped, providers="cpu", fuse_attention=False)


@pytest.mark.parametrize("name", ["guided", "nearest", "telea"])
def test_classical_engines_run_a_batch_frame_by_frame(name, frames):
    engine = create_engine(name)
    assert engine._predict_batch(list(frames), {}) is None
    for got, frame in zip(engine.complete_batch(frames), frames):
        want = engine.complete(frame)
        assert np.array_equal(got.depth, want.depth, equal_nan=True)
        assert np.array_equal(got.source, want.source)
