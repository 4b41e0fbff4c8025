"""One frame pipeline for the live node and `bag process`, ROS-free: received images become a
validated RGBDFrame, and `complete` runs the engine, so offline and live drop and complete
frames alike (docs/internals.md)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from .codec import COLOR_ENCODINGS, DEPTH_ENCODINGS, ImageFields, decode_fields, to_rgb8
from .depth import Infinities, check_registered, depth_to_metres, require_some_valid
from .errors import (BufferSizeError, EncodingError, IntrinsicsError, InvalidDepthError,
                     ShapeMismatchError, UnregisteredError)
from .frame import CompletionResult, RGBDFrame
from .outputs import CameraInfoFields, nominal_intrinsics
from .stamped import StampedImage

log = logging.getLogger(__name__)

#: engines that fill measured depth without a network (engines/registry.py makes them)
CLASSICAL_ENGINES = ("guided", "nearest", "telea")

#: errors caused by the input frame: drop it, never blame (or replace) the engine
INPUT_ERRORS = (EncodingError, BufferSizeError, ShapeMismatchError, InvalidDepthError,
                IntrinsicsError, UnregisteredError)


def effective_mode(engine_name: str, mode: str) -> str:
    """Classical engines always complete measured depth, whatever `mode` asks."""
    return "completion" if engine_name in CLASSICAL_ENGINES else mode


class EncodedImage(Protocol):
    """A received image that is not a raw sensor_msgs/Image (e.g. a bag's CompressedImage):
    it decodes itself and its encoding is checked by its decoder."""

    stamp_ns: int
    frame_id: str

    def decode_color(self) -> np.ndarray: ...  # uint8 (H, W, 3) RGB

    def decode_depth(self) -> tuple[str, np.ndarray]: ...  # (encoding, raw units)


@dataclass
class AssembledFrame:
    frame: RGBDFrame
    #: usable camera info of the colour camera, None without (then no cloud/camera info out)
    info: CameraInfoFields | None
    #: the colour image as received when it was a raw Image (CompletedRGBD.rgb), else None
    color: ImageFields | None
    #: time.monotonic_ns when the pair formed (for latency_ms)
    paired_at_ns: int
    #: REP 117 +Inf/-Inf of a 32FC1 depth, restored after completion (None when it has none)
    infinities: Infinities | None = None
    #: log time at which the pair was complete (bags; 0 live)
    log_time_ns: int = 0


class FrameAssembler:
    """Decodes and validates one colour/depth pair; raises an INPUT_ERRORS exception for bad
    input. `warn` says why a frame goes out without camera info (the caller throttles)."""

    def __init__(self, config, completion_mode: bool = True,
                 warn: Callable[[str], None] | None = None) -> None:
        self.config, self.completion_mode = config, completion_mode
        self._warn = warn or (lambda text: log.warning("%s", text))
        self.without_camera_info = 0
        self.distortion_warning = ""
        self._unregistered_said = False

    def assemble(self, color: StampedImage | EncodedImage, depth: StampedImage | EncodedImage,
                 info: CameraInfoFields | None, paired_at_ns: int = 0,
                 log_time_ns: int = 0) -> AssembledFrame:
        # Encodings by name first: a depth encoding on the colour topic must read as a wrong
        # encoding, not as a buffer of the wrong size.
        for image, allowed in ((color, COLOR_ENCODINGS), (depth, DEPTH_ENCODINGS)):
            if isinstance(image, StampedImage) and image.encoding not in allowed:
                raise EncodingError(f"encoding '{image.encoding}' is not one of {', '.join(allowed)}")
        self._check_registered(color.frame_id, depth.frame_id)
        if isinstance(color, StampedImage):
            rgb, received = to_rgb8(decode_fields(color.fields), color.encoding), color.fields
        else:
            rgb, received = color.decode_color(), None
        if isinstance(depth, StampedImage):
            encoding, raw = depth.encoding, decode_fields(depth.fields)
            infinities = Infinities.of(raw, encoding)
        else:  # compressedDepth keeps no infinities
            (encoding, raw), infinities = depth.decode_depth(), None
        if raw.shape[:2] != rgb.shape[:2]:
            raise ShapeMismatchError(
                f"colour is {rgb.shape[1]}x{rgb.shape[0]} but depth is {raw.shape[1]}x{raw.shape[0]}:"
                " subscribe to depth registered to colour")
        metres = depth_to_metres(raw, encoding, self.config.depth_scale, self.config.valid_range)
        if self.completion_mode:
            require_some_valid(metres)
        usable = self.camera_info(info, *rgb.shape[:2])
        K = usable.K if usable is not None else nominal_intrinsics(*rgb.shape[:2])
        frame = RGBDFrame(rgb=np.ascontiguousarray(rgb), depth=metres, K=K, stamp_ns=color.stamp_ns,
                          frame_id=color.frame_id)
        return AssembledFrame(frame, usable, received, paired_at_ns, infinities, log_time_ns)

    def _check_registered(self, color_frame_id: str, depth_frame_id: str) -> None:
        try:
            check_registered(color_frame_id, depth_frame_id, self.config.assume_registered)
        except UnregisteredError as exc:
            if not self._unregistered_said:  # once; the drops are counted as "unregistered"
                self._unregistered_said = True
                log.error("dropping every pair: %s", exc)
            raise

    def camera_info(self, info: CameraInfoFields | None, height: int, width: int
                    ) -> CameraInfoFields | None:
        """The pair's usable camera info, or None (then: depth only, no cloud, a warning)."""
        problem = "no camera info received yet"
        if info is not None:
            problem = info.usability_problem(height, width)
            if not problem:
                if not self.distortion_warning and info.distortion_note():
                    self.distortion_warning = info.distortion_note()
                    log.warning("%s", self.distortion_warning)
                return info
        self.without_camera_info += 1
        self._warn(f"{problem}: depth only, without cloud or camera info")
        return None


def complete(engine_complete: Callable[[RGBDFrame], CompletionResult],
             item: AssembledFrame) -> CompletionResult:
    """The engine's result for an assembled frame, with REP 117 too far / too close kept,
    not filled."""
    result = engine_complete(item.frame)
    return item.infinities.restore(result) if item.infinities is not None else result
