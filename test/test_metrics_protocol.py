"""Depth metrics against hand-computed values, and the block-wise masking protocol."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.errors import InvalidDepthError, ShapeMismatchError
from lingbot_depth_ros.core.metrics import METRIC_NAMES, depth_metrics, mean_metrics
from lingbot_depth_ros.core.protocol import (LEVEL_NAMES, LEVELS, capture_seed, corrupt_depth,
                                             make_trials, score_completion)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def corridor():
    return load_capture(EXAMPLES / "0")


def test_metrics_match_hand_computed_values():
    gt = np.array([[1.0, 2.0], [4.0, np.nan]], np.float32)
    pred = np.array([[1.0, 3.0], [2.0, 5.0]], np.float32)
    # scored pixels: (1, 1), (3, 2), (2, 4); errors 0, 1, -2
    m = depth_metrics(pred, gt)
    assert m["count"] == 3 and m["coverage"] == 1.0
    assert m["abs_rel"] == pytest.approx((0 + 1 / 2 + 2 / 4) / 3)
    assert m["sq_rel"] == pytest.approx((0 + 1 / 2 + 4 / 4) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3))
    assert m["mae"] == pytest.approx(1.0)
    d = np.log([1.0, 3 / 2, 2 / 4])
    assert m["rmse_log"] == pytest.approx(math.sqrt(np.mean(d ** 2)))
    assert m["silog"] == pytest.approx(math.sqrt(np.mean(d ** 2) - np.mean(d) ** 2))
    # ratios max(p/g, g/p): 1, 1.5, 2 -> below 1.25: 1; below 1.5625: 2; below 1.953: 2
    assert m["delta1"] == pytest.approx(1 / 3)
    assert m["delta2"] == pytest.approx(2 / 3)
    assert m["delta3"] == pytest.approx(2 / 3)


def test_metrics_respect_mask_and_count_uncovered_pixels():
    gt = np.array([1.0, 2.0, 4.0, 0.0], np.float32)
    pred = np.array([1.5, np.nan, 4.0, 3.0], np.float32)
    mask = np.array([True, True, False, True])
    m = depth_metrics(pred, gt, mask)
    # candidates: indices 0, 1 (valid gt inside mask); only 0 has a prediction
    assert m["count"] == 1 and m["coverage"] == 0.5
    assert m["rmse"] == pytest.approx(0.5) and m["abs_rel"] == pytest.approx(0.5)


def test_metrics_with_nothing_to_score_are_nan():
    m = depth_metrics(np.ones(4, np.float32), np.full(4, np.nan, np.float32))
    assert m["count"] == 0 and math.isnan(m["coverage"])
    assert all(math.isnan(m[name]) for name in METRIC_NAMES)


def test_metrics_reject_mismatched_shapes():
    with pytest.raises(ShapeMismatchError):
        depth_metrics(np.ones((2, 2)), np.ones((2, 3)))


def test_mean_metrics_skips_nan_and_sums_counts():
    mean = mean_metrics([{"rmse": 1.0, "count": 3}, {"rmse": float("nan"), "count": 0},
                         {"rmse": 3.0, "count": 5}])
    assert mean == {"rmse": 2.0, "count": 8}


def test_corruption_is_deterministic_under_a_seed(corridor):
    a = corrupt_depth(corridor.depth, "medium", 7)
    b = corrupt_depth(corridor.depth, "medium", 7)
    c = corrupt_depth(corridor.depth, "medium", 8)
    assert np.array_equal(a.dropped, b.dropped)
    assert np.array_equal(a.depth, b.depth, equal_nan=True)
    assert not np.array_equal(a.dropped, c.dropped)


def test_harder_levels_drop_more_pixels(corridor):
    shares = [np.mean([corrupt_depth(corridor.depth, level, seed).dropped.mean()
                       for seed in range(3)]) for level in LEVEL_NAMES]
    assert shares == sorted(shares) and len(set(shares)) == 4
    assert 0.04 < shares[0] < 0.15 and 0.75 < shares[-1] < 0.95


def test_corruption_drops_blocks_keeps_holes_and_adds_the_documented_noise(corridor):
    depth = corridor.depth.copy()
    level = LEVELS["hard"]
    out = corrupt_depth(depth, level, 1)
    assert np.array_equal(depth, corridor.depth, equal_nan=True)  # input untouched
    assert np.all(np.isnan(out.depth[out.dropped]))
    assert np.all(np.isnan(out.depth[np.isnan(depth)]))  # the sensor's own holes stay
    kept = ~out.dropped & np.isfinite(depth)
    assert np.all(np.isfinite(out.depth[kept]))
    residual = (out.depth - depth)[kept]
    expected = np.sqrt(level.sigma_m ** 2 + level.shot_m * depth[kept])
    assert abs(np.mean(residual)) < 1e-3
    assert np.std(residual / expected) == pytest.approx(1.0, rel=0.05)


def test_blocks_scale_with_image_size():
    small = np.ones((60, 80), np.float32)
    shares = [corrupt_depth(small, "medium", s).dropped.mean() for s in range(10)]
    assert 0.1 < np.mean(shares) < 0.4  # close to the ~24% of a 640x480 image


def test_capture_seed_depends_only_on_seed_and_name():
    draw = lambda seq: np.random.default_rng(seq).random(3)
    assert np.array_equal(draw(capture_seed(5, "kitchen")), draw(capture_seed(5, "kitchen")))
    assert not np.array_equal(draw(capture_seed(5, "kitchen")), draw(capture_seed(5, "hall")))
    assert not np.array_equal(draw(capture_seed(5, "kitchen")), draw(capture_seed(6, "kitchen")))


def test_bad_protocol_inputs_raise():
    with pytest.raises(ValueError, match="unknown level"):
        corrupt_depth(np.ones((8, 8), np.float32), "brutal", 0)
    with pytest.raises(InvalidDepthError):
        corrupt_depth(np.full((8, 8), np.nan, np.float32), "easy", 0)


def test_scoring_separates_dropped_and_all_pixels(corridor):
    trial = make_trials([corridor], "medium", [3])[0]
    perfect = score_completion(corridor.depth, trial.truth, trial.dropped)
    assert perfect["masked"]["rmse"] == 0 and perfect["all"]["rmse"] == 0
    assert perfect["masked"]["count"] == np.count_nonzero(trial.dropped & np.isfinite(trial.truth))
    # off by 10 cm only inside the blocks: masked RMSE 0.1, all-pixel RMSE diluted
    shifted = np.where(trial.dropped, corridor.depth + 0.1, corridor.depth)
    scores = score_completion(shifted, trial.truth, trial.dropped)
    assert scores["masked"]["rmse"] == pytest.approx(0.1, rel=1e-4)
    share = scores["masked"]["count"] / scores["all"]["count"]
    assert scores["all"]["rmse"] == pytest.approx(0.1 * math.sqrt(share), rel=1e-3)
