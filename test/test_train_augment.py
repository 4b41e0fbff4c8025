"""Training augmentation: geometry moves depth and K together, photometry leaves depth alone."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.train.augment import View, augment
from lingbot_depth_ros.train.config import AugmentConfig

H, W = 120, 160
K = np.array([[150.0, 0.0, 81.3], [0.0, 148.0, 58.7], [0.0, 0.0, 1.0]])


def coded_view() -> View:
    """Depth whose value names its source pixel: 10 + v * W + u (no holes blend away)."""
    v, u = np.mgrid[0:H, 0:W]
    depth = (10.0 + v * W + u).astype(np.float32)
    rgb = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    return View(rgb, depth, K.copy())


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_output_pixel_sees_along_the_ray_its_new_K_gives(seed):
    cfg = AugmentConfig(hflip_prob=0.5)
    out = augment(coded_view(), (56, 84), cfg, np.random.default_rng(seed))
    assert out.rgb.shape == (56, 84, 3) and out.rgb.dtype == np.uint8
    code = out.depth.astype(np.int64) - 10
    v_src, u_src = code // W, code % W
    v_out, u_out = np.mgrid[0:56, 0:84]
    # Normalised ray of the output pixel under K' vs of the source pixel under K.
    x_out = (u_out - out.K[0, 2]) / out.K[0, 0]
    y_out = (v_out - out.K[1, 2]) / out.K[1, 1]
    x_src = (u_src - K[0, 2]) / K[0, 0]
    y_src = (v_src - K[1, 2]) / K[1, 1]
    # A flip mirrors the ray (x -> -x); nearest sampling: within half a source pixel.
    sign = -1.0 if u_src[0, -1] < u_src[0, 0] else 1.0
    assert np.all(np.abs(x_out - x_src * sign) <= 0.5 / K[0, 0] + 1e-6)
    assert np.all(np.abs(y_out - y_src) <= 0.5 / K[1, 1] + 1e-6)


def test_holes_stay_holes_and_depth_values_are_never_blended():
    frame = load_capture("examples/3")
    rng = np.random.default_rng(5)
    valid_values = set(np.unique(frame.depth[np.isfinite(frame.depth)]).tolist())
    for _ in range(10):
        out = augment(View(frame.rgb, frame.depth, frame.K), (112, 140), AugmentConfig(), rng)
        finite = out.depth[np.isfinite(out.depth)]
        assert set(np.unique(finite).tolist()) <= valid_values
        assert np.isnan(out.depth).any()  # this capture has holes everywhere


def test_photometric_steps_change_rgb_only():
    view = coded_view()
    always = AugmentConfig(crop_scale=(1.0, 1.0), crop_ratio=(1.0, 1.0), hflip_prob=0.0,
                           jitter_prob=1.0, jpeg_prob=1.0, blur_prob=1.0, shot_noise_prob=1.0)
    out = augment(view, (H, W), always, np.random.default_rng(1))
    np.testing.assert_array_equal(out.depth, view.depth)
    np.testing.assert_allclose(out.K, view.K)
    assert np.abs(out.rgb.astype(int) - view.rgb).mean() > 5

