"""Organized point clouds from metric depth, laid out for ``sensor_msgs/PointCloud2``.

Points are little-endian float32 x, y, z (metres, camera optical frame: x right, y down,
z forward) and, for XYZRGB, a packed colour: uint32 0x00RRGGBB stored in a float32 slot, as
PCL and rviz read it (point_step 16). Clouds stay organised (H x W, row-major like the image)
with NaN x, y, z where a pixel has no valid depth, so a consumer can index a point by pixel.

`organized_points` is the one unprojection; the one PointCloud2 builder on top of it is
`core.outputs.OutputBuilder.cloud`, which the node, `bag process` and the bag outputs all use.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import cv2
import numpy as np

from .errors import ShapeMismatchError
from .frame import validate_intrinsics

#: sensor_msgs/PointField datatype constant for float32
FLOAT32 = 7


@dataclass(frozen=True)
class PointField:
    """One sensor_msgs/PointField description."""

    name: str
    offset: int
    datatype: int = FLOAT32
    count: int = 1


XYZ_FIELDS = (PointField("x", 0), PointField("y", 4), PointField("z", 8))
XYZRGB_FIELDS = (*XYZ_FIELDS, PointField("rgb", 12))

#: numpy layouts of one point (little-endian, is_bigendian = False)
XYZ_DTYPE = np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3,
                      "offsets": [0, 4, 8], "itemsize": 12})
XYZRGB_DTYPE = np.dtype({"names": ["x", "y", "z", "rgb"], "formats": ["<f4"] * 4,
                         "offsets": [0, 4, 8, 12], "itemsize": 16})

@dataclass
class CloudFields:
    """The data-carrying fields of a sensor_msgs/PointCloud2 (header aside)."""

    height: int
    width: int
    fields: tuple[PointField, ...]
    point_step: int
    row_step: int
    data: bytes
    is_bigendian: bool = False
    is_dense: bool = False  # organised clouds hold NaN points


def _make_ray_grid(height: int, width: int, K: np.ndarray, stride: int):
    """x/z and y/z of every stride-th pixel's ray (pinhole, skew allowed)."""
    fx, skew, cx = K[0]
    fy, cy = K[1, 1], K[1, 2]
    v = np.arange(0, height, stride, dtype=np.float64)[:, None]
    u = np.arange(0, width, stride, dtype=np.float64)[None, :]
    y_over_z = (v - cy) / fy
    x_over_z = (u - cx - skew * y_over_z) / fx
    shape = (v.size, u.size)
    x_grid = np.ascontiguousarray(np.broadcast_to(x_over_z, shape), dtype=np.float32)
    y_grid = np.ascontiguousarray(np.broadcast_to(y_over_z, shape), dtype=np.float32)
    x_grid.flags.writeable = False
    y_grid.flags.writeable = False
    return x_grid, y_grid


class _RayGridCache:
    """Unit-depth ray grids by (size, K, stride), so repeated frames skip the meshgrid."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._grids: OrderedDict[tuple, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def get(self, height: int, width: int, K: np.ndarray, stride: int):
        key = (height, width, K.tobytes(), stride)
        grids = self._grids.get(key)
        if grids is None:
            grids = _make_ray_grid(height, width, K, stride)
            self._grids[key] = grids
            if len(self._grids) > self.capacity:
                self._grids.popitem(last=False)
        else:
            self._grids.move_to_end(key)
        return grids


_RAY_GRIDS = _RayGridCache()


def ray_grid(height: int, width: int, K, stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Cached read-only float32 grids (x/z, y/z) for every `stride`-th pixel."""
    return _RAY_GRIDS.get(int(height), int(width), validate_intrinsics(K), int(stride))


def cloud_shape(height: int, width: int, stride: int = 1) -> tuple[int, int]:
    """Organised cloud size after keeping every `stride`-th row and column."""
    return -(-int(height) // stride), -(-int(width) // stride)


def organized_points(depth: np.ndarray, K, rgb: np.ndarray | None = None, stride: int = 1,
                     max_depth: float | None = None, out: np.ndarray | None = None,
                     positive_or_nan: bool = False) -> np.ndarray:
    """Unproject metric depth to an organised structured array (H', W') of XYZ or XYZRGB.

    `stride` keeps every stride-th row and column (H' = ceil(H / stride)). Pixels whose depth
    is NaN, inf, <= 0 or (when `max_depth` is given) farther than `max_depth` metres along
    the optical axis (z) get NaN x, y, z; their colour is kept. `out`, when given, is a
    C-contiguous array of the right shape and dtype to fill instead of allocating one.
    `positive_or_nan=True` promises float32 depth that is positive and finite or NaN (what
    Engine.complete returns), which skips the pass that enforces it.
    """
    depth = np.asarray(depth)
    stride = _check_inputs(depth, rgb, stride, max_depth)
    x_grid, y_grid = ray_grid(depth.shape[0], depth.shape[1], K, stride)
    dtype = XYZ_DTYPE if rgb is None else XYZRGB_DTYPE
    if out is None:
        out = np.empty(x_grid.shape, dtype=dtype)
    elif out.shape != x_grid.shape or out.dtype != dtype or not out.flags.c_contiguous:
        raise ShapeMismatchError(
            f"out must be C-contiguous {x_grid.shape} {dtype}, got {out.shape} {out.dtype}")
    sampled = depth[::stride, ::stride]
    trusted = positive_or_nan and max_depth is None and sampled.dtype == np.float32
    if trusted and sampled.flags.c_contiguous:
        z = sampled
    else:
        z = np.array(sampled, dtype=np.float32)  # contiguous: every pass below runs unstrided
    if not trusted:
        with np.errstate(invalid="ignore"):
            usable = z > 0  # False for NaN
            usable &= (z < np.inf) if max_depth is None else (z <= max_depth)
        np.copyto(z, np.float32(np.nan), where=~usable)
    planes = [np.multiply(z, x_grid), np.multiply(z, y_grid), z]
    if rgb is not None:
        planes.append(_packed_colour_slot(rgb[::stride, ::stride]))
    # One interleaving pass (OpenCV's SIMD merge) instead of strided writes per field.
    slots = out.view("<f4").reshape(*out.shape, len(planes))
    merged = cv2.merge(planes, slots)
    if merged.__array_interface__["data"][0] != slots.__array_interface__["data"][0]:
        slots[...] = merged  # OpenCV allocated instead of writing into `out` (never seen)
    return out


def _packed_colour_slot(rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (H, W) whose bits are 0x00RRGGBB (PCL's rgb field)."""
    bgra = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGRA)  # bytes B, G, R, 255
    packed = bgra.view(np.uint32).reshape(bgra.shape[:2])
    np.bitwise_and(packed, np.uint32(0x00FFFFFF), out=packed)  # little-endian: clear alpha
    return packed.view(np.float32)


def _check_inputs(depth: np.ndarray, rgb: np.ndarray | None, stride: int,
                  max_depth: float | None) -> int:
    if depth.ndim != 2 or depth.dtype.kind != "f":
        raise ShapeMismatchError(
            f"depth must be float (H, W) metres, got {depth.dtype} {depth.shape}")
    if rgb is not None and (rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8
                            or rgb.shape[:2] != depth.shape):
        raise ShapeMismatchError(
            f"rgb must be uint8 (H, W, 3) matching depth {depth.shape}, "
            f"got {rgb.dtype} {rgb.shape}")
    if int(stride) != stride or stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    if max_depth is not None and not 0 < max_depth < np.inf:
        raise ValueError(f"max_depth must be positive and finite, got {max_depth}")
    return int(stride)


def pack_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) RGB -> uint32 (...) 0x00RRGGBB."""
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """Packed colours (float32 slot or uint32) -> uint8 (..., 3) RGB; inverse of pack_rgb."""
    bits = np.asarray(packed)
    bits = bits.view("<u4") if bits.dtype.kind == "f" else bits.astype(np.uint32)
    return np.stack([bits >> 16, bits >> 8, bits], axis=-1).astype(np.uint8)  # keeps low bytes


def finite_points(points: np.ndarray) -> np.ndarray:
    """The points of an organised cloud with finite x, y, z, flattened to (N,)."""
    flat = points.reshape(-1)
    return flat[np.isfinite(flat["z"])]
