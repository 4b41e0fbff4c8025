"""The network's semantics: token grid, depth-token masking paths, modes, reference quirks."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.model import (build_model, depth_to_points, tiny_config, token_grid,
                                     tokens_for_level)
from lingbot_depth_ros.model.convstack import (RESAMPLERS, ConvStack, norm_layer,
                                               staged_group_norm)
from lingbot_depth_ros.model.network import depth_patch_validity, remap_depth_input, view_plane_uv
from lingbot_depth_ros.model.vit import interpolate_pos_embed
from tiny_models import CAPTURES, assert_close, capture, frame_tensors, tiny_model

TOKENS = 600  # 21x28 patches at 640x480: fine enough for real holes, cheap on a CPU
#: dropped vs key-masked tokens, a batch vs one sample: other kernels, other summation orders;
#: tolerances on depth (relative) and mask probability (absolute)
DEPTH_RTOL, PROB_ATOL = 1e-5, 1e-6


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def test_token_budget_and_grid_follow_the_formula():
    assert [tokens_for_level(level) for level in (0, 4, 9)] == [1200, 2266, 3600]
    assert token_grid(480, 640, 1200) == (30, 40)
    assert token_grid(480, 640, 3600) == (52, 69)  # round(sqrt(3600 * 3/4)), round(sqrt(3600 * 4/3))
    assert token_grid(640, 480, 3600) == (69, 52)
    with pytest.raises(ValueError):
        tokens_for_level(10)


def test_resolution_level_sets_the_grid_the_model_uses():
    config = tiny_config()
    config["num_tokens_range"] = [40, 400]  # keep the forward passes small
    model = build_model(config)
    seen = []
    model.encoder.backbone.patch_embed.register_forward_hook(
        lambda module, args, out: seen.append(tuple(args[0].shape[-2:])))
    image, depth = torch.rand(1, 3, 120, 160), torch.full((1, 120, 160), 2.0)
    with torch.no_grad():
        for level in (0, 9):
            model(image, depth, resolution_level=level)
        model(image, depth, num_tokens=100)  # an explicit budget overrides the level
    # level 0: 40 tokens -> round(sqrt(30)) x round(sqrt(53.3)) = 5 x 7; level 9: 400 -> 17 x 23
    assert seen == [(14 * 5, 14 * 7), (14 * 17, 14 * 23), (14 * 9, 14 * 12)]


@pytest.mark.numerics
@pytest.mark.parametrize("name", CAPTURES)
def test_dropping_and_key_masking_depth_tokens_agree_on_real_captures(model, name):
    image, depth = frame_tensors(capture(name))
    with torch.no_grad():
        dropped = model(image, depth, num_tokens=TOKENS, masking="drop")
        masked = model(image, depth, num_tokens=TOKENS, masking="key_mask")
    assert_close(masked["depth"], dropped["depth"], rtol=DEPTH_RTOL)
    assert_close(masked["mask"], dropped["mask"], rtol=0, atol=PROB_ATOL)


def test_real_capture_has_depth_tokens_to_drop(model):
    """Makes the agreement test above meaningful: capture 3 has patches with no valid pixel."""
    image, depth = frame_tensors(capture("3"))
    rows, cols = model.grid(480, 640, num_tokens=TOKENS)
    _, remapped = model.preprocess(image, depth, rows, cols)
    invalid = int((~depth_patch_validity(remapped, rows, cols)).sum())
    assert 20 < invalid < rows * cols // 2


@pytest.mark.numerics
def test_batched_drop_path_keeps_each_samples_own_tokens(model):
    image = torch.rand(2, 3, 112, 140)
    depth = torch.full((2, 112, 140), 1.5)
    depth[0, :, :70] = float("nan")  # sample 0: left half has no depth
    depth[1, :56] = 0.0  # sample 1: top half has no depth
    with torch.no_grad():
        batched = model(image, depth, num_tokens=80, masking="drop")
        single = model(image[1:], depth[1:], num_tokens=80, masking="drop")
        masked = model(image, depth, num_tokens=80, masking="key_mask")
    assert_close(batched["depth"][1:], single["depth"], rtol=DEPTH_RTOL)
    assert_close(masked["depth"], batched["depth"], rtol=DEPTH_RTOL)


def test_monocular_ignores_depth_and_differs_from_completion(model):
    image, depth = frame_tensors(capture("3"))
    with torch.no_grad():
        mono = model(image, depth, num_tokens=TOKENS, mode="monocular")["depth"]
        mono_other = model(image, depth * 2 + 1, num_tokens=TOKENS, mode="monocular")["depth"]
        completion = model(image, depth, num_tokens=TOKENS, mode="completion")["depth"]
    assert torch.equal(mono, mono_other)
    assert torch.max(torch.abs(completion - mono) / mono) > 1e-3


def test_exactly_one_metre_counts_as_missing_for_token_masking():
    depth = torch.full((1, 1, 28, 42), float("nan"))
    depth[..., :14, :14] = 1.0  # log(1) = 0: the reference treats the patch as empty
    depth[..., :14, 14:28] = 1.5
    depth[..., 14:, 30] = 2.0  # one valid pixel is enough
    depth[..., 14:, 14:28] = 0.005  # below 1 cm: no measurement
    valid = depth_patch_validity(remap_depth_input(depth, "log"), 2, 3)
    assert valid.tolist() == [[False, True, False, False, False, True]]
    linear = depth_patch_validity(remap_depth_input(depth, "linear"), 2, 3)
    assert linear.tolist() == [[True, True, False, False, False, True]]


def _cubic_weight(d: float, a: float = -0.75) -> float:
    d = abs(d)
    if d <= 1:
        return (a + 2) * d ** 3 - (a + 3) * d ** 2 + 1
    return a * d ** 3 - 5 * a * d ** 2 + 8 * a * d - 4 * a if d < 2 else 0.0


def _bicubic_1d(values: list[float], x: float) -> float:
    """Keys cubic convolution (a = -0.75, edge-clamped) of `values` at source position x."""
    base = math.floor(x)
    return sum(_cubic_weight(x - k) * values[min(max(k, 0), len(values) - 1)]
               for k in range(base - 1, base + 3))


def test_positional_grid_uses_the_offset_scale_factors():
    """Output row i samples source row (i + 0.5) * 37 / (rows + 0.1) - 0.5 (DINOv2's
    offset scale factor), not the plain size-based position."""
    rows, cols = 52, 69
    ramp = [float(r * r % 11) for r in range(37)]  # uneven, so positions matter
    grid = torch.tensor(ramp)[:, None].expand(37, 37).reshape(1, 37 * 37, 1)
    out = interpolate_pos_embed(grid, rows, cols).reshape(rows, cols)[:, 10]
    with_offset = [_bicubic_1d(ramp, (i + 0.5) * 37 / (rows + 0.1) - 0.5) for i in range(rows)]
    size_based = [_bicubic_1d(ramp, (i + 0.5) * 37 / rows - 0.5) for i in range(rows)]
    assert out.tolist() == pytest.approx(with_offset, abs=1e-4)
    assert out.tolist() != pytest.approx(size_based, abs=1e-2)
    assert torch.equal(interpolate_pos_embed(grid, 37, 37), grid)


def test_view_plane_uv_spans_the_normalised_view_plane():
    uv = view_plane_uv(3, 4, aspect=4 / 3)
    sx, sy = (4 / 3) / math.sqrt(1 + 16 / 9), 1 / math.sqrt(1 + 16 / 9)
    assert uv.shape == (1, 2, 3, 4)
    assert uv[0, 0, 0, 0].item() == pytest.approx(-sx * 3 / 4)
    assert uv[0, 0, 2, 3].item() == pytest.approx(sx * 3 / 4)
    assert uv[0, 1, 0, 1].item() == pytest.approx(-sy * 2 / 3)
    assert uv[0, 1, 1, 2].item() == pytest.approx(0.0, abs=1e-7)


def test_points_back_project_with_pixel_intrinsics(model):
    K = torch.tensor([[100.0, 0, 20], [0, 110.0, 10], [0, 0, 1]])
    depth = torch.full((1, 30, 40), 2.0)
    points = depth_to_points(depth, K)
    assert points[0, 10, 20].tolist() == [0.0, 0.0, 2.0]
    assert points[0, 10, 30].tolist() == pytest.approx([0.2, 0.0, 2.0])
    assert points[0, 21, 20].tolist() == pytest.approx([0.0, 0.2, 2.0])
    with torch.no_grad():
        out = model(torch.rand(1, 3, 56, 70), torch.full((1, 56, 70), 2.0), num_tokens=20, K=K)
    assert torch.equal(out["points"][..., 2], out["depth"])


@pytest.mark.parametrize("kind", RESAMPLERS)
def test_convstack_resamplers_double_the_size(kind):
    stack = ConvStack(dim_in=[6, 2], dim_res_blocks=[64, 32], dim_out=[None, 1], resamplers=kind,
                      res_block_hidden_norm="group_norm", num_res_blocks=2)
    out = stack([torch.rand(1, 6, 5, 7), torch.rand(1, 2, 10, 14)])
    assert [tuple(o.shape) for o in out] == [(1, 64, 5, 7), (1, 1, 10, 14)]
    names = set(stack.state_dict())
    assert {"input_blocks.0.weight", "res_blocks.1.1.layers.5.weight",
            "output_blocks.1.bias"} <= names


@pytest.mark.parametrize("change, message", [
    (lambda c: c["encoder"].update(dim_out=32), "dim_out"),
    (lambda c: c["encoder"].update(backbone="dinov3_vit"), "encoder.backbone is 'dinov3_vit'"),
    (lambda c: c["encoder"].update(img_depth_fuse_mode="add"), "img_depth_fuse_mode"),
    (lambda c: c["encoder"].update(intermediate_layers=[0, 7]), "intermediate_layers"),
    (lambda c: c["neck"].update(res_block_in_norm="group_norm"), "group_norm"),
    (lambda c: c["neck"].update(resamplers="pixel_unshuffle"), "resampler"),
    (lambda c: c.pop("depth_head"), "depth_head"),
])
def test_unsupported_configs_are_refused_with_the_reason(change, message):
    config = tiny_config()
    change(config)
    with pytest.raises(ModelFileError, match=message):
        build_model(config)


def test_named_backbone_builds_its_published_size():
    config = tiny_config()
    del config["encoder"]["backbone_kwargs"]  # plain 'dinov2_vits14'
    config["encoder"]["dim_out"] = 384
    config["neck"]["dim_in"][0] = 386
    state = build_model(config).state_dict()
    assert state["encoder.backbone.pos_embed"].shape == (1, 1 + 37 * 37, 384)
    assert state["encoder.backbone.blocks.11.mlp.fc1.weight"].shape == (4 * 384, 384)
    assert "encoder.backbone.blocks.12.norm1.weight" not in state


def test_remap_treats_nan_inf_and_tiny_depth_as_missing():
    depth = torch.tensor([[np.nan, np.inf, -1.0, 0.005, 0.5, 2.0]])
    assert remap_depth_input(depth, "log")[0].tolist() == pytest.approx(
        [0, 0, 0, 0, math.log(0.5), math.log(2.0)])
    assert remap_depth_input(depth, "linear")[0].tolist() == [0, 0, 0, 0, 0.5, 2.0]


@pytest.mark.numerics
@pytest.mark.parametrize("kind, channels", [("layer_norm", 8), ("group_norm", 64),
                                            ("instance_norm", 6)])
def test_staged_norm_statistics_give_the_norms_numbers(kind, channels):
    """The export's staged GroupNorm (means of row means): the float64 norm's numbers, and
    instance_norm keeps InstanceNorm2d's numbers and empty state dict."""
    torch.manual_seed(0)
    x = torch.randn(2, channels, 37, 53) * 0.5 + 3.0  # an offset, as after a ReLU
    norm = norm_layer(kind, channels)
    if norm.affine:
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.normal_()
    weight = None if norm.weight is None else norm.weight.double()
    bias = None if norm.bias is None else norm.bias.double()
    exact = F.group_norm(x.double(), norm.num_groups, weight, bias, norm.eps)
    with torch.no_grad():
        staged = staged_group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)
        plain = norm(x)
    # float32 normalised values of order 1 to 4: a few units in the last place
    assert_close(staged, exact, rtol=0, atol=2e-6)
    assert_close(plain, exact, rtol=0, atol=2e-6)
    if kind == "instance_norm":
        assert norm.state_dict() == {} == nn.InstanceNorm2d(channels).state_dict()
        assert_close(nn.InstanceNorm2d(channels)(x), exact, rtol=0, atol=2e-6)
