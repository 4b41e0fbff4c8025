"""The `guided` engine: colour-guided, locally planar push-pull hole filling in log depth (CPU,
no weights), a coarse-to-fine pyramid of ridge-regularised plane fits (docs/engines.md)."""

from __future__ import annotations

import cv2
import numpy as np

from ..core.errors import InvalidDepthError
from ..core.frame import RGBDFrame
from .base import Engine, stage

# moment channels, each a sum over the cell's valid pixels, positions about the cell centre
# in full-resolution pixels: 1, x, y, xx, xy, yy, v, xv, yv (v = log depth)
S, SX, SY, SXX, SXY, SYY, SV, SXV, SYV = range(9)
_KERNEL3 = np.ones((3, 3), np.uint8)
#: min/max placeholder of a cell without data (finite, so arithmetic on it stays cheap)
NO_DATA = np.float32(1e30)


def measured_mask(depth: np.ndarray) -> np.ndarray:
    """Pixels with a usable measurement (finite, > 0); InvalidDepthError when there is none."""
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise InvalidDepthError(f"depth {depth.shape[1]}x{depth.shape[0]} has no valid pixel")
    return valid


def _pad_even(a: np.ndarray, value: float = 0.0) -> np.ndarray:
    """Pad the last two axes of `a` to even sizes with `value` (no copy when even)."""
    h, w = a.shape[-2:]
    if h % 2 == 0 and w % 2 == 0:
        return a
    pad = [(0, 0)] * (a.ndim - 2) + [(0, h % 2), (0, w % 2)]
    return np.pad(a, pad, constant_values=value)


def _quads(a: np.ndarray, value: float = 0.0):
    """The four children (top-left, top-right, bottom-left, bottom-right) of each 2x2 cell."""
    a = _pad_even(a, value)
    return a[..., 0::2, 0::2], a[..., 0::2, 1::2], a[..., 1::2, 0::2], a[..., 1::2, 1::2]


def _contiguous_quads(a: np.ndarray, value: float = 0.0):
    # contiguous copies of the strided children make the arithmetic on them several times faster
    return tuple(np.ascontiguousarray(q) for q in _quads(a, value))


def log_depth(depth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(valid as float32 0/1, log depth with 0 where invalid)."""
    valid = np.isfinite(depth)
    patched = depth.copy()
    cv2.patchNaNs(patched, 1.0)  # NaN -> 1 m, whose log is 0; far faster than np.where
    if not (patched.min() > 0 and patched.max() < np.inf):
        valid &= depth > 0  # the frame contract says NaN only; repair inf and <= 0 anyway
        patched = np.where(valid, depth, np.float32(1.0))
    return valid.astype(np.float32), np.log(patched)


def base_level(valid: np.ndarray, logd: np.ndarray):
    """Level-1 moments (9, h, w) and data range from full-resolution samples at pixel centres."""
    s00, s01, s10, s11 = _contiguous_quads(valid)
    v00, v01, v10, v11 = _contiguous_quads(logd)
    half = np.float32(0.5)  # a pixel centre is half a pixel from its 2x2 cell's centre
    m = np.empty((9,) + s00.shape, np.float32)
    m[S] = s00 + s01 + s10 + s11
    m[SV] = v00 + v01 + v10 + v11
    m[SX] = half * ((s01 + s11) - (s00 + s10))
    m[SY] = half * ((s10 + s11) - (s00 + s01))
    m[SXX] = m[SYY] = half * half * m[S]
    m[SXY] = half * half * ((s00 + s11) - (s01 + s10))
    m[SXV] = half * ((v01 + v11) - (v00 + v10))
    m[SYV] = half * ((v10 + v11) - (v00 + v01))
    # data range per cell: an invalid child (s = 0, v = 0) is moved out of range by +-NO_DATA
    for s_q in (s00, s01, s10, s11):  # the counts are used up: reuse them as the offsets
        np.subtract(1, s_q, out=s_q)
        s_q *= NO_DATA
    lo = np.minimum(np.minimum(v00 + s00, v01 + s01), np.minimum(v10 + s10, v11 + s11))
    hi = np.maximum(np.maximum(v00 - s00, v01 - s01), np.maximum(v10 - s10, v11 - s11))
    return m, lo, hi


def pull_moments(m: np.ndarray, half: float) -> np.ndarray:
    """Moments of the next coarser level; `half` = half the child cell size in pixels."""
    q00, q01, q10, q11 = _quads(m)
    out = q00 + q01 + q10 + q11
    h = np.float32(half)
    # shift each child's moments from its centre to the parent centre (parallel axes)
    first = [S, SX, SY, SV]  # only these enter the shift terms
    rl = (q01[first] + q11[first]) - (q00[first] + q10[first])  # right minus left children
    bt = (q10[first] + q11[first]) - (q00[first] + q01[first])  # bottom minus top children
    diag = (q00[S] + q11[S]) - (q01[S] + q10[S])
    out[SXX] += 2 * h * rl[1] + h * h * out[S]
    out[SYY] += 2 * h * bt[2] + h * h * out[S]
    out[SXY] += h * (rl[2] + bt[1]) + h * h * diag
    out[SX] += h * rl[0]
    out[SY] += h * bt[0]
    out[SXV] += h * rl[3]
    out[SYV] += h * bt[3]
    return out


def pull_range(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell min and max of the children (+-NO_DATA where a cell holds no data)."""
    a, b, c, d = _quads(lo, NO_DATA)
    e, f, g, k = _quads(hi, -NO_DATA)
    return (np.minimum(np.minimum(a, b), np.minimum(c, d)),
            np.maximum(np.maximum(e, f), np.maximum(g, k)))


def solve_planes(m: np.ndarray, prior: np.ndarray, lam_value: float,
                 lam_grad: float) -> np.ndarray:
    """Ridge least-squares planes (h, w, 3) = (value at centre, d/dx, d/dy) per cell.

    Minimises sum((v - a - gx x - gy y)^2) + lam_value (a - a0)^2 + lam_grad |g - g0|^2 with
    (a0, g0) = prior; closed form (Cramer's rule on the symmetric 3x3 normal equations).
    """
    if m[S].size <= 4096:
        # coarse cells: the moment products grow as (pixels x cell^2)^3, beyond float32 on
        # large images; these levels are small, so float64 costs nothing
        m, prior = m.astype(np.float64), prior.astype(np.float64)
    s, sx, sy, sxy = m[S] + lam_value, m[SX], m[SY], m[SXY]
    sxx, syy = m[SXX] + lam_grad, m[SYY] + lam_grad
    b0 = m[SV] + lam_value * prior[..., 0]
    b1 = m[SXV] + lam_grad * prior[..., 1]
    b2 = m[SYV] + lam_grad * prior[..., 2]
    c00, c01, c02 = sxx * syy - sxy * sxy, sy * sxy - sx * syy, sx * sxy - sy * sxx
    c11, c12, c22 = s * syy - sy * sy, sx * sy - s * sxy, s * sxx - sx * sx
    inv_det = 1.0 / (s * c00 + sx * c01 + sy * c02)
    out = np.empty(m.shape[1:] + (3,), np.float32)  # float32 whatever the working type
    out[..., 0] = (c00 * b0 + c01 * b1 + c02 * b2) * inv_det
    out[..., 1] = (c01 * b0 + c11 * b1 + c12 * b2) * inv_det
    out[..., 2] = (c02 * b0 + c12 * b1 + c22 * b2) * inv_det
    return out


def color_prior(planes: np.ndarray, src_colour: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 guide: np.ndarray, cell: float, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Prior planes and source colours for a finer level by a colour-weighted 3x3 vote.

    planes, src_colour (h2, w2, 3), lo/hi (h2, w2) are the coarser level; guide (h, w, 3) the
    finer level's colour; `cell` the finer cell size in pixels.
    """
    h, w = guide.shape[:2]
    h2, w2 = planes.shape[:2]
    parent_y, parent_x = np.arange(h) // 2, np.arange(w) // 2
    offsets = np.array([-1, 0, 1])
    ys = np.clip(parent_y[None, :] + offsets[:, None], 0, h2 - 1)  # (3, h)
    xs = np.clip(parent_x[None, :] + offsets[:, None], 0, w2 - 1)  # (3, w)
    # fine centre minus candidate centre, in pixels
    dy = ((np.arange(h) % 2) - 0.5) * cell - (ys - parent_y) * 2 * cell
    dx = ((np.arange(w) % 2) - 0.5) * cell - (xs - parent_x) * 2 * cell
    yi, xi = ys[:, None, :, None], xs[None, :, None, :]  # -> (3, 3, h, w) gathers
    cand = planes[yi, xi]
    dyb, dxb = dy[:, None, :, None].astype(np.float32), dx[None, :, None, :].astype(np.float32)
    value = cand[..., 0] + cand[..., 1] * dxb + cand[..., 2] * dyb
    value = np.clip(value, lo[yi, xi], hi[yi, xi])
    spatial = np.exp(-(dyb * dyb + dxb * dxb) / np.float32(2 * (1.4 * cell) ** 2))
    colour = src_colour[yi, xi]
    dist2 = np.sum((colour - guide) ** 2, axis=-1)
    weight = spatial * np.exp(dist2 * np.float32(-0.5 / sigma ** 2)) + np.float32(1e-12)
    norm = 1.0 / weight.sum(axis=(0, 1))
    prior = np.empty((h, w, 3), np.float32)
    prior[..., 0] = (weight * value).sum(axis=(0, 1)) * norm
    prior[..., 1] = (weight * cand[..., 1]).sum(axis=(0, 1)) * norm
    prior[..., 2] = (weight * cand[..., 2]).sum(axis=(0, 1)) * norm
    src = (weight[..., None] * colour).sum(axis=(0, 1)) * norm[..., None]
    return prior, src


class Pyramid:
    """Moments, data ranges and colours per level l = 1 .. top (list index l - 1)."""

    def __init__(self, depth: np.ndarray, rgb: np.ndarray, color_level: int) -> None:
        valid, logd = log_depth(depth)
        m, lo, hi = base_level(valid, logd)
        self.moments, self.lo, self.hi = [m], [lo], [hi]
        while self.moments[-1].shape[1:] != (1, 1):
            level = len(self.moments)  # level of the last entry; its cells are 2^level wide
            self.moments.append(pull_moments(self.moments[-1], 2.0 ** level / 2))
            lo, hi = pull_range(self.lo[-1], self.hi[-1])
            self.lo.append(lo)
            self.hi.append(hi)
        self.color_level = color_level
        self.guide: dict[int, np.ndarray] = {}  # level -> mean colour (h, w, 3)
        self.src_sum: dict[int, np.ndarray] = {}  # level -> colour sum of valid pixels
        if color_level <= self.top:
            self._color_levels(valid, rgb)

    @property
    def top(self) -> int:
        return len(self.moments)

    def _color_levels(self, valid: np.ndarray, rgb: np.ndarray) -> None:
        """YCrCb colours in [0, 1]: all pixels' mean and valid pixels' sum per cell."""
        ycc = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
        masked = cv2.bitwise_and(ycc, ycc, mask=valid.astype(np.uint8))
        # to level 1 in 8 bits (rounding error < 1/255 of a colour), then float sums
        colour = _half_mean_u8(ycc).astype(np.float32) * np.float32(4 / 255)
        src = _half_mean_u8(masked).astype(np.float32) * np.float32(4 / 255)
        pixels = np.full(colour.shape[:2], 4.0, np.float32)
        colour, src, pixels = (_sum_cells(a, 2 ** (self.color_level - 1))
                               for a in (colour, src, pixels))
        for level in range(self.color_level, self.top + 1):
            self.guide[level] = colour / pixels[..., None]
            self.src_sum[level] = src
            colour, src, pixels = _sum_cells(colour, 2), _sum_cells(src, 2), _sum_cells(pixels, 2)


def _half_mean_u8(image: np.ndarray) -> np.ndarray:
    """2x2 box mean of an 8-bit image; an odd last row/column is padded with zeros."""
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        image = cv2.copyMakeBorder(image, 0, h % 2, 0, w % 2, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2),
                      interpolation=cv2.INTER_AREA)


def _sum_cells(a: np.ndarray, factor: int) -> np.ndarray:
    """Sums over factor x factor cells of the first two axes, zero-padding to whole cells."""
    if factor == 1:
        return a
    h, w = a.shape[:2]
    ph, pw = -h % factor, -w % factor
    if ph or pw:
        a = cv2.copyMakeBorder(a, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0)
    size = (a.shape[1] // factor, a.shape[0] // factor)
    return cv2.resize(a, size, interpolation=cv2.INTER_AREA) * np.float32(factor * factor)


def upsample_planes(planes: np.ndarray, coarse_cell: float, shape: tuple[int, int],
                    value_only: bool = False) -> np.ndarray:
    """Bilinearly interpolate planes to the next finer level (shape = its (h, w)), or only
    their values when `value_only`.

    The border is first extended by one cell whose plane continues the edge plane, so pixels
    beyond the outermost cell centres extrapolate the plane instead of repeating a value.
    """
    ext = cv2.copyMakeBorder(planes, 1, 1, 1, 1, cv2.BORDER_REPLICATE)
    ext[0, :, 0] -= coarse_cell * ext[0, :, 2]
    ext[-1, :, 0] += coarse_cell * ext[-1, :, 2]
    ext[:, 0, 0] -= coarse_cell * ext[:, 0, 1]
    ext[:, -1, 0] += coarse_cell * ext[:, -1, 1]
    if value_only:
        ext = np.ascontiguousarray(ext[..., 0])
    h2, w2 = ext.shape[:2]
    fine = cv2.resize(ext, (2 * w2, 2 * h2), interpolation=cv2.INTER_LINEAR)
    return fine[2:2 + shape[0], 2:2 + shape[1]]


def neighbourhood_range(lo: np.ndarray, hi: np.ndarray, parent_lo: np.ndarray | None,
                        parent_hi: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Data range over each cell's 3x3 neighbourhood; empty cells take their parent's."""
    if parent_lo is not None:
        h, w = lo.shape
        up = lambda a: np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[:h, :w]
        lo = np.where(lo < NO_DATA, lo, up(parent_lo))
        hi = np.where(hi > -NO_DATA, hi, up(parent_hi))
    return cv2.erode(lo, _KERNEL3), cv2.dilate(hi, _KERNEL3)


def push(pyr: Pyramid, lam_value: float, lam_grad: float, sigma: float) -> np.ndarray:
    """Fill every cell coarse to fine; return the level-1 planes (h1, w1, 3)."""
    m = pyr.moments[-1]
    prior = np.zeros((1, 1, 3), np.float32)
    prior[..., 0] = m[SV] / m[S]  # the top cell holds all the data
    rng_lo, rng_hi = neighbourhood_range(pyr.lo[-1], pyr.hi[-1], None, None)
    planes = solve_planes(m, prior, 1e-3, lam_grad * 4.0 ** pyr.top)
    src = pyr.src_sum.get(pyr.top)
    if src is not None:
        src = src / np.maximum(m[S], 1e-6)[..., None]
    for level in range(pyr.top - 1, 0, -1):
        m = pyr.moments[level - 1]
        h, w = m.shape[1:]
        if level >= pyr.color_level:
            prior, src_prior = color_prior(planes, src, rng_lo, rng_hi, pyr.guide[level],
                                            2.0 ** level, sigma)
            src = (pyr.src_sum[level] + lam_value * src_prior) / (m[S] + lam_value)[..., None]
        else:
            prior = upsample_planes(planes, 2.0 ** (level + 1), (h, w))
        planes = solve_planes(m, prior, lam_value, lam_grad * 4.0 ** level)
        rng_lo, rng_hi = neighbourhood_range(pyr.lo[level - 1], pyr.hi[level - 1],
                                             rng_lo, rng_hi)
        np.clip(planes[..., 0], rng_lo, rng_hi, out=planes[..., 0])
    return planes


def guided_fill(depth: np.ndarray, rgb: np.ndarray, sigma_color: float = 0.15,
                color_level: int = 3, lambda_value: float = 1.0,
                lambda_gradient: float = 3.0) -> np.ndarray:
    """Dense float32 metric depth from `depth` (NaN = none) guided by `rgb` (uint8 RGB)."""
    pyr = Pyramid(depth, rgb, color_level)
    planes = push(pyr, lambda_value, lambda_gradient, sigma_color)
    log_filled = upsample_planes(planes, 2.0, depth.shape, value_only=True)
    return np.exp(log_filled, out=log_filled)


class GuidedEngine(Engine):
    """Colour-guided planar push-pull fill (see the module doc); the embedded default."""

    name = "guided"

    def __init__(self, sigma_color: float = 0.15, color_level: int = 3,
                 lambda_value: float = 1.0, lambda_gradient: float = 3.0,
                 refine_measured: bool = False) -> None:
        super().__init__(refine_measured=refine_measured)
        if not (sigma_color > 0 and lambda_value > 0 and lambda_gradient > 0):
            raise ValueError("sigma_color, lambda_value and lambda_gradient must be positive")
        if int(color_level) < 1:
            raise ValueError(f"color_level must be >= 1, got {color_level}")
        self.params = dict(sigma_color=float(sigma_color), color_level=int(color_level),
                           lambda_value=float(lambda_value),
                           lambda_gradient=float(lambda_gradient))

    def _predict(self, frame: RGBDFrame, timings: dict[str, float]) -> np.ndarray:
        measured_mask(frame.depth)
        with stage(timings, "fill"):
            return guided_fill(frame.depth, frame.rgb, **self.params)

    def describe(self) -> str:
        return "guided(" + ", ".join(f"{k}={v:g}" for k, v in self.params.items()) + ")"
