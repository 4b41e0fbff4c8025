"""Stereo depth camera models: the geometry, projector and depth behaviour of real devices at
their 640x480-class modes. Figures come from the makers' public datasheets (docs/simulation.md)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class CameraModel:
    name: str
    baseline_m: float          # left IR (reference) to right IR optical centre, along +x
    ir_hfov_deg: float         # horizontal field of view of the stereo imagers
    color_hfov_deg: float      # horizontal field of view of the colour camera
    color_offset_m: float      # colour optical centre from the left imager along +x (0: same)
    projector: bool            # active stereo: an IR dot projector lights the scene
    min_depth_m: float
    max_depth_m: float
    num_disparities: int       # SGBM search range (multiple of 16)
    block_size: int            # SGBM matching window
    rms_frac: float            # depth RMS error as a fraction of depth ...
    rms_at_m: float            # ... at this distance (grows with depth squared)
    preset: str                # config/<preset>.yaml: the driver's topics
    width: int = 640
    height: int = 480

    def ir_K(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        return _pinhole(self.ir_hfov_deg, width or self.width, height or self.height)

    def color_K(self, width: int | None = None, height: int | None = None) -> np.ndarray:
        return _pinhole(self.color_hfov_deg, width or self.width, height or self.height)

    def disparity_sigma_px(self, width: int | None = None) -> float:
        """Disparity noise (pixels) that gives the datasheet's RMS: sigma_z = z^2 sigma_d / (f b)."""
        fx = self.ir_K(width, None if width is None else round(width * 3 / 4))[0, 0]
        z = self.rms_at_m
        return self.rms_frac * z * fx * self.baseline_m / (z * z)

    def at_resolution(self, width: int, height: int) -> "CameraModel":
        """The same camera rendered smaller (tests, previews); the disparity range scales too."""
        scale = width / self.width
        ndisp = max(16, int(math.ceil(self.num_disparities * scale / 16)) * 16)
        block = max(3, int(round(self.block_size * max(scale, 0.5))) | 1)
        return replace(self, width=width, height=height, num_disparities=ndisp, block_size=block)


def _pinhole(hfov_deg: float, width: int, height: int) -> np.ndarray:
    """K of a centred pinhole in OpenCV pixel convention (pixel centres at integers)."""
    fx = width / 2.0 / math.tan(math.radians(hfov_deg) / 2.0)
    return np.array([[fx, 0.0, width / 2.0 - 0.5], [0.0, fx, height / 2.0 - 0.5], [0.0, 0.0, 1.0]])


#: D435: 50 mm, depth FOV 87x58, RGB 69x42, RGB 15 mm right of the left imager, <2% at 2 m.
#: D455: 95 mm, 87x58, RGB 90x65 (global shutter), <2% at 4 m. Gemini 335: 50 mm active and
#: passive stereo, depth 90x65, RGB 86x55, RGB 14.00 mm right of the left imager (Orbbec's
#: coordinate-system page), <=1.5% at 2 m, 0.10-20 m, a 256-disparity search at 1280 px
#: wide (128 at 640). ZED 2i: 120 mm passive, colour is the left imager (depth is published
#: in its frame), 110x70 (2.1 mm lens at VGA: 72 deg is the 4 mm lens), ~1% up to 3 m.
CAMERAS: dict[str, CameraModel] = {
    "d435": CameraModel("d435", 0.050, 87.0, 69.0, 0.015, True, 0.1, 6.0, 96, 7,
                        0.02, 2.0, "realsense_d435i"),
    "d455": CameraModel("d455", 0.095, 87.0, 90.0, -0.059, True, 0.4, 10.0, 128, 7,
                        0.02, 4.0, "realsense_d455"),
    "gemini335": CameraModel("gemini335", 0.050, 90.0, 86.0, 0.014, True, 0.1, 20.0, 128, 7,
                             0.015, 2.0, "orbbec_gemini335"),
    "zed2i": CameraModel("zed2i", 0.120, 72.0, 72.0, 0.0, False, 0.3, 20.0, 192, 9,
                         0.01, 3.0, "zed2i"),
}


def camera_model(name: str) -> CameraModel:
    try:
        return CAMERAS[name]
    except KeyError:
        raise ValueError(f"unknown camera '{name}': one of {', '.join(CAMERAS)}") from None
