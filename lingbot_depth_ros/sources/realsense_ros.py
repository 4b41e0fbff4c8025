"""rclpy side of direct RealSense capture: run a RealSenseSource inside a node.

A capture thread publishes the raw streams under realsense-ros's names (docs/realsense.md)
and hands each (colour, depth, info) triple to the node, which pairs and completes them like
subscribed messages; the source's state is logged and published on /diagnostics."""

from __future__ import annotations

import threading
from typing import Any, Callable

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image

from ..core.config import Param
from ..core.depth import DepthRange
from ..core.stamped import StampedImage, StampedInfo
from ..ros import messages
from .realsense import (FILTER_NAMES, RealSenseCapture, RealSenseSettings, RealSenseSource,
                        SourceState, SourceStatus)

#: align_to -> stream -> topic
RAW_TOPICS = {
    "color": {"color": "camera/camera/color/image_raw",
              "color_info": "camera/camera/color/camera_info",
              "depth": "camera/camera/aligned_depth_to_color/image_raw",
              "depth_info": "camera/camera/aligned_depth_to_color/camera_info"},
    "depth": {"color": "camera/camera/aligned_color_to_depth/image_raw",
              "color_info": "camera/camera/aligned_color_to_depth/camera_info",
              "depth": "camera/camera/depth/image_rect_raw",
              "depth_info": "camera/camera/depth/camera_info"},
}
PREFIX = "realsense."


PARAMS = (
    Param("serial", "", "Serial number of the camera to open; empty = the first one found."),
    Param("width", 640, "Stream width (colour and depth), pixels."),
    Param("height", 480, "Stream height (colour and depth), pixels."),
    Param("fps", 30, "Frame rate of both streams."),
    Param("filters", "", "Comma-separated librealsense depth filters, applied before "
             f"alignment in this order: {', '.join(FILTER_NAMES)}. Empty = none."),
    Param("align_to", "color", "color: depth registered to the colour camera (as "
             "realsense-ros's aligned_depth_to_color); depth: colour registered to the depth "
             "camera (cheaper; the depth stays as measured)."),
    Param("recording", "", "Play this .bag/.db3 recording instead of opening a camera."),
    Param("repeat_playback", False, "Loop the recording."),
    Param("publish_raw", True, "Publish the raw streams under realsense-ros topic names."),
    Param("frame_timeout", 3.0, "No frames for this many seconds = disconnected."),
    Param("reconnect_interval", 1.0, "Seconds between attempts to reopen a lost camera."),
    Param("frame_id", "", "frame_id of images and camera info; empty = "
             "camera_<align_to>_optical_frame."),
)


def settings_from_values(values: dict[str, Any],
                         valid_range: DepthRange) -> tuple[RealSenseSettings, bool]:
    """RealSenseSettings and publish_raw from parameter values (names without the prefix)."""
    filters = tuple(f.strip() for f in str(values["filters"]).split(",") if f.strip())
    settings = RealSenseSettings(
        serial=values["serial"], width=values["width"], height=values["height"],
        fps=values["fps"], filters=filters, recording=values["recording"],
        repeat_playback=values["repeat_playback"], frame_timeout_s=values["frame_timeout"],
        reconnect_interval_s=values["reconnect_interval"], valid_range=valid_range,
        align_to=values["align_to"], frame_id=values["frame_id"])
    return settings, bool(values["publish_raw"])


def declare_realsense_parameters(node, valid_range: DepthRange) -> tuple[RealSenseSettings, bool]:
    """Declare the `realsense.*` parameters (read-only) and return their settings."""
    from rcl_interfaces.msg import ParameterDescriptor

    declared = node.declare_parameters("", [
        (PREFIX + p.name, p.default, ParameterDescriptor(description=p.description, read_only=True))
        for p in PARAMS])
    values = {p.name[len(PREFIX):]: p.value for p in declared}
    return settings_from_values(values, valid_range)


_LEVELS = {SourceState.STREAMING: DiagnosticStatus.OK, SourceState.ENDED: DiagnosticStatus.OK,
           SourceState.STARTING: DiagnosticStatus.WARN,
           SourceState.DISCONNECTED: DiagnosticStatus.ERROR,
           SourceState.STOPPED: DiagnosticStatus.WARN}


def status_message(status: SourceStatus, node_name: str) -> DiagnosticStatus:
    values = {"state": status.state.value, "detail": status.detail, "serial": status.serial,
              "camera": status.name, "frames": status.frames, "connects": status.connects,
              "reconnect_attempts": status.reconnect_attempts}
    values.update({f"dropped.{reason}": n for reason, n in sorted(status.drops.items())})
    message = status.state.value + (f": {status.detail}" if status.detail else "")
    return DiagnosticStatus(level=_LEVELS[status.state], name=f"{node_name}: realsense camera",
                            message=message, hardware_id=status.serial,
                            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])


class RealSenseRosSource:
    """Capture thread + raw publishers + status reporting for one node."""

    def __init__(self, node, settings: RealSenseSettings, publish_raw: bool = True,
                 open_stream=None, status_period_s: float = 1.0) -> None:
        self._node = node
        self._on_frame: Callable[[StampedImage, StampedImage, StampedInfo], None] | None = None
        self.settings = settings
        self.source = RealSenseSource(settings, open_stream=open_stream,
                                      on_status=self._on_status)
        qos = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
        self._pubs = {}
        if publish_raw:
            for key, topic in RAW_TOPICS[settings.align_to].items():
                kind = CameraInfo if key.endswith("info") else Image
                self._pubs[key] = node.create_publisher(kind, topic, qos)
        self._diag_pub = node.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._timer = node.create_timer(status_period_s, self.publish_status)
        self._thread = threading.Thread(target=self._run, name="realsense_capture", daemon=True)

    @classmethod
    def from_parameters(cls, node, valid_range: DepthRange) -> "RealSenseRosSource":
        """Declare the `realsense.*` parameters on `node` and build the source they describe."""
        settings, publish_raw = declare_realsense_parameters(node, valid_range)
        return cls(node, settings, publish_raw=publish_raw)

    def start(self, on_frame: Callable[[StampedImage, StampedImage, StampedInfo], None] | None = None
              ) -> "RealSenseRosSource":
        """Start capturing. `on_frame(color, depth, info)` gets every capture (published or
        not) as the node's received types, on the capture thread."""
        self._on_frame = on_frame
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for capture in self.source.captures():
                self._handle(capture)
        except Exception as exc:  # noqa: BLE001 - the node must outlive its camera thread
            self._node.get_logger().error(f"realsense capture stopped: {type(exc).__name__}: {exc}")

    def _handle(self, capture: RealSenseCapture) -> None:
        color_fields, depth_fields, info_fields = capture.message_fields()
        stamp, frame_id = capture.stamp_ns, self.settings.frame_id
        if self._pubs:
            header = messages.make_header(stamp, frame_id)
            info = messages.camera_info_msg(info_fields, header)
            self._pubs["color"].publish(messages.image_msg(color_fields, header))
            self._pubs["color_info"].publish(info)
            self._pubs["depth"].publish(messages.image_msg(depth_fields, header))
            self._pubs["depth_info"].publish(info)
        if self._on_frame is not None:
            self._on_frame(StampedImage(stamp, frame_id, color_fields),
                           StampedImage(stamp, frame_id, depth_fields),
                           StampedInfo(stamp, frame_id, info_fields))

    def _on_status(self, status: SourceStatus) -> None:
        logger = self._node.get_logger()
        text = f"realsense {status.serial or 'camera'}: {status.state.value}" + (
            f" ({status.detail})" if status.detail else "")
        if status.state == SourceState.DISCONNECTED:
            logger.warning(text + "; retrying")
        else:
            logger.info(text)
        self.publish_status()

    def publish_status(self) -> None:
        array = DiagnosticArray(status=[status_message(self.source.status, self._node.get_name())])
        array.header.stamp = self._node.get_clock().now().to_msg()
        self._diag_pub.publish(array)

    @property
    def status(self) -> SourceStatus:
        return self.source.status

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the capture thread and release the camera."""
        self.source.stop()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._timer.cancel()
