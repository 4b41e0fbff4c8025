"""Depth accuracy metrics over valid ground truth (definitions: docs/engines.md).

Scored pixels: ground truth finite and > 0, inside the optional `mask`, and prediction finite
and > 0. ``coverage`` is the share of those candidates the prediction covers, so an engine
cannot look good by leaving hard pixels empty. With nothing to score every metric is NaN and
``count`` is 0."""

from __future__ import annotations

import numpy as np

from .errors import ShapeMismatchError

METRIC_NAMES = ("abs_rel", "sq_rel", "rmse", "rmse_log", "mae", "silog",
                "delta1", "delta2", "delta3")
#: metrics where higher is better (all others: lower is better)
HIGHER_IS_BETTER = ("delta1", "delta2", "delta3", "coverage")


def scored_pixels(pred: np.ndarray, gt: np.ndarray,
                  mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (pred values, gt values, candidate count) of the pixels to score."""
    if pred.shape != gt.shape or (mask is not None and mask.shape != gt.shape):
        raise ShapeMismatchError(
            f"prediction {pred.shape}, ground truth {gt.shape} and mask "
            f"{None if mask is None else mask.shape} must have one shape")
    with np.errstate(invalid="ignore"):
        candidates = np.isfinite(gt) & (gt > 0)
        if mask is not None:
            candidates &= mask.astype(bool, copy=False)
        scored = candidates & np.isfinite(pred) & (pred > 0)
    return (pred[scored].astype(np.float64), gt[scored].astype(np.float64),
            int(np.count_nonzero(candidates)))


def abs_rel(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean(np.abs(p - g) / g))


def sq_rel(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean((p - g) ** 2 / g))


def rmse(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.sqrt(np.mean((p - g) ** 2)))


def rmse_log(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2)))


def mae(p: np.ndarray, g: np.ndarray) -> float:
    return float(np.mean(np.abs(p - g)))


def silog(p: np.ndarray, g: np.ndarray) -> float:
    d = np.log(p) - np.log(g)
    # clamp tiny negative round-off before the root
    return float(np.sqrt(max(0.0, np.mean(d ** 2) - np.mean(d) ** 2)))


def delta(p: np.ndarray, g: np.ndarray, k: int) -> float:
    """Share of pixels whose ratio to the truth is within 1.25^k."""
    return float(np.mean(np.maximum(p / g, g / p) < 1.25 ** k))


def depth_metrics(pred: np.ndarray, gt: np.ndarray,
                  mask: np.ndarray | None = None) -> dict[str, float]:
    """All metrics of METRIC_NAMES plus ``count`` and ``coverage`` (see the module doc)."""
    p, g, candidates = scored_pixels(pred, gt, mask)
    out: dict[str, float] = {}
    if p.size == 0:
        out.update({name: float("nan") for name in METRIC_NAMES})
    else:
        out.update(abs_rel=abs_rel(p, g), sq_rel=sq_rel(p, g), rmse=rmse(p, g),
                   rmse_log=rmse_log(p, g), mae=mae(p, g), silog=silog(p, g),
                   delta1=delta(p, g, 1), delta2=delta(p, g, 2), delta3=delta(p, g, 3))
    out["count"] = int(p.size)
    out["coverage"] = p.size / candidates if candidates else float("nan")
    return out


def mean_metrics(per_item: list[dict[str, float]]) -> dict[str, float]:
    """Average each metric over items (NaN items are skipped); ``count`` is summed."""
    if not per_item:
        return {}
    out: dict[str, float] = {}
    for key in per_item[0]:
        values = np.array([m[key] for m in per_item], dtype=np.float64)
        if key == "count":
            out[key] = int(values.sum())
        else:
            finite = values[np.isfinite(values)]
            out[key] = float(finite.mean()) if finite.size else float("nan")
    return out
