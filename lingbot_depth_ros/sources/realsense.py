"""Direct RealSense capture (pyrealsense2), ROS-free.

`RealSenseSource.captures()` yields `RealSenseCapture`s: colour, depth aligned by librealsense
in device units and as an `RGBDFrame` in metres, factory intrinsics and a stamp. An unplugged
or silent camera reports `disconnected` and is reopened; a recording at its end, `ended`."""

from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Iterator

import numpy as np

from ..core.codec import ImageFields, encode_image, to_rgb8
from ..core.depth import DepthRange, depth_to_metres, metres_to_16uc1
from ..core.errors import LingbotDepthError, error_class
from ..core.frame import RGBDFrame
from ..core.outputs import CameraInfoFields
from ..core.pairing import DropCounter
from .realsense_streams import PipelineStream, SourceUnavailableError, StreamInfo, import_pyrealsense2

__all__ = ["FILTER_NAMES", "RealSenseCapture", "RealSenseSettings", "RealSenseSource",
           "SourceState", "SourceStatus", "SourceUnavailableError", "PipelineStream"]

#: librealsense post-processing filters, applied in this order whatever order they are given
FILTER_NAMES = ("decimation", "spatial", "temporal", "hole_filling")
#: how long one wait for frames blocks, so stop() is noticed quickly
_POLL_S = 0.1
#: ROS's 16UC1 depth is millimetres (REP 118)
_MM = 0.001
ALIGN_TARGETS = ("color", "depth")


IncompleteFramesetError = error_class("IncompleteFramesetError", "incomplete_frameset", None,
                                      "A frameset lacks its depth or colour frame.")
RepeatedFrameError = error_class("RepeatedFrameError", "repeated_frame", None,
                                 "The camera delivered a colour frame it delivered before.")


@dataclass(frozen=True)
class RealSenseSettings:
    serial: str = ""  #: camera serial number; empty = the first camera found
    width: int = 640
    height: int = 480
    fps: int = 30
    filters: tuple[str, ...] = ()  #: subset of FILTER_NAMES; none by default
    recording: str = ""  #: .bag / .db3 to play back instead of a camera
    repeat_playback: bool = False
    real_time: bool = True  #: play a recording at its own rate (False: as fast as read)
    frame_timeout_s: float = 3.0  #: no frames for this long = disconnected
    reconnect_interval_s: float = 1.0
    wait_for_device: bool = True  #: keep retrying when the first open fails
    valid_range: DepthRange = DepthRange()
    #: register depth to the colour camera (realsense-ros's aligned_depth_to_color), or the
    #: colour to the depth camera: cheaper when the depth camera has the wider view
    #: (docs/realsense.md)
    align_to: str = "color"
    frame_id: str = ""  #: "" = camera_<align_to>_optical_frame

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(self.filters))
        if self.align_to not in ALIGN_TARGETS:
            raise ValueError(f"align_to must be one of {', '.join(ALIGN_TARGETS)}, got "
                             f"'{self.align_to}'")
        if not self.frame_id:
            object.__setattr__(self, "frame_id", f"camera_{self.align_to}_optical_frame")
        unknown = [name for name in self.filters if name not in FILTER_NAMES]
        if unknown:
            raise ValueError(f"unknown RealSense filter(s) {', '.join(unknown)} "
                             f"(choose from {', '.join(FILTER_NAMES)})")
        if min(self.width, self.height, self.fps) <= 0:
            raise ValueError(f"need a positive size and rate, got {self.width}x{self.height} "
                             f"@ {self.fps} fps")
        if not (self.frame_timeout_s > 0 and self.reconnect_interval_s > 0):
            raise ValueError("frame_timeout_s and reconnect_interval_s must be positive")


class SourceState(str, enum.Enum):
    STARTING = "starting"
    STREAMING = "streaming"
    DISCONNECTED = "disconnected"  #: lost or not found; reconnect attempts continue
    ENDED = "ended"  #: a recording played to its end
    STOPPED = "stopped"


@dataclass
class SourceStatus:
    state: SourceState = SourceState.STARTING
    detail: str = ""
    serial: str = ""
    name: str = ""
    frames: int = 0
    connects: int = 0  #: successful opens (1 + reconnects)
    reconnect_attempts: int = 0  #: opens tried after the first connection was lost
    drops: dict[str, int] = field(default_factory=dict)


@dataclass
class RealSenseCapture:
    frame: RGBDFrame  #: rgb (the colour image), depth in metres (NaN = none), K, stamp
    depth_raw: np.ndarray  #: uint16 (H, W) depth aligned to colour, in device units
    depth_scale: float  #: metres per depth_raw unit
    camera_info: CameraInfoFields  #: of the camera both images are registered to
    frame_number: int

    @property
    def stamp_ns(self) -> int:
        return self.frame.stamp_ns

    def message_fields(self) -> tuple[ImageFields, ImageFields, CameraInfoFields]:
        """rgb8 colour, 16UC1 aligned depth in millimetres (REP 118) and camera info."""
        if abs(self.depth_scale - _MM) < 1e-9:
            depth_mm = self.depth_raw
        else:  # e.g. a D405 at 0.1 mm units: rescale so subscribers can assume mm
            depth_mm = metres_to_16uc1(self.depth_raw.astype(np.float32) * self.depth_scale)
        return (encode_image(self.frame.rgb, "rgb8"), encode_image(depth_mm, "16UC1"),
                self.camera_info)


def camera_info_from_profile(profile) -> CameraInfoFields:
    """CameraInfo fields from a librealsense video stream profile's intrinsics."""
    intr = profile.get_intrinsics()
    K = np.array([[intr.fx, 0.0, intr.ppx], [0.0, intr.fy, intr.ppy], [0.0, 0.0, 1.0]])
    info = CameraInfoFields.from_K(K, intr.height, intr.width)
    model = intr.model.name
    if model in ("kannala_brandt4", "ftheta"):
        return replace(info, distortion_model="equidistant", d=tuple(intr.coeffs[:4]))
    # brown_conrady and its modified/inverse variants use the plumb_bob coefficient order
    return replace(info, d=tuple(float(c) for c in intr.coeffs[:5]))


def build_filters(rs, names: tuple[str, ...]) -> list:
    """librealsense's recommended order; spatial/temporal work on disparity."""
    chosen = set(names)
    blocks = []
    if "decimation" in chosen:
        blocks.append(rs.decimation_filter())
    if chosen & {"spatial", "temporal"}:
        blocks.append(rs.disparity_transform(True))
        if "spatial" in chosen:
            blocks.append(rs.spatial_filter())
        if "temporal" in chosen:
            blocks.append(rs.temporal_filter())
        blocks.append(rs.disparity_transform(False))
    if "hole_filling" in chosen:
        blocks.append(rs.hole_filling_filter())
    return blocks


class StampClock:
    """Device timestamps (ms) -> ns since the epoch; a hardware clock is anchored to the host
    clock at its first frame, then advanced by its own deltas (no host jitter)."""

    def __init__(self, rs) -> None:
        self._host_domains = (rs.timestamp_domain.global_time, rs.timestamp_domain.system_time)
        self._offset_ns: int | None = None

    def __call__(self, device_ms: float, domain) -> int:
        device_ns = int(round(device_ms * 1e6))
        if domain in self._host_domains:
            return device_ns
        if self._offset_ns is None:
            self._offset_ns = time.time_ns() - device_ns
        return device_ns + self._offset_ns


def already_registered(info: StreamInfo) -> bool:
    """Depth and colour share intrinsics and sit at the same place (e.g. a D405, whose colour
    comes from the depth imager): alignment is the identity either way."""
    depth, color = info.depth_profile.get_intrinsics(), info.color_profile.get_intrinsics()
    same_intrinsics = all(getattr(depth, a) == getattr(color, a) for a in (
        "width", "height", "fx", "fy", "ppx", "ppy", "model", "coeffs"))
    extrinsics = info.depth_profile.get_extrinsics_to(info.color_profile)
    return (same_intrinsics and np.allclose(extrinsics.rotation, np.eye(3).ravel(), atol=1e-9)
            and np.allclose(extrinsics.translation, 0.0, atol=1e-9))


class FrameConverter:
    """frameset -> RealSenseCapture for one streaming session."""

    def __init__(self, rs, info: StreamInfo, settings: RealSenseSettings) -> None:
        self._rs = rs
        self._filters = build_filters(rs, settings.filters)
        # rs.align on an identity geometry still costs time (docs/benchmarks.md) and punches
        # one-pixel gaps (its footprint rounding), so it only runs when there is something to
        # register.
        self.aligns = "decimation" in settings.filters or not already_registered(info)
        self._to_color = settings.align_to == "color"
        target = rs.stream.color if self._to_color else rs.stream.depth
        self._align = rs.align(target) if self.aligns else None
        self._encoding = info.color_encoding
        self._scale = info.depth_scale
        self._range = settings.valid_range
        self._frame_id = settings.frame_id
        #: of the reference stream as delivered (decimation shrinks a depth reference)
        self.camera_info: CameraInfoFields | None = None
        self._K: np.ndarray | None = None
        self._clock = StampClock(rs)
        self._last_color_number: int | None = None

    def convert(self, frames) -> RealSenseCapture:
        if frames.size() < 2 or not frames.get_depth_frame() or not frames.get_color_frame():
            raise IncompleteFramesetError("frameset lacks depth or colour")
        color_number = frames.get_color_frame().get_frame_number()
        if color_number == self._last_color_number:
            # A pipeline refills a set with the last frame of a late stream: seen already.
            raise RepeatedFrameError(f"colour frame {color_number} again")
        self._last_color_number = color_number
        for block in self._filters:
            frames = block.process(frames).as_frameset()
        aligned = self._align.process(frames) if self.aligns else frames
        depth_frame, color_frame = aligned.get_depth_frame(), aligned.get_color_frame()
        # librealsense recycles frame buffers once released: copy out of them.
        depth_raw = np.array(depth_frame.get_data(), dtype=np.uint16, copy=True)
        if self.camera_info is None:
            reference = color_frame if self._to_color else depth_frame
            self.camera_info = camera_info_from_profile(
                reference.get_profile().as_video_stream_profile())
            self._K = self.camera_info.K
        color = np.asanyarray(color_frame.get_data())
        rgb = np.array(color) if self._encoding == "rgb8" else to_rgb8(color, self._encoding)
        scale = depth_frame.get_units() or self._scale
        depth_m = depth_to_metres(depth_raw, "16UC1", depth_scale=scale, valid_range=self._range)
        stamp_ns = self._clock(color_frame.get_timestamp(), color_frame.get_frame_timestamp_domain())
        frame = RGBDFrame(rgb=rgb, depth=depth_m, K=self._K, stamp_ns=stamp_ns,
                          frame_id=self._frame_id)
        return RealSenseCapture(frame=frame, depth_raw=depth_raw, depth_scale=float(scale),
                                camera_info=self.camera_info, frame_number=int(color_number))


class RealSenseSource:
    """Captures from one RealSense camera or recording, reconnecting after an unplug;
    `on_status` gets a SourceStatus copy on every state change."""

    def __init__(self, settings: RealSenseSettings = RealSenseSettings(),
                 open_stream: Callable[[], PipelineStream] | None = None,
                 on_status: Callable[[SourceStatus], None] | None = None) -> None:
        self._rs = import_pyrealsense2()
        self.settings = settings
        self._open_stream = open_stream or self._pipeline_stream
        self._on_status = on_status
        self.drops = DropCounter()
        self._status = SourceStatus()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stream = None
        self._converter: FrameConverter | None = None
        self._last_frame_at = 0.0

    def _pipeline_stream(self) -> PipelineStream:
        s = self.settings
        return PipelineStream(serial=s.serial, width=s.width, height=s.height, fps=s.fps,
                              recording=s.recording, repeat_playback=s.repeat_playback,
                              real_time=s.real_time)

    @property
    def status(self) -> SourceStatus:
        with self._lock:
            return replace(self._status, drops=self.drops.snapshot())

    def _set_state(self, state: SourceState, detail: str = "", **fields) -> None:
        with self._lock:
            changed = state != self._status.state or detail != self._status.detail
            self._status = replace(self._status, state=state, detail=detail, **fields)
        if changed and self._on_status is not None:
            self._on_status(self.status)

    def stop(self) -> None:
        """Ask a running `captures()` loop to finish (from any thread)."""
        self._stop.set()

    def captures(self) -> Iterator[RealSenseCapture]:
        """Yield captures until stop(), the end of a recording, or the generator is closed;
        SourceUnavailableError when the first open fails and `wait_for_device` is off."""
        self._stop.clear()
        try:
            while not self._stop.is_set():
                if self._stream is None and not self._connect():
                    self._stop.wait(self.settings.reconnect_interval_s)
                    continue
                capture = self._next_capture()
                if capture is not None:
                    yield capture
                elif self._status.state == SourceState.ENDED:
                    return
        finally:
            self._close_stream()
            if self._status.state != SourceState.ENDED:
                self._set_state(SourceState.STOPPED)

    def _connect(self) -> bool:
        status = self._status
        first = status.connects == 0
        if not first:
            self._set_state(status.state, status.detail,
                            reconnect_attempts=status.reconnect_attempts + 1)
        stream = None
        try:
            stream = self._open_stream()
            info = stream.start()
            converter = FrameConverter(self._rs, info, self.settings)
        except RuntimeError as exc:  # SourceUnavailableError, or librealsense's own errors
            if stream is not None:
                stream.stop()
            if first and not self.settings.wait_for_device:
                if isinstance(exc, SourceUnavailableError):
                    raise
                raise SourceUnavailableError(f"cannot open the RealSense camera: {exc}") from exc
            self._set_state(SourceState.DISCONNECTED, str(exc))
            return False
        self._stream, self._converter = stream, converter
        self._last_frame_at = time.monotonic()
        # The state turns to streaming with the first frame, so a camera that opens but
        # sends nothing stays "disconnected" instead of flapping.
        with self._lock:
            self._status = replace(self._status, serial=info.serial, name=info.name,
                                   connects=self._status.connects + 1)
        return True

    def _next_capture(self) -> RealSenseCapture | None:
        """One poll: a capture, or None after a timeout, a drop or a state change."""
        try:
            frames = self._stream.poll(_POLL_S)
        except RuntimeError as exc:  # librealsense raises when the device vanished mid-wait
            self._disconnect(f"camera error: {exc}")
            return None
        if frames is None:
            self._check_silence()
            return None
        self._last_frame_at = time.monotonic()
        try:
            capture = self._converter.convert(frames)
        except LingbotDepthError as exc:
            self.drops.add(exc.reason)
            return None
        with self._lock:
            self._status.frames += 1
        if self._status.state != SourceState.STREAMING:
            self._set_state(SourceState.STREAMING)
        return capture

    def _check_silence(self) -> None:
        stream = self._stream
        if stream.ended:
            self._close_stream()
            self._set_state(SourceState.ENDED, "end of recording")
            return
        timeout_s = self.settings.frame_timeout_s
        if stream.lost:
            self._disconnect("device removed")
        elif time.monotonic() - self._last_frame_at > timeout_s:
            self._disconnect(f"no frames for {timeout_s:g} s")

    def _disconnect(self, detail: str) -> None:
        self._close_stream()
        self._set_state(SourceState.DISCONNECTED, detail)

    def _close_stream(self) -> None:
        if self._stream is not None:
            self._stream.stop()
        self._stream, self._converter = None, None
