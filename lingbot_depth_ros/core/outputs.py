"""Everything the node publishes for one completed frame, as plain data (ROS-free).

The live node (rclpy messages) and the offline bag tools (rosbags messages) both build their
outputs here, so replayed output equals live output byte for byte. Each output is a small
dataclass holding exactly the fields of its ROS message; the front ends only copy fields.
Clouds are `core.pointcloud.CloudFields`, whose `fields` are `pointcloud.PointField`
objects (.name, .offset, .datatype, .count).
"""

from __future__ import annotations

import array
import sys
import time
from dataclasses import dataclass

import numpy as np

from . import pointcloud
from .codec import ImageFields, encode_image
from .depth import metres_to_16uc1
from .errors import IntrinsicsError
from .frame import CompletionResult, RGBDFrame, validate_intrinsics
from .pointcloud import CloudFields

DEPTH_OUTPUT_ENCODINGS = ("32FC1", "16UC1")
MODES = ("completion", "monocular")
#: distortion coefficients below this are treated as zero (drivers publish 0.0 or ~1e-9)
_DISTORTION_EPS = 1e-9


@dataclass(frozen=True)
class CameraInfoFields:
    """The data-carrying fields of a sensor_msgs/CameraInfo (header excluded)."""

    height: int
    width: int
    distortion_model: str
    d: tuple[float, ...]
    k: tuple[float, ...]
    r: tuple[float, ...]
    p: tuple[float, ...]
    binning_x: int = 0
    binning_y: int = 0
    #: (x_offset, y_offset, height, width, do_rectify)
    roi: tuple[int, int, int, int, bool] = (0, 0, 0, 0, False)

    @classmethod
    def from_K(cls, K: np.ndarray, height: int, width: int) -> "CameraInfoFields":
        """An undistorted pinhole camera with matrix K (P = [K | 0], R = I)."""
        K = validate_intrinsics(K)
        p = np.zeros((3, 4))
        p[:, :3] = K
        return cls(height=int(height), width=int(width), distortion_model="plumb_bob",
                   d=(0.0,) * 5, k=tuple(map(float, K.ravel())),
                   r=tuple(map(float, np.eye(3).ravel())), p=tuple(map(float, p.ravel())))

    @classmethod
    def from_msg(cls, msg) -> CameraInfoFields:
        """The fields of a sensor_msgs/CameraInfo (rclpy or rosbags object)."""
        roi = msg.roi
        return cls(height=int(msg.height), width=int(msg.width), distortion_model=str(msg.distortion_model),
                   d=tuple(map(float, msg.d)), k=tuple(map(float, msg.k)), r=tuple(map(float, msg.r)),
                   p=tuple(map(float, msg.p)), binning_x=int(msg.binning_x), binning_y=int(msg.binning_y),
                   roi=(int(roi.x_offset), int(roi.y_offset), int(roi.height), int(roi.width),
                        bool(roi.do_rectify)))

    @property
    def K(self) -> np.ndarray:
        """The 3x3 camera matrix; raises IntrinsicsError when it is missing or unusable."""
        if len(self.k) != 9:
            raise IntrinsicsError(f"camera info K has {len(self.k)} values, need 9")
        return validate_intrinsics(np.asarray(self.k, dtype=np.float64).reshape(3, 3))

    @property
    def has_distortion(self) -> bool:
        return any(abs(float(c)) > _DISTORTION_EPS for c in self.d)

    def check_size(self, height: int, width: int) -> None:
        """Raise IntrinsicsError when the info describes another resolution than the image."""
        if (self.height, self.width) != (int(height), int(width)):
            raise IntrinsicsError(
                f"camera info is for {self.width}x{self.height} but the colour image is "
                f"{width}x{height}")

    def usability_problem(self, height: int, width: int) -> str:
        """Why this info cannot serve a height x width frame ("" when it can)."""
        try:
            self.check_size(height, width)
            self.K  # noqa: B018 - validates fx, fy and finiteness
        except IntrinsicsError as exc:
            return f"camera info unusable: {exc}"
        return ""

    def distortion_note(self) -> str:
        """The once-per-stream warning for distorted input ("" when there is no distortion)."""
        if not self.has_distortion:
            return ""
        return (f"camera info has non-zero distortion ({self.distortion_model} d={list(self.d)}); "
                "images are used as rectified")


def nominal_intrinsics(height: int, width: int) -> np.ndarray:
    """A stand-in K (90 deg horizontal field of view, centred) for frames without camera info.

    Engines need a K to build an RGBDFrame; depth completion does not depend on it, but
    anything metric in 3D does, so the node publishes no cloud or camera info with it.
    """
    f = width / 2.0
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True)
class OutputOptions:
    """What to build; mirrors the node's output parameters."""

    depth_encoding: str = "32FC1"
    cloud: bool = True
    cloud_decimation: int = 1
    #: points farther than this (metres along the optical axis) are left out; 0 = no cap
    cloud_max_range_m: float = 0.0
    #: True: an (H/d) x (W/d) grid with NaN points; False: only valid points, height 1
    cloud_organized: bool = True
    #: True: build the 32FC1 depth and the colour image for CompletedRGBD
    rgbd: bool = True

    def __post_init__(self) -> None:
        if self.depth_encoding not in DEPTH_OUTPUT_ENCODINGS:
            raise ValueError(f"depth_encoding must be one of {DEPTH_OUTPUT_ENCODINGS}, "
                             f"got '{self.depth_encoding}'")
        if int(self.cloud_decimation) < 1:
            raise ValueError(f"cloud_decimation must be >= 1, got {self.cloud_decimation}")
        if not self.cloud_max_range_m >= 0:
            raise ValueError(f"cloud_max_range_m must be >= 0, got {self.cloud_max_range_m}")


@dataclass(frozen=True)
class Summary:
    """The summary numbers of a CompletedRGBD message."""

    measured_fraction: float
    filled_fraction: float
    latency_ms: float
    inference_ms: float
    engine: str
    model: str
    mode: str


@dataclass(frozen=True)
class FrameOutputs:
    """All outputs of one frame. Stamp and frame id are the input colour image's."""

    stamp_ns: int
    frame_id: str
    #: /depth_completed in the configured encoding
    depth: ImageFields
    #: /depth_completed/source_mask (mono8, SourceMask values)
    source_mask: ImageFields
    #: /depth_completed/camera_info; None when the input had no camera info
    camera_info: CameraInfoFields | None
    #: /depth_completed/points; None when disabled or without camera info
    cloud: CloudFields | None
    summary: Summary
    #: CompletedRGBD.depth (always 32FC1); None when options.rgbd is off or without camera info
    depth_32fc1: ImageFields | None
    #: CompletedRGBD.rgb: the colour image exactly as received; None when depth_32fc1 is
    color: ImageFields | None


def depth_pixels(depth_m: np.ndarray, encoding: str) -> np.ndarray:
    """Completed metres -> the pixels of a 32FC1 (metres, NaN = none) or 16UC1 (millimetres,
    0 = none) image."""
    if encoding == "32FC1":
        return np.asarray(depth_m, dtype=np.float32)
    if encoding == "16UC1":
        return metres_to_16uc1(depth_m)
    raise ValueError(f"depth output encoding must be one of {DEPTH_OUTPUT_ENCODINGS}, got '{encoding}'")


class OutputBuilder:
    """Builds FrameOutputs for a stream of frames with fixed options.

    `reuse_buffers=True` writes every organised cloud, depth image and source mask into one
    `array.array` per output, kept between frames: cheaper (no fresh multi-megabyte
    allocation and no extra copy per frame; rclpy takes an array.array as message data
    without copying it), but their `data` then only stays valid until the next `build`. The
    node may do that (publishing copies before the next frame); anything that keeps outputs
    must not.
    """

    def __init__(self, options: OutputOptions = OutputOptions(),
                 reuse_buffers: bool = False) -> None:
        self.options = options
        self._max_depth = float(options.cloud_max_range_m) or None
        self._stride = int(options.cloud_decimation)
        self._reuse = bool(reuse_buffers)
        self._buffers: dict[str, array.array] = {}

    def _buffer(self, name: str, nbytes: int) -> array.array:
        buffer = self._buffers.get(name)
        if buffer is not None and len(buffer) == nbytes:
            return buffer
        buffer = array.array("B", bytes(nbytes))
        if self._reuse:
            self._buffers[name] = buffer
        return buffer

    def _image(self, name: str, pixels: np.ndarray, encoding: str) -> ImageFields:
        """encode_image, into this output's reused buffer when buffers are reused."""
        if not self._reuse or sys.byteorder != "little":  # messages hold little-endian data
            return encode_image(pixels, encoding)
        pixels = np.ascontiguousarray(pixels)
        encode_image(pixels[:1], encoding)  # checks dtype and channels (one row's copy)
        data = self._buffer(name, pixels.nbytes)
        np.copyto(np.frombuffer(data, dtype=pixels.dtype).reshape(pixels.shape), pixels)
        height, width = pixels.shape[:2]
        return ImageFields(height=height, width=width, encoding=encoding, is_bigendian=0,
                           step=pixels.nbytes // height, data=data)

    def cloud(self, depth_m: np.ndarray, rgb: np.ndarray, K: np.ndarray,
              positive_or_nan: bool = True) -> CloudFields:
        """XYZRGB PointCloud2 fields of the completed depth, coloured by the input image: the
        one cloud builder (the node, `bag process` and the bag outputs all publish this).

        An organised cloud is unprojected straight into an `array.array('B')`: rclpy's
        PointCloud2 takes that without a copy, where bytes would be copied once more (and
        tobytes() before that; cost in docs/benchmarks.md).
        """
        if not self.options.cloud_organized:
            points = pointcloud.finite_points(pointcloud.organized_points(
                depth_m, K, rgb, stride=self._stride, max_depth=self._max_depth))
            step = points.dtype.itemsize
            return CloudFields(height=1, width=int(points.size), fields=pointcloud.XYZRGB_FIELDS,
                               point_step=step, row_step=step * int(points.size),
                               data=points.tobytes(), is_dense=True)
        height, width = pointcloud.cloud_shape(*depth_m.shape, self._stride)
        step = pointcloud.XYZRGB_DTYPE.itemsize
        data = self._buffer("cloud", height * width * step)
        points = np.frombuffer(data, dtype=pointcloud.XYZRGB_DTYPE).reshape(height, width)
        # Engine.complete returns positive finite depth or NaN: no need to enforce it again,
        # unless kept REP 117 infinities (CompletionResult.infinite) must become NaN points.
        pointcloud.organized_points(depth_m, K, rgb, stride=self._stride,
                                    max_depth=self._max_depth, out=points,
                                    positive_or_nan=positive_or_nan)
        return CloudFields(height=height, width=width, fields=pointcloud.XYZRGB_FIELDS,
                           point_step=step, row_step=step * width, data=data, is_dense=False)

    def build(self, frame: RGBDFrame, result: CompletionResult, *,
              color: ImageFields | None = None, info: CameraInfoFields | None = None,
              model: str = "", mode: str = "completion", paired_at_ns: int | None = None,
              with_cloud: bool = True, with_rgbd: bool = True) -> FrameOutputs:
        """Build every output of one completed frame.

        `color` is the input colour image as received (CompletedRGBD.rgb; re-encoded as rgb8
        from the frame when not given). `info` is the input camera info; without it there is
        no cloud, no CompletedRGBD and no camera info output. `paired_at_ns` (time.monotonic_ns when the input
        pair was formed) makes latency_ms the wall time up to now; without it, latency_ms is
        the engine's own time. `with_cloud` / `with_rgbd` False skip those outputs for this
        frame (the node skips what nobody subscribes to).
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
        options = self.options
        depth = result.depth
        depth_out = self._image("depth", depth_pixels(depth, options.depth_encoding),
                                options.depth_encoding)
        depth_32 = rgb_fields = None
        if options.rgbd and with_rgbd and info is not None:  # CompletedRGBD carries the info
            depth_32 = (depth_out if options.depth_encoding == "32FC1"
                        else self._image("depth_32fc1", depth_pixels(depth, "32FC1"), "32FC1"))
            rgb_fields = color if color is not None else encode_image(frame.rgb, "rgb8")
        cloud = (self.cloud(depth, frame.rgb, frame.K, positive_or_nan=not result.infinite)
                 if options.cloud and with_cloud and info is not None else None)
        inference_ms = result.total_ms
        latency_ms = (inference_ms if paired_at_ns is None
                      else (time.monotonic_ns() - int(paired_at_ns)) / 1e6)
        summary = Summary(
            measured_fraction=float(np.count_nonzero(frame.valid)) / max(1, frame.depth.size),
            filled_fraction=result.filled_fraction, latency_ms=float(latency_ms),
            inference_ms=float(inference_ms), engine=result.engine, model=model, mode=mode)
        return FrameOutputs(stamp_ns=int(frame.stamp_ns), frame_id=frame.frame_id,
                            depth=depth_out, source_mask=self._image("source_mask", result.source, "mono8"),
                            camera_info=info, cloud=cloud, summary=summary,
                            depth_32fc1=depth_32, color=rgb_fields)
