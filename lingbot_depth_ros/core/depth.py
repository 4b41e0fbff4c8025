"""Depth validation: raw sensor units -> float32 metres with NaN for no data (REP 117/118),
the colour/depth registration check, and REP 117's +Inf/-Inf kept through completion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import EncodingError, InvalidDepthError, UnregisteredError
from .frame import CompletionResult, SourceMask

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
    """A decoded depth image as float32 metres (integer encodings times `depth_scale`), NaN
    wherever it is zero, NaN, inf or outside `valid_range`, so sensor garbage cannot leak in."""
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


def raw_to_32fc1(raw: np.ndarray, depth_scale: float = DEFAULT_DEPTH_SCALE) -> np.ndarray:
    """Integer raw depth -> what a driver publishing 32FC1 sends: every non-zero value in
    metres (no range limit), NaN where it is 0 (REP 118)."""
    return depth_to_metres(raw, "16UC1", depth_scale, DepthRange(0.0, 1e9))


def metres_to_16uc1(depth_m: np.ndarray) -> np.ndarray:
    """float32 metres (NaN = none) -> uint16 millimetres (0 = none), clipped to 65.535 m."""
    with np.errstate(invalid="ignore"):
        mm = np.rint(np.nan_to_num(depth_m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def require_some_valid(depth_m: np.ndarray, min_fraction: float = 0.0) -> float:
    """Return the valid share of a metric depth map; raise InvalidDepthError if none is valid."""
    valid = np.count_nonzero(np.isfinite(depth_m))
    share = valid / max(1, depth_m.size)
    if valid == 0 or share < min_fraction:
        raise InvalidDepthError(
            f"depth has {valid} valid pixels ({100 * share:.2f}%), need at least "
            f"{max(1, int(np.ceil(min_fraction * depth_m.size)))}")
    return share


def check_registered(color_frame_id: str, depth_frame_id: str, assume_registered: bool) -> None:
    """Raise UnregisteredError when depth is not in the colour image's optical frame (same-size
    images with different frame ids are not pixel-aligned; see `assume_registered`)."""
    if not assume_registered and color_frame_id != depth_frame_id:
        raise UnregisteredError(
            f"depth frame '{depth_frame_id}' is not the colour frame '{color_frame_id}': "
            "subscribe to depth registered to colour, or set assume_registered if it is")


@dataclass(frozen=True)
class Infinities:
    """Where a 32FC1 depth image said +Inf ("too far") or -Inf ("too close"), REP 117: engines
    see NaN there, and `restore` puts them back after completion (neither filled nor lost)."""

    too_far: np.ndarray
    too_close: np.ndarray

    @classmethod
    def of(cls, raw: np.ndarray, encoding: str) -> "Infinities | None":
        """The infinities of a decoded depth image, None when it has none (integer depth
        cannot hold any: REP 118 has only 0 = no data)."""
        if encoding != "32FC1":
            return None
        infinite = np.isinf(raw)
        if not infinite.any():
            return None
        positive = raw > 0
        return cls(too_far=infinite & positive, too_close=infinite & ~positive)

    def restore(self, result: CompletionResult) -> CompletionResult:
        """`result` with +Inf/-Inf where the input had them and the source mask INVALID there."""
        depth = result.depth if result.depth.flags.writeable else result.depth.copy()
        source = result.source if result.source.flags.writeable else result.source.copy()
        np.copyto(depth, np.float32(np.inf), where=self.too_far)
        np.copyto(depth, np.float32(-np.inf), where=self.too_close)
        np.copyto(source, np.uint8(SourceMask.INVALID), where=self.too_far | self.too_close)
        result.depth, result.source, result.infinite = depth, source, True
        return result
