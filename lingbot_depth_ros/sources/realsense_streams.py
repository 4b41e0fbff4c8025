"""Open librealsense streams: a camera or recording through `rs.pipeline`, or any `rs.device`
(e.g. a software device) sensor by sensor into an `rs.syncer`; both offer start/poll/stop,
`lost` and `ended`, so reconnect logic lives in one place (realsense.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import error_class


SourceUnavailableError = error_class("SourceUnavailableError", "source_unavailable", RuntimeError,
                                     "pyrealsense2 is missing, or the camera / recording cannot be opened.")


def import_pyrealsense2():
    """`import pyrealsense2`, or SourceUnavailableError saying how to get it."""
    # The pyrealsense2 wheel embeds its own Fast DDS. Loaded before ROS's libfastdds (which
    # `import rclpy` loads), a process that then creates an rclpy node crashes at exit (a
    # double free in the exit handlers); loaded after it, both work. So ROS goes first.
    try:
        import rclpy  # noqa: F401
    except ImportError:
        pass  # no ROS in this environment: nothing to order
    try:
        import pyrealsense2 as rs
    except ImportError as exc:
        raise SourceUnavailableError(
            f"pyrealsense2 cannot be imported ({exc}); install it with `pip install "
            "pyrealsense2` (extra `realsense`) and, on Debian/Ubuntu, `apt-get install "
            "libusb-1.0-0`") from exc
    return rs


#: librealsense colour format name -> core.codec encoding
COLOR_FORMATS = {"rgb8": "rgb8", "bgr8": "bgr8", "rgba8": "rgba8", "bgra8": "bgra8", "y8": "mono8"}


@dataclass
class StreamInfo:
    """What a started stream delivers."""

    color_profile: Any  # rs.video_stream_profile
    depth_profile: Any  # rs.video_stream_profile
    depth_scale: float  # metres per Z16 unit, from the depth sensor
    serial: str
    name: str
    playback: bool = False

    @property
    def color_encoding(self) -> str:
        fmt = self.color_profile.format().name
        try:
            return COLOR_FORMATS[fmt]
        except KeyError:
            raise SourceUnavailableError(
                f"colour stream format {fmt} is not supported (need one of "
                f"{', '.join(COLOR_FORMATS)})") from None


def _device_name(rs, device) -> tuple[str, str]:
    def info(key):
        return device.get_info(key) if device.supports(key) else ""
    return info(rs.camera_info.serial_number), info(rs.camera_info.name)


class PipelineStream:
    """A USB camera (optionally by serial number) or a recording, through rs.pipeline."""

    def __init__(self, serial: str = "", width: int = 640, height: int = 480, fps: int = 30,
                 recording: str = "", repeat_playback: bool = False,
                 real_time: bool = True) -> None:
        self.serial, self.width, self.height, self.fps = serial, width, height, fps
        self.recording, self.repeat_playback, self.real_time = recording, repeat_playback, real_time
        self._rs = import_pyrealsense2()
        self._pipeline = None
        self._playback = None
        self._device = None
        self._lost = threading.Event()

    def _config(self):
        rs = self._rs
        config = rs.config()
        if self.recording:
            if not Path(self.recording).is_file():
                raise SourceUnavailableError(f"recording {self.recording} does not exist")
            config.enable_device_from_file(str(self.recording), self.repeat_playback)
            config.enable_stream(rs.stream.depth)  # whatever profile was recorded
            config.enable_stream(rs.stream.color)
            return config
        if self.serial:
            config.enable_device(self.serial)
        config.enable_stream(rs.stream.depth, self.width, self.height, rs.format.z16, self.fps)
        config.enable_stream(rs.stream.color, self.width, self.height, rs.format.rgb8, self.fps)
        return config

    def _check_connected(self, context) -> None:
        """Fail fast: pipeline.start waits seconds for a camera that is not there."""
        rs = self._rs
        serials = [d.get_info(rs.camera_info.serial_number) for d in context.query_devices()]
        if not serials:
            raise SourceUnavailableError("no RealSense camera connected")
        if self.serial and self.serial not in serials:
            raise SourceUnavailableError(
                f"RealSense camera {self.serial} not connected (found {', '.join(serials)})")

    def start(self) -> StreamInfo:
        rs = self._rs
        context = rs.context()
        if not self.recording:
            self._check_connected(context)
        pipeline = rs.pipeline(context)
        config = self._config()
        what = self.recording or (f"camera {self.serial}" if self.serial else "camera")
        try:
            profile = pipeline.start(config)
        except RuntimeError as exc:
            raise SourceUnavailableError(f"cannot start RealSense {what}: {exc}") from exc
        self._pipeline, self._device = pipeline, profile.get_device()
        self._lost.clear()
        if self._device.is_playback():
            self._playback = self._device.as_playback()
            self._playback.set_real_time(self.real_time)
        else:
            context.set_devices_changed_callback(self._on_devices_changed)
        serial, name = _device_name(rs, self._device)
        return StreamInfo(
            color_profile=profile.get_stream(rs.stream.color).as_video_stream_profile(),
            depth_profile=profile.get_stream(rs.stream.depth).as_video_stream_profile(),
            depth_scale=float(self._device.first_depth_sensor().get_depth_scale()),
            serial=serial, name=name, playback=self._playback is not None)

    def _on_devices_changed(self, event) -> None:
        # Called on librealsense's thread; only set a flag the reading thread checks.
        if self._device is not None and event.was_removed(self._device):
            self._lost.set()

    def poll(self, timeout_s: float):
        ok, frames = self._pipeline.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        return frames if ok else None

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @property
    def ended(self) -> bool:
        return (self._playback is not None
                and self._playback.current_status() == self._rs.playback_status.stopped)

    def stop(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # already stopped by librealsense after an unplug
        self._pipeline = self._playback = self._device = None

