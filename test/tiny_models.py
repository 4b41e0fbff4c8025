"""Small random LingBot-Depth models, the real example captures, and the comparison of two
numerically different computations of the same depth (what may differ, and by how much)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.engines.neural_common import DEFAULT_MASK_THRESHOLD
from lingbot_depth_ros.model import build_model, tiny_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
CAPTURES = ("0", "1", "2", "3")
#: random mask heads sit at p ~ 0.39; this logit shift puts about half the pixels above 0.5,
#: so engines both fill and drop pixels
MASK_LOGIT_SHIFT = 0.46
#: ONNX Runtime intra-op threads of the tests' sessions and engines (0: ONNX Runtime's own
#: choice); CI's second run of the numerics tests sets another count (.ci/run)
ORT_THREADS = int(os.environ.get("LINGBOT_TEST_ORT_THREADS", "0"))
#: at most this share of the pixels may change validity between two computations (and only
#: those whose reference mask probability lies within the stated tolerance of the threshold)
MAX_FLIP_SHARE = 1e-3


def tiny_model(seed: int = 0, **config_options):
    torch.manual_seed(seed)
    model = build_model(tiny_config(**config_options))
    if model.mask_head is not None:
        with torch.no_grad():
            model.mask_head.output_blocks[-1].bias += MASK_LOGIT_SHIFT
    return model


def capture(name: str):
    return load_capture(EXAMPLES / name)


def frame_tensors(frame) -> tuple[torch.Tensor, torch.Tensor]:
    """(image (1,3,H,W) in [0,1], depth (1,H,W) metres with 0 for none) of an RGBDFrame."""
    image = torch.from_numpy(frame.rgb).permute(2, 0, 1)[None].float() / 255.0
    return image, torch.from_numpy(np.nan_to_num(frame.depth))[None]


def ort_session(source):
    """An ONNX Runtime CPU session of a path or serialized graph, with ORT_THREADS."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = ORT_THREADS
    return ort.InferenceSession(str(source) if isinstance(source, Path) else source,
                                options, providers=["CPUExecutionProvider"])


def _float64(a) -> np.ndarray:
    return np.asarray(a.detach().cpu() if isinstance(a, torch.Tensor) else a, dtype=np.float64)


def assert_close(got, want, rtol: float, atol: float = 0.0, what: str = "values") -> None:
    """Every |got - want| <= atol + rtol * |want|, NaN exactly where `want` has NaN: the
    bound for two computations of the same quantity that round differently."""
    got, want = _float64(got), _float64(want)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    missing = np.isnan(want)
    assert np.array_equal(np.isnan(got), missing), f"{what}: NaN at other places"
    error = np.abs(got - want)[~missing]
    bound = atol + rtol * np.abs(want[~missing])
    outside = error > bound
    if outside.any():
        worst = int(np.argmax(error - bound))
        raise AssertionError(
            f"{what}: {int(outside.sum())} of {error.size} outside atol {atol:g} + rtol {rtol:g}"
            f" (worst |diff| {error[worst]:.3g} at {want[~missing][worst]:.6g})")


def assert_same_prediction(got, want, want_prob, rtol: float, prob_atol: float,
                           atol: float = 0.0, threshold: float = DEFAULT_MASK_THRESHOLD,
                           max_flip_share: float = MAX_FLIP_SHARE) -> None:
    """Depth predictions (NaN where dropped) of two computations: depth within rtol/atol
    where both keep a pixel; validity equal except at pixels whose reference mask
    probability `want_prob` lies within prob_atol (the probabilities' tolerance) of the
    threshold that decides it, and at most max_flip_share of the pixels flip."""
    got, want = _float64(got), _float64(want)
    prob = _float64(want_prob).reshape(want.shape)
    flipped = np.isnan(got) != np.isnan(want)
    at_threshold = np.abs(prob - threshold) <= prob_atol
    away = int((flipped & ~at_threshold).sum())
    assert away == 0, f"{away} pixels changed validity with a mask probability away from " \
                      f"{threshold} by more than {prob_atol:g}"
    assert flipped.mean() <= max_flip_share, \
        f"{int(flipped.sum())} of {flipped.size} pixels changed validity (> {max_flip_share:g})"
    both = np.isfinite(got) & np.isfinite(want)
    assert both.sum() > 1000  # the comparison covers real pixels
    assert_close(got[both], want[both], rtol, atol, "depth where both keep the pixel")
