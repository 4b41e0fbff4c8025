"""Depth validation: raw sensor units -> float32 metres with NaN for no data (REP 117/118)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import EncodingError, InvalidDepthError

#: metres per raw unit for integer depth, by REP 118 (16UC1 is millimetres)
DEFAULT_DEPTH_SCALE = 0.001


@dataclass(frozen=True)
class DepthRange:
    """Accepted metric range; anything outside, NaN, inf or 0 is treated as no data."""

    min_m: float = 0.1
    max_m: float = 10.0

    def __post_init__(self) -> None:
        if not (0.0 <= self.min_m < self.max_m) or not np.isfinite(self.max_m):
            raise ValueError(f"need 0 <= min_depth < max_depth < inf, got [{self.min_m}, {self.max_m}]")


def depth_to_metres(raw: np.ndarray, encoding: str, depth_scale: float = DEFAULT_DEPTH_SCALE,
                    valid_range: DepthRange = DepthRange()) -> np.ndarray:
    """Convert a decoded depth image to float32 metres, NaN wherever it is not a valid reading.

    Integer encodings (16UC1, mono16) are multiplied by `depth_scale` (metres per unit,
    0.001 for millimetres); 32FC1 is already metres. Zero, NaN, inf and values outside
    `valid_range` become NaN, so sensor garbage (65535 mm spikes, sub-5 cm echoes) cannot
    leak into completion.
    """
    if encoding in ("16UC1", "mono16"):
        if not depth_scale > 0:
            raise ValueError(f"depth_scale must be positive, got {depth_scale}")
        metres = np.multiply(raw, np.float32(depth_scale), dtype=np.float32)
    elif encoding == "32FC1":
        metres = np.array(raw, dtype=np.float32, copy=True)
    else:
        raise EncodingError(f"'{encoding}' is not a depth encoding (expected 16UC1, mono16 or 32FC1)")
    # NaN compares false both ways and stays NaN; inf and -inf fall outside the range.
    with np.errstate(invalid="ignore"):
        bad = metres < np.float32(valid_range.min_m)
        bad |= metres > np.float32(valid_range.max_m)
    if valid_range.min_m <= 0:
        bad |= metres == 0  # zero still means "no data"
    np.copyto(metres, np.float32(np.nan), where=bad)
    return metres


def metres_to_16uc1(depth_m: np.ndarray) -> np.ndarray:
    """float32 metres (NaN = none) -> uint16 millimetres (0 = none), clipped to 65.535 m."""
    with np.errstate(invalid="ignore"):
        mm = np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0)
    mm = np.clip(mm, 0, 65535)
    return mm.astype(np.uint16)


def require_some_valid(depth_m: np.ndarray, min_fraction: float = 0.0) -> float:
    """Return the valid share of a metric depth map; raise InvalidDepthError if none is valid."""
    valid = np.count_nonzero(np.isfinite(depth_m))
    share = valid / max(1, depth_m.size)
    if valid == 0 or share < min_fraction:
        raise InvalidDepthError(
            f"depth has {valid} valid pixels ({100 * share:.2f}%), need at least "
            f"{max(1, int(np.ceil(min_fraction * depth_m.size)))}")
    return share
