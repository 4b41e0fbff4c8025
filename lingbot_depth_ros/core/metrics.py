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


def depth_metrics(pred: np.ndarray, gt: np.ndarray,
                  mask: np.ndarray | None = None) -> dict[str, float]:
    """All metrics of METRIC_NAMES plus ``count`` and ``coverage`` (see the module doc);
    delta<k> is the share of pixels whose ratio to the truth is within 1.25^k."""
    p, g, candidates = scored_pixels(pred, gt, mask)
    if p.size == 0:
        out = dict.fromkeys(METRIC_NAMES, float("nan"))
    else:
        err, log_err, ratio = p - g, np.log(p) - np.log(g), np.maximum(p / g, g / p)
        values = {"abs_rel": np.mean(np.abs(err) / g), "sq_rel": np.mean(err ** 2 / g),
                  "rmse": np.sqrt(np.mean(err ** 2)), "rmse_log": np.sqrt(np.mean(log_err ** 2)),
                  "mae": np.mean(np.abs(err)),
                  # clamp tiny negative round-off before the root
                  "silog": np.sqrt(max(0.0, np.mean(log_err ** 2) - np.mean(log_err) ** 2)),
                  **{f"delta{k}": np.mean(ratio < 1.25 ** k) for k in (1, 2, 3)}}
        out = {name: float(value) for name, value in values.items()}
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
