"""The torch engine's speed options: same depth as the reference path, clear option errors.

Every path is held to a stated tolerance against the plain forward
(tiny_models.assert_same_prediction): even the engine's gathered tokens, the reference's own
operations, run on staged tensors of other strides, for which oneDNN may pick other kernels
(it does with ONEDNN_MAX_CPU_ISA=AVX2). CPU checks run everywhere; the CUDA-only paths
(pinned buffers, CUDA graphs, bf16 on the GPU) are tested where a CUDA device exists and
skipped, with that reason, elsewhere.
"""

import numpy as np
import pytest
import torch

from lingbot_depth_ros.core.errors import EngineOptionError
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.neural_common import prediction_from_outputs
from lingbot_depth_ros.engines.torch_engine import MAX_RUNNERS, resolve_attention
from lingbot_depth_ros.engines.torch_runner import FrameIO
from lingbot_depth_ros.model import save_checkpoint
from lingbot_depth_ros.model.vit import KEY_BIAS_ALIGNMENT, MASKED_KEY_BIAS, key_bias
from tiny_models import (CAPTURES, MAX_FLIP_SHARE, assert_close, assert_same_prediction, capture,
                         frame_tensors, tiny_model)

TOKENS = 300
CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="needs a CUDA device (none on this machine)")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory):
    return save_checkpoint(model, tmp_path_factory.mktemp("torch_options") / "tiny.pt")


#: kernels that sum in another order (key-masked attention, compiled or layout-dependent
#: kernels): depth (relative) and mask probability (absolute) tolerances against the
#: reference's dropped tokens
DEPTH_RTOL, PROB_ATOL = 1e-5, 1e-6


def reference(model, frame) -> tuple[np.ndarray, np.ndarray]:
    """The plain network forward (no plan, no staging): (the engine's prediction, the mask
    probability that decided its validity)."""
    image, depth = frame_tensors(frame)
    with torch.no_grad():
        out = model(image, depth, num_tokens=TOKENS, masking="drop")
    return prediction_from_outputs(out["depth"].numpy(), out["mask"].numpy()), out["mask"][0]


def engine_depth(checkpoint, frame, **options) -> np.ndarray:
    engine = create_engine("torch", checkpoint=checkpoint, device="cpu", num_tokens=TOKENS,
                           refine_measured=True, **options)
    return engine.complete(frame).depth


@pytest.mark.numerics
@pytest.mark.parametrize("name", CAPTURES)
def test_gathered_tokens_with_static_grid_equal_the_reference_path(model, checkpoint, name):
    frame = capture(name)
    got = engine_depth(checkpoint, frame)
    assert_same_prediction(got, *reference(model, frame), rtol=DEPTH_RTOL, prob_atol=PROB_ATOL)


@pytest.mark.numerics
@pytest.mark.parametrize("name", CAPTURES)
def test_aligned_key_mask_path_equals_the_reference_path(model, checkpoint, name):
    frame = capture(name)
    got = engine_depth(checkpoint, frame, attention="key_mask")
    assert_same_prediction(got, *reference(model, frame), rtol=DEPTH_RTOL, prob_atol=PROB_ATOL)


@pytest.mark.numerics
def test_without_static_grid_the_depth_is_the_same(model, checkpoint):
    frame = capture("3")
    got = engine_depth(checkpoint, frame, static_grid=False)
    assert_same_prediction(got, *reference(model, frame), rtol=DEPTH_RTOL, prob_atol=PROB_ATOL)


@pytest.mark.numerics
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_weights_stored_in_the_autocast_dtype_give_the_same_depth(checkpoint, precision):
    frame = capture("3")
    cast = create_engine("torch", checkpoint=checkpoint, device="cpu", precision=precision)
    assert cast.cast_weights and "cast_weights" in cast.describe()
    layer = cast.model.encoder.backbone.blocks[0]
    assert layer.attn.qkv.weight.dtype == getattr(torch, {"bf16": "bfloat16",
                                                          "fp16": "float16"}[precision])
    assert layer.norm1.weight.dtype == layer.ls1.gamma.dtype == torch.float32
    got = engine_depth(checkpoint, frame, precision=precision)
    want = engine_depth(checkpoint, frame, precision=precision, cast_weights=False)
    assert np.isfinite(got).sum() > 1000
    assert np.array_equal(got, want, equal_nan=True)  # autocast made the same casts


def test_aligned_key_bias_has_kernel_friendly_strides_and_the_same_values():
    attend = torch.rand(2, 1 + 2 * 35) > 0.3
    plain = key_bias(attend, torch.float32)
    aligned = key_bias(attend, torch.float32, aligned=True)
    assert aligned.shape == plain.shape == (2, 1, 1, 71)
    assert torch.equal(aligned, plain)
    assert aligned.stride(-1) == 1
    assert all(s % KEY_BIAS_ALIGNMENT == 0 for s in aligned.stride()[:-1])
    assert set(plain.unique().tolist()) == {0.0, MASKED_KEY_BIAS}


def test_grid_plan_holds_the_size_constants_and_refuses_another_size(model):
    plan = model.plan(480, 640, num_tokens=TOKENS)
    assert (plan.rows, plan.cols) == model.grid(480, 640, num_tokens=TOKENS)
    assert torch.equal(plan.patch_pos, model.encoder.backbone.grid_pos_embed(plan.rows, plan.cols))
    assert [tuple(uv.shape[-2:]) for uv in plan.uv] == [
        (plan.rows * 2 ** k, plan.cols * 2 ** k) for k in range(model.neck.levels)]
    image, depth = torch.rand(1, 3, 240, 320), torch.full((1, 240, 320), 2.0)
    with pytest.raises(ValueError, match="grid plan is for 640x480 frames, got 320x240"):
        model(image, depth, plan=plan)


def test_frame_io_stages_depth_and_colour_in_one_buffer():
    io = FrameIO(3, 5, outputs=2, device=torch.device("cpu"), pinned=False)
    rgb = np.arange(45, dtype=np.uint8).reshape(1, 3, 5, 3)
    depth = np.linspace(0.5, 4.0, 15, dtype=np.float32).reshape(1, 3, 5)
    io.upload(rgb, depth)
    assert torch.equal(io.rgb, torch.from_numpy(rgb))
    assert torch.equal(io.depth, torch.from_numpy(depth))
    assert io.device_in.data_ptr() == io.depth.data_ptr()  # one buffer: one copy moves both
    out = io.download(torch.stack([io.depth, io.depth * 2]))
    assert out.shape == (2, 1, 3, 5) and np.array_equal(out[1, 0], depth[0] * 2)


def test_frames_of_several_sizes_get_their_own_runner(checkpoint):
    engine = create_engine("torch", checkpoint=checkpoint, device="cpu", num_tokens=60)
    frame = capture("1")
    # MAX_RUNNERS + 1 distinct sizes, then the second again
    sizes = [(480, 640)] + [(240 - 14 * i, 320 - 14 * i) for i in range(MAX_RUNNERS)]
    sizes.append(sizes[1])
    for height, width in sizes:
        cropped = RGBDFrame(rgb=np.ascontiguousarray(frame.rgb[:height, :width]),
                            depth=np.ascontiguousarray(frame.depth[:height, :width]), K=frame.K)
        result = engine.complete(cropped)
        assert result.depth.shape == (height, width)
    # at most MAX_RUNNERS kept, the least recently used dropped; the last size is the newest
    assert len(engine._runners) == MAX_RUNNERS
    assert list(engine._runners)[-1] == (240, 320, 1) and (480, 640, 1) not in engine._runners


@pytest.mark.parametrize("options, message", [
    (dict(attention="flash"), "attention must be auto, gather or key_mask"),
    # booleans are read by the engine factory, which takes true/false/yes/no/on/off/1/0
    (dict(static_grid="maybe"), "static_grid='maybe': must be true or false"),
    (dict(compile=2), "compile=2: must be true or false"),
    (dict(pinned_io=True), "pinned_io needs a CUDA device"),
    (dict(cuda_graph=True, attention="key_mask"), "cuda_graph needs a CUDA device"),
    (dict(cuda_graph="sometimes"), "cuda_graph must be true or false"),
    (dict(cast_weights=True, precision="fp32"), "cast_weights needs precision bf16 or fp16"),
])
def test_bad_or_cuda_only_options_are_refused_on_the_cpu(checkpoint, options, message):
    with pytest.raises(EngineOptionError, match=message):
        create_engine("torch", checkpoint=checkpoint, device="cpu", **options)


def test_auto_options_resolve_by_device_and_shape():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")  # resolving needs no GPU
    assert resolve_attention("auto", "auto", False, "completion", cpu) == ("gather", False)
    assert resolve_attention("auto", "auto", False, "completion", cuda) == ("gather", False)
    assert resolve_attention("auto", "auto", False, "monocular", cuda) == ("gather", True)
    assert resolve_attention("key_mask", "auto", False, "completion", cuda) == ("key_mask", True)
    assert resolve_attention("auto", True, False, "completion", cuda) == ("key_mask", True)
    assert resolve_attention("key_mask", False, False, "completion", cuda) == ("key_mask", False)
    assert resolve_attention("auto", "auto", True, "completion", cpu) == ("key_mask", False)
    with pytest.raises(EngineOptionError, match="cuda_graph needs a static shape"):
        resolve_attention("gather", True, False, "completion", cuda)
    with pytest.raises(EngineOptionError, match="compile needs a static shape"):
        resolve_attention("gather", "auto", True, "completion", cpu)


def test_compiled_forward_gives_the_eager_depth(model, checkpoint):
    """torch.compile (inductor, here on the CPU) of the static key-masked forward."""
    frame = capture("3")
    got = engine_depth(checkpoint, frame, compile=True)  # auto attention -> key_mask
    assert_same_prediction(got, *reference(model, frame), rtol=DEPTH_RTOL, prob_atol=PROB_ATOL)


def test_defaults_on_the_cpu_are_described(checkpoint):
    engine = create_engine("torch", checkpoint=checkpoint, device="cpu", num_tokens=TOKENS)
    assert (engine.attention, engine.static_grid, engine.pinned_io, engine.cuda_graph,
            engine.compile, engine.cast_weights) == ("gather", True, False, False, False, False)
    assert "attention gather, static_grid" in engine.describe()


@needs_cuda
@pytest.mark.parametrize("mode", ["completion", "monocular"])
def test_cuda_graph_replays_give_the_eager_depth(checkpoint, mode):
    frames = [capture(name) for name in CAPTURES]
    common = dict(checkpoint=checkpoint, device="cuda", num_tokens=TOKENS, mode=mode,
                  precision="fp32", attention="key_mask")
    eager = create_engine("torch", cuda_graph=False, pinned_io=False, **common)
    graphed = create_engine("torch", cuda_graph=True, pinned_io=True, **common)
    for frame in frames + frames:  # the second round replays the captured graph
        want, got = eager.complete(frame).depth, graphed.complete(frame).depth
        # the same kernels, but cuBLAS may pick others under capture: the engines give no
        # mask probability, so only the share of pixels that flip is bounded
        both = np.isfinite(got) & np.isfinite(want)
        assert np.mean(np.isnan(got) != np.isnan(want)) <= MAX_FLIP_SHARE
        assert_close(got[both], want[both], rtol=DEPTH_RTOL)
    assert graphed.runner(480, 640).graph_failed is None


@needs_cuda
def test_bf16_on_the_gpu_stays_near_fp32(checkpoint):
    frame = capture("3")
    depths = {p: create_engine("torch", checkpoint=checkpoint, device="cuda", num_tokens=TOKENS,
                               precision=p, refine_measured=True).complete(frame).depth
              for p in ("fp32", "bf16")}
    both = np.isfinite(depths["fp32"]) & np.isfinite(depths["bf16"])
    assert np.median(np.abs(depths["bf16"] - depths["fp32"])[both] / depths["fp32"][both]) < 0.01
