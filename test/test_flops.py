"""The analytic FLOP count against torch's own counter on the real network."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from lingbot_depth_ros.model import build_model, tiny_config

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from bench_flops import table, vitl_config  # noqa: E402
from flops import conv_stack_flops, count_flops  # noqa: E402


def measured_flops(model, height: int, width: int, **forward) -> int:
    """torch.utils.flop_counter's count of one forward pass.

    The math attention backend is forced because the counter has no formula for the fused
    CPU attention kernel (it would silently count attention as zero).
    """
    image = torch.rand(1, 3, height, width)
    depth = torch.rand(1, height, width) * 3 + 0.5
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(image, depth, **forward)
    return counter.get_total_flops()


@pytest.mark.parametrize("mode, masking", [("completion", "key_mask"), ("monocular", "drop")])
def test_tiny_model_matches_flop_counter(mode, masking):
    config = tiny_config()
    model = build_model(config)
    expected = count_flops(config, 96, 128, num_tokens=48, mode=mode)
    assert measured_flops(model, 96, 128, num_tokens=48, mode=mode, masking=masking) == expected.total


def test_dropping_depth_tokens_matches_flop_counter():
    """Token-drop path: depth pixels only in the left half, so only some tokens are kept."""
    config = tiny_config(intermediate_layers=3)
    model = build_model(config)
    image = torch.rand(1, 3, 96, 128)
    depth = torch.full((1, 96, 128), float("nan"))
    depth[:, :, :64] = 2.0
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(image, depth, num_tokens=48, masking="drop")
    grid = count_flops(config, 96, 128, num_tokens=48)
    assert (grid.rows, grid.cols) == (6, 8)
    kept = grid.rows * 4  # the valid left half covers 4 of the 8 token columns
    expected = count_flops(config, 96, 128, num_tokens=48, depth_tokens=kept)
    assert expected.sequence == 1 + 48 + kept
    assert counter.get_total_flops() == expected.total


def test_vitl_layout_matches_flop_counter_on_meta_tensors():
    """The benchmark's ViT-L config builds in our model and its count is exact at 640x480."""
    config = vitl_config()
    with torch.device("meta"):  # shapes only: no 300M-parameter allocation, no compute
        model = build_model(config)
        measured = measured_flops(model, 480, 640, resolution_level=0, masking="key_mask")
    report = count_flops(config, 480, 640, resolution_level=0)
    assert (report.rows, report.cols) == (30, 40)
    assert measured == report.total


def test_conv_stack_by_hand():
    """One level of 8 channels with one residual block, then a 1x1 output conv, at 2x3."""
    stack = {"dim_in": [4], "dim_res_blocks": [8], "dim_out": [1], "resamplers": [],
             "num_res_blocks": 1}
    hw = 2 * 3
    by_hand = 2 * hw * 4 * 8 + 2 * (2 * hw * 8 * 8 * 9) + 2 * hw * 8 * 1
    assert conv_stack_flops(stack, 2, 3) == by_hand


def test_vitl_table_properties():
    rows = table(480, 640, peak_tflops=800.0)
    assert [r["level"] for r in rows] == list(range(10))
    assert (rows[0]["rows"], rows[0]["cols"]) == (30, 40)
    assert (rows[-1]["rows"], rows[-1]["cols"]) == (52, 69)  # 3600-token budget at 4:3
    gflops = [r["gflops"] for r in rows]
    assert gflops == sorted(gflops)
    # Attention is quadratic in the 1 + 2N sequence: level 9 costs far more than 3x level 0.
    assert gflops[-1] / gflops[0] > 4
    for r in rows:
        assert r["sequence"] == 1 + 2 * r["tokens"]
        assert r["gflops_monocular"] < r["gflops"]
        assert r["floor_ms"] == pytest.approx(r["gflops"] / 800e3 * 1e3)
        assert r["max_fps"] == pytest.approx(1e3 / r["floor_ms"])


def test_bad_arguments():
    config = tiny_config()
    with pytest.raises(ValueError, match="depth_tokens"):
        count_flops(config, 96, 128, num_tokens=48, depth_tokens=49)
    with pytest.raises(ValueError, match="mode"):
        count_flops(config, 96, 128, mode="stereo")
    with pytest.raises(ValueError, match="resolution_level"):
        count_flops(config, 96, 128, resolution_level=10)
