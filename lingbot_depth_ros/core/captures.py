"""Load capture folders of the examples layout into RGBDFrames: ``rgb.png|jpg``,
``raw_depth.png`` (16-bit sensor units, 0 = none) and ``intrinsics.txt`` (3x3 K)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .depth import DEFAULT_DEPTH_SCALE, DepthRange, depth_to_metres
from .errors import IntrinsicsError, error_class
from .frame import RGBDFrame, validate_intrinsics

RGB_NAMES = ("rgb.png", "rgb.jpg", "rgb.jpeg")
DEPTH_NAME = "raw_depth.png"
INTRINSICS_NAME = "intrinsics.txt"


CaptureError = error_class("CaptureError", "bad_capture", ValueError,
                           "A capture folder or one of its files is missing or unreadable.")


def read_intrinsics(path: str | Path) -> np.ndarray:
    """Read a 3x3 camera matrix (9 whitespace-separated numbers) as float64."""
    path = Path(path)
    try:
        values = np.array(path.read_text().split(), dtype=np.float64)
    except OSError as exc:
        raise CaptureError(f"cannot read intrinsics {path}: {exc}") from exc
    except ValueError as exc:
        raise IntrinsicsError(f"{path} holds something that is not a number: {exc}") from exc
    if values.size != 9:
        raise IntrinsicsError(f"{path} holds {values.size} numbers, a 3x3 K needs 9")
    return validate_intrinsics(values.reshape(3, 3))


def _decode_image(path: str | Path, flags: int, what: str) -> np.ndarray:
    """Read and decode an image file ourselves: cv2.imread prints its own warnings on
    stderr for a missing or undecodable file, beside the one error line."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise CaptureError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise CaptureError(f"cannot read {what} {path}: not an image OpenCV can decode")
    return image


def read_rgb(path: str | Path) -> np.ndarray:
    """Read an 8-bit colour image as uint8 (H, W, 3) in RGB order."""
    image = _decode_image(path, cv2.IMREAD_COLOR, "colour image")  # BGR, alpha dropped
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_raw_depth(path: str | Path) -> np.ndarray:
    """Read a single-channel 16-bit depth PNG as uint16 (H, W) raw sensor units."""
    raw = _decode_image(path, cv2.IMREAD_UNCHANGED, "depth image")
    if raw.dtype != np.uint16 or raw.ndim != 2:
        raise CaptureError(f"{path} must be single-channel 16-bit, got {raw.dtype} {raw.shape}")
    return raw


def rgb_path(folder: str | Path) -> Path:
    folder = Path(folder)
    for name in RGB_NAMES:
        if (folder / name).is_file():
            return folder / name
    raise CaptureError(f"{folder} holds none of {', '.join(RGB_NAMES)}")


def is_capture(folder: Path) -> bool:
    return (folder.is_dir() and (folder / DEPTH_NAME).is_file()
            and (folder / INTRINSICS_NAME).is_file()
            and any((folder / n).is_file() for n in RGB_NAMES))


def find_captures(root: str | Path) -> list[Path]:
    """Capture folders under `root` (itself, or its direct subfolders), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise CaptureError(f"{root} is not a directory")
    if is_capture(root):
        return [root]
    found = sorted((p for p in root.iterdir() if is_capture(p)), key=lambda p: p.name)
    if not found:
        raise CaptureError(
            f"no capture folders in {root} (each needs {'|'.join(RGB_NAMES)}, {DEPTH_NAME}, "
            f"{INTRINSICS_NAME})")
    return found


def load_capture(folder: str | Path, depth_scale: float = DEFAULT_DEPTH_SCALE,
                 valid_range: DepthRange = DepthRange()) -> RGBDFrame:
    """Load one capture folder as an RGBDFrame, depth in metres (`depth_scale` per raw unit;
    NaN = none or outside `valid_range`)."""
    folder = Path(folder)
    rgb = read_rgb(rgb_path(folder))
    raw = read_raw_depth(folder / DEPTH_NAME)
    depth = depth_to_metres(raw, "16UC1", depth_scale=depth_scale, valid_range=valid_range)
    K = read_intrinsics(folder / INTRINSICS_NAME)
    return RGBDFrame(rgb=rgb, depth=depth, K=K, frame_id=folder.name)
