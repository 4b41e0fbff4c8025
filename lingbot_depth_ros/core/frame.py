"""The RGB-D frame and completion result types shared by every engine and front end."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

from .errors import IntrinsicsError, ShapeMismatchError


class SourceMask(enum.IntEnum):
    """Where each output depth pixel came from (values of the mono8 source mask)."""

    INVALID = 0  #: no depth: neither measured nor filled (NaN in the output)
    MEASURED = 1  #: the sensor's own valid measurement, passed through
    FILLED = 2  #: filled (or refined) by the engine


@dataclass
class RGBDFrame:
    """One registered colour + depth pair: rgb uint8 (H, W, 3) RGB, depth float32 (H, W)
    metres (NaN = no measurement), K float64 (3, 3) colour intrinsics."""

    rgb: np.ndarray
    depth: np.ndarray
    K: np.ndarray
    stamp_ns: int = 0
    frame_id: str = ""

    def __post_init__(self) -> None:
        if self.rgb.ndim != 3 or self.rgb.shape[2] != 3 or self.rgb.dtype != np.uint8:
            raise ShapeMismatchError(
                f"rgb must be uint8 (H, W, 3), got {self.rgb.dtype} {self.rgb.shape}")
        if self.depth.ndim != 2 or self.depth.dtype != np.float32:
            raise ShapeMismatchError(
                f"depth must be float32 (H, W) metres, got {self.depth.dtype} {self.depth.shape}")
        if self.rgb.shape[:2] != self.depth.shape:
            raise ShapeMismatchError(
                f"colour is {self.rgb.shape[1]}x{self.rgb.shape[0]} but depth is "
                f"{self.depth.shape[1]}x{self.depth.shape[0]}: depth must be registered to colour")
        self.K = validate_intrinsics(self.K)

    @property
    def height(self) -> int:
        return int(self.depth.shape[0])

    @property
    def width(self) -> int:
        return int(self.depth.shape[1])

    @property
    def valid(self) -> np.ndarray:
        """Boolean map of measured pixels (finite depth)."""
        return np.isfinite(self.depth)


#: focal lengths (pixels) a real camera can have; outside, unprojection gives absurd or
#: infinite points (fx = 1e-300 turns every pixel into inf)
FOCAL_RANGE_PX = (1.0, 1e6)
#: how far the principal point may lie outside the image, in pixels (crops shift it out)
_MAX_PRINCIPAL_PX = 1e6


def validate_intrinsics(K) -> np.ndarray:
    """K as float64 (3, 3), or IntrinsicsError with what is wrong: the one check of every
    camera matrix (pinhole [[fx, s, cx], [0, fy, cy], [0, 0, 1]], finite, real focal lengths)."""
    if K is None:
        raise IntrinsicsError("no camera intrinsics given")
    try:
        K = np.asarray(K, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise IntrinsicsError(f"K is not numeric: {exc}") from None
    if K.shape != (3, 3):
        raise IntrinsicsError(f"K must be 3x3, got shape {K.shape}")
    if not np.all(np.isfinite(K)):
        raise IntrinsicsError("K holds NaN or inf")
    if K[2, 0] != 0 or K[2, 1] != 0 or K[2, 2] != 1 or K[1, 0] != 0:
        raise IntrinsicsError(f"K is not a pinhole camera matrix: last row must be 0 0 1 and "
                              f"K[1][0] 0, got rows {K[1].tolist()}, {K[2].tolist()}")
    low, high = FOCAL_RANGE_PX
    fx, fy = K[0, 0], K[1, 1]
    if not (low <= fx <= high and low <= fy <= high):
        raise IntrinsicsError(f"focal lengths must be {low:g}..{high:g} pixels, got fx={fx:g} "
                              f"fy={fy:g}")
    if max(abs(K[0, 2]), abs(K[1, 2]), abs(K[0, 1])) > _MAX_PRINCIPAL_PX:
        raise IntrinsicsError(f"principal point or skew out of range: cx={K[0, 2]:g} "
                              f"cy={K[1, 2]:g} skew={K[0, 1]:g}")
    return K


@dataclass
class CompletionResult:
    """What an engine returns for one frame: depth float32 (H, W) metres (NaN = unknown, +/-Inf
    where the input said too far/close), source uint8 SourceMask values, timings_ms per stage."""

    depth: np.ndarray
    source: np.ndarray
    engine: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    #: depth holds +Inf/-Inf kept from the input (REP 117 too far / too close, see
    #: core.depth.Infinities); consumers must treat them as no surface
    infinite: bool = False

    @property
    def filled_fraction(self) -> float:
        """Share of all pixels whose depth the engine filled."""
        # A numpy scalar, not the IntEnum: comparing with the enum is several times slower.
        filled = np.count_nonzero(self.source == np.uint8(SourceMask.FILLED))
        return float(filled) / max(1, self.source.size)

    @property
    def total_ms(self) -> float:
        return float(sum(self.timings_ms.values()))
