"""The MDM masking rule matches the paper's spec, checked over many random draws."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lingbot_depth_ros.train.config import MaskingConfig
from lingbot_depth_ros.train.masking import draw_token_mask, mask_sample, patch_valid_counts

P = 14
AREA = P * P
CFG = MaskingConfig()


@st.composite
def valid_count_grids(draw):
    """Patch grids mixing empty, partly valid and fully valid patches in any proportion."""
    rows = draw(st.integers(1, 12))
    cols = draw(st.integers(1, 12))
    kinds = draw(st.lists(st.sampled_from(["empty", "mixed", "full"]), min_size=rows * cols,
                          max_size=rows * cols))
    partial = draw(st.lists(st.integers(1, AREA - 1), min_size=rows * cols, max_size=rows * cols))
    counts = np.array([0 if k == "empty" else AREA if k == "full" else c
                       for k, c in zip(kinds, partial)]).reshape(rows, cols)
    return counts


@settings(max_examples=300, deadline=None)
@given(counts=valid_count_grids(), seed=st.integers(0, 2**32 - 1))
def test_every_draw_obeys_the_rule(counts, seed):
    masked, ratio = draw_token_mask(counts, AREA, CFG, np.random.default_rng(seed))
    empty, full = counts == 0, counts == AREA
    n = counts.size
    assert 0.6 <= ratio <= 0.9
    assert masked[empty].all(), "a patch with no valid pixel must always be masked"
    forced = masked & ~full  # masked by the hole rules (empty, or mixed with p = 0.75)
    target = int(round(ratio * n))
    added = int(np.count_nonzero(masked & full))
    # Fully valid patches are only added to top up to the target, never beyond it.
    assert added == min(max(0, target - np.count_nonzero(forced)), np.count_nonzero(full))
    assert np.count_nonzero(masked) == max(np.count_nonzero(forced),
                                           min(target, np.count_nonzero(forced) + np.count_nonzero(full)))


def test_mixed_patches_are_masked_with_p_075():
    rng = np.random.default_rng(1)
    counts = np.full((6, 8), AREA)
    counts[:, :4] = 100  # left half mixed, right half fully valid (top-up candidates)
    draws = np.array([draw_token_mask(counts, AREA, CFG, rng)[0] for _ in range(2000)])
    mixed = draws[:, :, :4]
    # The top-up only ever adds fully valid patches, so mixed ones stay at exactly p = 0.75.
    n = mixed.size
    assert abs(mixed.mean() - 0.75) < 4 * np.sqrt(0.75 * 0.25 / n)
    # Each patch independently, not all-or-nothing per sample.
    per_sample = mixed.reshape(len(mixed), -1).mean(axis=1)
    assert 0.0 < per_sample.std() < 0.2


def test_target_ratio_is_uniform_on_06_09():
    rng = np.random.default_rng(2)
    ratios = np.array([draw_token_mask(np.full((4, 4), AREA), AREA, CFG, rng)[1] for _ in range(4000)])
    assert ratios.min() >= 0.6 and ratios.max() <= 0.9
    hist, _ = np.histogram(ratios, bins=6, range=(0.6, 0.9))
    expected = len(ratios) / 6
    chi2 = float(((hist - expected) ** 2 / expected).sum())
    assert chi2 < 20.5, f"ratio histogram {hist} is not uniform (chi2 {chi2:.1f}, 5 dof, p<0.001)"


def test_complete_depth_gets_random_patch_masking_at_the_drawn_ratio():
    rng = np.random.default_rng(3)
    counts = np.full((10, 12), AREA)
    n = counts.size
    hits = np.zeros(counts.shape)
    draws = 3000
    for _ in range(draws):
        masked, ratio = draw_token_mask(counts, AREA, CFG, rng)
        assert np.count_nonzero(masked) == int(round(ratio * n))
        hits += masked
    # Uniform over positions: each patch is masked ~ mean ratio (0.75) of the time.
    freq = hits / draws
    assert np.all(np.abs(freq - 0.75) < 5 * np.sqrt(0.75 * 0.25 / draws) + 0.01)


def test_holes_beyond_the_target_are_not_unmasked():
    counts = np.zeros((5, 5), dtype=int)
    counts[0, 0] = AREA  # one fully valid patch among holes: 96 % empty > any target
    for seed in range(50):
        masked, _ = draw_token_mask(counts, AREA, CFG, np.random.default_rng(seed))
        assert masked.sum() == 24 and not masked[0, 0]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), hole_share=st.floats(0.0, 1.0))
def test_network_input_hides_masked_patches_and_keeps_the_target(seed, hole_share):
    rng = np.random.default_rng(seed)
    depth = rng.uniform(0.3, 6.0, size=(5 * P, 7 * P)).astype(np.float32)
    depth[rng.random(depth.shape) < hole_share] = np.nan
    original = depth.copy()
    out = mask_sample(depth, CFG, rng)
    np.testing.assert_array_equal(np.isnan(depth), np.isnan(original))  # input not modified
    valid = np.isfinite(depth)
    assert out.keep.shape == (5, 7)
    counts = patch_valid_counts(valid)
    assert not out.keep[counts == 0].any()
    pixel_keep = np.repeat(np.repeat(out.keep, P, 0), P, 1)
    assert np.all(out.input_depth[~pixel_keep] == 0), "masked patches must carry no depth"
    assert np.all(out.input_depth[~valid] == 0), "holes stay holes"
    seen = pixel_keep & valid
    assert np.all(out.input_depth[seen] > 0), "noise must not turn valid depth into 'no data'"
    rel = out.input_depth[seen] / depth[seen] - 1.0
    assert np.all(np.abs(rel) <= 3 * CFG.depth_noise_std + 1e-6)


def test_input_noise_is_gaussian_with_the_configured_relative_std():
    rng = np.random.default_rng(4)
    depth = np.full((20 * P, 20 * P), 2.0, dtype=np.float32)
    cfg = MaskingConfig(depth_noise_std=0.02)
    rel = []
    for _ in range(5):
        out = mask_sample(depth, cfg, rng)
        seen = out.input_depth > 0
        rel.append(out.input_depth[seen] / 2.0 - 1.0)
    rel = np.concatenate(rel)
    assert abs(rel.mean()) < 5e-4
    assert rel.std() == pytest.approx(0.02 * 0.9975, rel=0.02)  # clipping at 3 sigma: std x0.9975
