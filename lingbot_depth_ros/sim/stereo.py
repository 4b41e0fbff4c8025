"""Stereo matching as a depth camera does it: semi-global matching of the rectified IR pair
(OpenCV StereoSGBM), then the drivers' post-processing: left-right consistency check,
speckle filter and range limits. Then registration of the depth to the colour camera."""

from __future__ import annotations

import cv2
import numpy as np

from .cameras import CameraModel

#: left-right check tolerance (pixels) and the largest blob the speckle filter removes (share
#: of the image's pixels) with its disparity step (pixels)
LR_MAX_DIFF_PX = 1.0
SPECKLE_AREA_SHARE, SPECKLE_STEP_PX = 0.0006, 1.0


def _matcher(camera: CameraModel) -> cv2.StereoSGBM:
    block = camera.block_size
    return cv2.StereoSGBM.create(
        minDisparity=0, numDisparities=camera.num_disparities, blockSize=block,
        P1=8 * block * block, P2=32 * block * block, disp12MaxDiff=-1, preFilterCap=31,
        uniquenessRatio=15, speckleWindowSize=0, speckleRange=0, mode=cv2.StereoSGBM_MODE_SGBM_3WAY)


def match(left: np.ndarray, right: np.ndarray, camera: CameraModel) -> np.ndarray:
    """Disparity of the left image (pixels, float32, NaN = no match) after the left-right
    check and the speckle filter."""
    matcher = _matcher(camera)
    # OpenCV leaves the first numDisparities columns unmatched; a device matches them against
    # what its right imager saw. Padding with black lets SGBM search there; the region only
    # the left imager sees (about f b / z wide) then fails the checks, as on the device.
    pad = camera.num_disparities
    padded = [cv2.copyMakeBorder(image, 0, 0, pad, pad, cv2.BORDER_CONSTANT, value=0)
              for image in (left, right)]
    raw_left = matcher.compute(padded[0], padded[1])[:, pad:-pad]  # int16 1/16 px, <0 invalid
    # the right image's disparity: match the mirrored pair, mirror back
    raw_right = matcher.compute(np.ascontiguousarray(padded[1][:, ::-1]),
                                np.ascontiguousarray(padded[0][:, ::-1]))[:, ::-1][:, pad:-pad]
    raw_left = np.where(raw_left > 0, raw_left, 0).astype(np.int16)
    max_speckle = max(4, int(SPECKLE_AREA_SHARE * left.size))
    cv2.filterSpeckles(raw_left, 0, max_speckle, int(SPECKLE_STEP_PX * 16))
    disparity = raw_left.astype(np.float32) / 16.0
    disparity[raw_left <= 0] = np.nan
    return left_right_check(disparity, raw_right.astype(np.float32) / 16.0)


def left_right_check(disparity: np.ndarray, right_disparity: np.ndarray) -> np.ndarray:
    """NaN where the right image's match does not point back to the same left pixel."""
    h, w = disparity.shape
    xs = np.arange(w, dtype=np.float32)[None, :].repeat(h, 0)
    valid = np.isfinite(disparity)
    target = np.rint(xs - np.where(valid, disparity, 0)).astype(np.int64)
    inside = valid & (target >= 0)
    rows = np.arange(h)[:, None].repeat(w, 1)
    back = np.full_like(disparity, np.nan)
    back[inside] = right_disparity[rows[inside], target[inside]]
    agree = inside & (back > 0) & (np.abs(back - disparity) <= LR_MAX_DIFF_PX)
    return np.where(agree, disparity, np.nan).astype(np.float32)


def disparity_to_depth(disparity: np.ndarray, camera: CameraModel, fx: float) -> np.ndarray:
    """Depth (metres, NaN = none) within the camera's range limits."""
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = fx * camera.baseline_m / disparity
    keep = np.isfinite(depth) & (depth >= camera.min_depth_m) & (depth <= camera.max_depth_m)
    return np.where(keep, depth, np.nan).astype(np.float32)


def register_depth(depth: np.ndarray, K_depth: np.ndarray, K_color: np.ndarray,
                   offset_x_m: float, color_shape: tuple[int, int]) -> np.ndarray:
    """Depth of the left imager re-projected into the colour camera (same orientation,
    `offset_x_m` along x), nearest surface wins; each depth pixel covers as many colour pixels
    as the focal-length ratio asks, as the RealSense align does."""
    h, w = color_shape
    if offset_x_m == 0.0 and np.allclose(K_depth, K_color) and depth.shape == (h, w):
        return depth.copy()
    v, u = np.nonzero(np.isfinite(depth))
    z = depth[v, u].astype(np.float64)
    x = (u - K_depth[0, 2]) / K_depth[0, 0] * z - offset_x_m
    y = (v - K_depth[1, 2]) / K_depth[1, 1] * z
    uc = K_color[0, 0] * x / z + K_color[0, 2]
    vc = K_color[1, 1] * y / z + K_color[1, 2]
    cover = max(1, int(np.ceil(K_color[0, 0] / K_depth[0, 0])))
    out = np.full(h * w, np.inf)
    start = (cover - 1) / 2.0
    for dy in range(cover):
        for dx in range(cover):
            ui = np.rint(uc - start + dx).astype(np.int64)
            vi = np.rint(vc - start + dy).astype(np.int64)
            keep = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h)
            np.minimum.at(out, vi[keep] * w + ui[keep], z[keep])
    out = out.reshape(h, w)
    return np.where(np.isfinite(out), out, np.nan).astype(np.float32)
