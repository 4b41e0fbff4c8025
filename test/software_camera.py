"""A RealSense camera made of numpy images: librealsense's own `software_device`.

Tests and benchmarks run the real librealsense stack (syncer, align, filters, recorder,
playback) without hardware by injecting frames into a software device with a Z16 depth
sensor and an RGB8 colour sensor, each with its own intrinsics, the depth units of the
device and depth-to-colour extrinsics. `record_db3` writes such a stream with
librealsense's recorder, the file format `config.enable_device_from_file` plays back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from lingbot_depth_ros.sources.realsense_streams import (COLOR_FORMATS, SourceUnavailableError, StreamInfo,
                                                         import_pyrealsense2)

_DEPTH_UID, _COLOR_UID = 0, 1


@dataclass
class SoftwareCameraSpec:
    """What the fake camera streams. Depth and colour sizes come from their own K."""

    color_K: np.ndarray
    color_size: tuple[int, int]  # (width, height)
    depth_K: np.ndarray | None = None  # None: the colour intrinsics (depth already registered)
    depth_size: tuple[int, int] | None = None  # None: the colour size
    fps: int = 30
    depth_units: float = 0.001  # metres per Z16 unit
    #: depth -> colour extrinsics: row-major 3x3 rotation and translation in metres
    rotation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    translation: tuple[float, float, float] = (0.0, 0.0, 0.0)
    serial: str = "000000000001"
    name: str = "LingBot software RealSense"
    distortion: tuple[float, ...] = field(default=(0.0,) * 5)


def _intrinsics(rs, K: np.ndarray, size: tuple[int, int], coeffs: tuple[float, ...]):
    intr = rs.intrinsics()
    intr.width, intr.height = int(size[0]), int(size[1])
    intr.fx, intr.fy = float(K[0, 0]), float(K[1, 1])
    intr.ppx, intr.ppy = float(K[0, 2]), float(K[1, 2])
    intr.model = rs.distortion.brown_conrady
    intr.coeffs = [float(c) for c in coeffs]
    return intr


def _video_stream(rs, kind, uid: int, fmt, bpp: int, intr, fps: int):
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = kind, 0, uid
    stream.width, stream.height, stream.fps = intr.width, intr.height, fps
    stream.bpp, stream.fmt, stream.intrinsics = bpp, fmt, intr
    return stream


class SoftwareCamera:
    """A software_device with a "Stereo Module" (Z16) and an "RGB Camera" (RGB8) sensor.

    Open its sensors with `DeviceStream(camera.device, ...)` (librealsense pipelines cannot
    see software devices in 2.59), then `push` frame pairs.
    """

    def __init__(self, spec: SoftwareCameraSpec) -> None:
        rs = self._rs = import_pyrealsense2()
        self.spec = spec
        color_size = spec.color_size
        depth_size = spec.depth_size or color_size
        depth_K = spec.color_K if spec.depth_K is None else spec.depth_K
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, spec.serial)
        self.device.register_info(rs.camera_info.name, spec.name)
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        self.depth_profile = self.depth_sensor.add_video_stream(_video_stream(
            rs, rs.stream.depth, _DEPTH_UID, rs.format.z16, 2,
            _intrinsics(rs, depth_K, depth_size, (0.0,) * 5), spec.fps), True
        ).as_video_stream_profile()
        self.color_profile = self.color_sensor.add_video_stream(_video_stream(
            rs, rs.stream.color, _COLOR_UID, rs.format.rgb8, 3,
            _intrinsics(rs, spec.color_K, color_size, spec.distortion), spec.fps), True
        ).as_video_stream_profile()
        self.depth_sensor.add_read_only_option(rs.option.depth_units, float(spec.depth_units))
        extrinsics = rs.extrinsics()
        extrinsics.rotation = [float(v) for v in spec.rotation]
        extrinsics.translation = [float(v) for v in spec.translation]
        self.depth_profile.register_extrinsics_to(self.color_profile, extrinsics)
        self._frame_number = 0
        self._start_ms = time.time() * 1e3

    @property
    def streaming(self) -> bool:
        """Both sensors are started; frames pushed before that are lost."""
        return all(sensor.get_active_streams() for sensor in (self.depth_sensor, self.color_sensor))

    def push(self, rgb: np.ndarray, depth_raw: np.ndarray,
             timestamp_ms: float | None = None) -> int:
        """Inject one colour (uint8 HxWx3 RGB) + depth (uint16 Z16 units) pair; return its number.

        Both frames carry the same timestamp (global time, ms; by default the start time plus
        one frame period per pair, as a camera's clock advances) and frame number. The syncer
        only waits for a partner frame when timestamps advance at the actual-fps metadata.
        """
        rs = self._rs
        number = self._frame_number
        self._frame_number += 1
        if timestamp_ms is None:
            timestamp_ms = self._start_ms + number * 1000.0 / self.spec.fps
        for sensor, profile, image, bpp in (
                (self.depth_sensor, self.depth_profile, depth_raw, 2),
                (self.color_sensor, self.color_profile, rgb, 3)):
            if image.shape[:2] != (profile.height(), profile.width()):
                raise ValueError(f"{profile.stream_type()} image is "
                                 f"{image.shape[1]}x{image.shape[0]},"
                                 f" the stream is {profile.width()}x{profile.height()}")
            frame = rs.software_video_frame()
            frame.pixels = np.ascontiguousarray(image)  # the binding copies the buffer
            frame.stride, frame.bpp = profile.width() * bpp, bpp
            frame.timestamp, frame.domain = float(timestamp_ms), rs.timestamp_domain.global_time
            frame.frame_number, frame.profile = number, profile
            if bpp == 2:
                frame.depth_units = float(self.spec.depth_units)
            sensor.set_metadata(rs.frame_metadata_value.actual_fps, int(self.spec.fps * 1000))
            sensor.on_video_frame(frame)
        return number


def record_db3(path: str | Path, spec: SoftwareCameraSpec,
               pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> int:
    """Record colour/depth pairs through librealsense's recorder; return the pair count.

    librealsense 2.59 writes its recordings as rosbag2 SQLite files and insists on a
    `.db3` name; older releases wrote ROS 1 `.bag` files, which playback still reads.
    """
    rs = import_pyrealsense2()
    camera = SoftwareCamera(spec)
    recorder = rs.recorder(str(path), camera.device)
    sink = rs.frame_queue(64)  # streaming needs a consumer; the recorder taps the sensors
    camera.depth_sensor.open(camera.depth_profile)
    camera.color_sensor.open(camera.color_profile)
    camera.depth_sensor.start(sink)
    camera.color_sensor.start(sink)
    count = 0
    period_ms = 1000.0 / spec.fps
    try:
        for count, (rgb, depth_raw) in enumerate(pairs, start=1):
            camera.push(rgb, depth_raw, timestamp_ms=1.7e12 + count * period_ms)
            while sink.poll_for_frame():
                pass
    finally:
        for sensor in (camera.depth_sensor, camera.color_sensor):
            sensor.stop()
            sensor.close()
        recorder.pause()
        del recorder  # the file is finished when the recorder is destroyed
    return count


class DeviceStream:
    """Stream depth + colour of an `rs.device` by opening its sensors into one rs.syncer, as a
    pipeline does inside: the `open_stream` of a RealSenseSource over a software device, which
    librealsense pipelines cannot find (2.59)."""

    def __init__(self, device, width: int | None = None, height: int | None = None,
                 fps: int | None = None, queue_size: int = 4) -> None:
        self._rs = import_pyrealsense2()
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.queue_size = queue_size  # framesets kept when the reader falls behind
        self._open: list = []
        self._syncer = None

    def _pick(self, stream) -> tuple[Any, Any]:
        rs = self._rs
        wanted_formats = (rs.format.z16,) if stream == rs.stream.depth else tuple(
            getattr(rs.format, name) for name in COLOR_FORMATS)
        for sensor in self.device.query_sensors():
            for profile in sensor.get_stream_profiles():
                if profile.stream_type() != stream or profile.format() not in wanted_formats:
                    continue
                video = profile.as_video_stream_profile()
                if ((self.width is None or video.width() == self.width)
                        and (self.height is None or video.height() == self.height)
                        and (self.fps is None or video.fps() == self.fps)):
                    return sensor, video
        raise SourceUnavailableError(
            f"device has no {stream} stream at {self.width}x{self.height} {self.fps} fps")

    def start(self) -> StreamInfo:
        rs = self._rs
        depth_sensor, depth_profile = self._pick(rs.stream.depth)
        color_sensor, color_profile = self._pick(rs.stream.color)
        self._syncer = rs.syncer(self.queue_size)
        for sensor, profile in ((depth_sensor, depth_profile), (color_sensor, color_profile)):
            sensor.open(profile)
            sensor.start(self._syncer)
            self._open.append(sensor)
        serial, name = (self.device.get_info(key) for key in (rs.camera_info.serial_number,
                                                               rs.camera_info.name))
        scale = depth_sensor.as_depth_sensor().get_depth_scale()
        return StreamInfo(color_profile=color_profile, depth_profile=depth_profile,
                          depth_scale=float(scale), serial=serial, name=name)

    def poll(self, timeout_s: float):
        ok, frames = self._syncer.try_wait_for_frames(max(1, int(timeout_s * 1000)))
        return frames if ok else None

    lost = False
    ended = False

    def stop(self) -> None:
        for sensor in self._open:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass  # the device went away under us
        self._open.clear()
