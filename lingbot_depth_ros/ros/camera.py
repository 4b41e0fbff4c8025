"""One camera of the node's rig (a rig of one for a single camera), with rclpy: its input
subscriptions, pairing, counters, lane into the batcher (core/batcher.py), outputs and its
own status in /diagnostics. Topics are the node's names inside the camera's namespace."""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..core import output_topics as table
from ..core.batcher import Lane
from ..core.frame import CompletionResult, RGBDFrame
from ..core.outputs import FrameOutputs, OutputBuilder
from ..core.pairing import DropCounter, Pair, StampPairer
from ..core.pipeline import AssembledFrame, FrameAssembler
from ..core.rig import CameraSpec
from ..core.runner import StageClock
from ..core.stamped import StampedImage, StampedInfo
from . import messages
from .diagnostics import NodeStats, RecentDrops, diagnostic_status, health, status_name
from .input_qos import REFRESH_PERIOD_S, InputSpec, InputSubscriptions
from .output_qos import qos_profile
from .qos_overrides import OUTPUT_OVERRIDES

_WARN_EVERY_S = 5.0


class RigCamera:
    """`node`: the rclpy node it lives in; `spec`: its name and configuration."""

    def __init__(self, node, spec: CameraSpec) -> None:
        self.node, self.spec, self.name, self.config = node, spec, spec.name, spec.config
        # A child logger per camera: rclpy throttles per logger, so one camera's warnings
        # never hide another's.
        self.log = node.get_logger().get_child(spec.name) if spec.name else node.get_logger()
        self.stats = NodeStats()
        self.drops = DropCounter()
        self._pair_lock = threading.Lock()
        self.pairer = StampPairer(self.config.slop, self.config.pair_queue_size, self.drops,
                                  clock_ns=time.monotonic_ns)
        self.recent_drops = RecentDrops(self.config.health_timeout)
        self.assembler = FrameAssembler(self.config, warn=self._without_camera_info)
        # Reusing the cloud buffer is safe: stage 2 publishes (copies) before the next build.
        self.builder = OutputBuilder(self.config.output_options, reuse_buffers=True)
        self.lane = Lane(spec.name, self.config.admission, self.drops,
                         burst_budget_s=self.config.burst_budget)
        self.inputs: InputSubscriptions | None = None
        self._missing_warned = False
        self._make_publishers()

    def topic(self, name: str) -> str:
        return self.spec.topic(name)

    @property
    def hardware_id(self) -> str:
        """The node's name for a rig of one; for a rig's camera the name a node of its own
        in the camera's namespace would have, so a rig reports as separate nodes did."""
        if not self.name:
            return self.node.get_fully_qualified_name()
        return f"{self.node.resolve_topic_name(self.name)}/{self.node.get_name()}"

    # -- set-up ---------------------------------------------------------------------------
    def _make_publishers(self) -> None:
        """The per-frame outputs of the output table (core/output_topics.py) it enables."""
        def publisher(topic: table.OutputTopic, msg_type):
            if not topic.enabled(self.config):
                return None
            return self.node.create_publisher(msg_type, self.topic(topic.name),
                                              qos_profile(topic.qos(self.config)),
                                              qos_overriding_options=OUTPUT_OVERRIDES)

        self.depth_pub = publisher(table.DEPTH, Image)
        self.info_pub = publisher(table.DEPTH_INFO, CameraInfo)
        self.mask_pub = publisher(table.SOURCE_MASK, Image)
        self.cloud_pub = publisher(table.POINTS, PointCloud2)
        self.rgbd_pub = self._make_rgbd_publisher() if table.RGBD.enabled(self.config) else None

    def _make_rgbd_publisher(self):
        """The CompletedRGBD publisher, or None (said once) where the message is not built."""
        problem = "lingbot_depth_ros.msg is not importable (pip install without colcon build)"
        if messages.CompletedRGBD is not None:
            try:
                return self.node.create_publisher(
                    messages.CompletedRGBD, self.topic(table.RGBD.name),
                    qos_profile(table.RGBD.qos(self.config)), qos_overriding_options=OUTPUT_OVERRIDES)
            except Exception as exc:  # generated Python found, typesupport library not loadable
                problem = f"CompletedRGBD cannot be published here ({type(exc).__name__}: {exc})"
        self.log.warning(f"{problem}: {self.topic(table.RGBD.name)} is disabled")
        return None

    def subscribe(self) -> None:
        c = self.config
        # Info first: when messages of all three are ready at once, the executor takes them in
        # creation order, so a pair then finds the camera info of its own stamp.
        self.inputs = InputSubscriptions(self.node, c.qos, c.queue_depth, [
            InputSpec(CameraInfo, self.topic(c.camera_info_topic), self._on_info),
            InputSpec(Image, self.topic(c.color_topic), functools.partial(self._receive, "color")),
            InputSpec(Image, self.topic(c.depth_topic), functools.partial(self._receive, "depth"))])
        if c.qos == "auto":
            self._qos_timer = self.node.create_timer(REFRESH_PERIOD_S, self.inputs.refresh)

    # -- executor thread: read and pair only ----------------------------------------------
    def _receive(self, stream: str, msg: Image) -> None:
        # Messages the RMW cannot deserialize never reach here: it drops them itself, and the
        # stamp-gap estimate counts them (docs/node.md, "Unreadable messages").
        wall, cpu = time.perf_counter(), time.thread_time()
        image = messages.stamped_image(msg)
        self.stats.count_received(stream, image.stamp_ns)
        self._add(stream, image, wall, cpu)

    def _on_info(self, msg: CameraInfo) -> None:
        self.stats.count_received("camera_info")
        info = messages.stamped_info(msg)
        with self._pair_lock:
            self.pairer.add_info(info, info.stamp_ns)

    def on_camera_frame(self, color: StampedImage, depth: StampedImage, info: StampedInfo) -> None:
        """A frame from a `source: realsense` camera's thread."""
        self.stats.count_received("camera_info")
        with self._pair_lock:
            self.pairer.add_info(info, info.stamp_ns)
        for stream, image in (("color", color), ("depth", depth)):
            self.stats.count_received(stream, image.stamp_ns)
            self._add(stream, image, time.perf_counter(), time.thread_time())

    def _add(self, stream: str, image: StampedImage, wall: float, cpu: float) -> None:
        """Pair `image`; its receive time counts from `wall`/`cpu` (when its callback began)."""
        with self._pair_lock:
            add = self.pairer.add_color if stream == "color" else self.pairer.add_depth
            pair = add(image.stamp_ns, image)
            image.receive_ms = (time.perf_counter() - wall) * 1e3
            image.receive_cpu_ms = (time.thread_time() - cpu) * 1e3
        if pair is not None:
            self.lane.put(pair)

    def expire_unpaired(self) -> None:
        with self._pair_lock:
            self.pairer.expire(int(self.config.pair_timeout * 1e9))

    # -- the batcher's worker threads -----------------------------------------------------
    def prepare(self, pair: Pair, completion_mode: bool) -> Prepared:
        """Stage 1 before the engine: decode and validate one pair (core/pipeline.py);
        raises an INPUT_ERRORS exception."""
        clock = StageClock()
        clock.add("receive", pair.color.receive_ms + pair.depth.receive_ms,
                  pair.color.receive_cpu_ms + pair.depth.receive_cpu_ms)
        self.assembler.completion_mode = completion_mode
        info = pair.info.fields if pair.info is not None else None
        item = self.assembler.assemble(pair.color, pair.depth, info, pair.paired_at_ns)
        if self.assembler.distortion_warning and not self.stats.distortion_warning:
            self.stats.distortion_warning = self.assembler.distortion_warning
        clock.lap("decode")
        return Prepared(self, pair, item, clock)

    def publish_completed(self, done: Completed, model: str, mode: str) -> None:
        """Stage 2: build every subscribed output and publish it."""
        done.clock.resume()
        item = done.prepared.item
        outputs = self.builder.build(
            item.frame, done.result, color=done.prepared.pair.color.fields, info=item.info,
            model=model, mode=mode, paired_at_ns=done.prepared.pair.paired_at_ns,
            with_cloud=_subscribed(self.cloud_pub), with_rgbd=_subscribed(self.rgbd_pub))
        done.clock.lap("outputs")
        self._publish(outputs)
        done.clock.lap("publish")
        self.stats.count_published(outputs.summary.latency_ms, done.clock.ms, done.clock.cpu_ms)

    def _publish(self, outputs: FrameOutputs) -> None:
        """Publish one frame's outputs as rclpy messages; stamp and frame id are the input
        colour image's. Buffers go in as bytes/array.array (ros/messages.py says why)."""
        header = messages.make_header(outputs.stamp_ns, outputs.frame_id)
        if self.depth_pub is not None:
            self.depth_pub.publish(messages.image_msg(outputs.depth, header))
            if outputs.camera_info is not None:
                self.info_pub.publish(messages.camera_info_msg(outputs.camera_info, header))
        if _subscribed(self.mask_pub):
            self.mask_pub.publish(messages.image_msg(outputs.source_mask, header))
        if outputs.cloud is not None:
            self.cloud_pub.publish(messages.cloud_msg(outputs.cloud, header))
        if outputs.color is not None:
            self.rgbd_pub.publish(messages.rgbd_msg(outputs, header))

    def _without_camera_info(self, message: str) -> None:
        self.stats.count_without_camera_info()
        self.warn_throttled(message)

    def warn_throttled(self, message: str) -> None:
        self.log.warning(message, throttle_duration_sec=_WARN_EVERY_S)

    # -- diagnostics ----------------------------------------------------------------------
    def queued(self) -> int:
        """Images received but neither published nor dropped yet."""
        with self._pair_lock:
            waiting = self.pairer.pending
        return waiting + 2 * self.lane.pending

    def status(self, extra_values: dict[str, str]):
        """This camera's DiagnosticStatus."""
        queued = self.queued()
        drops = self.drops.snapshot()
        self._warn_missing_once()
        state = health(self.stats, self.recent_drops.update(drops), queued, self.config.health_timeout)
        inputs = self.inputs.names() if self.inputs is not None else {}
        extra = {f"qos.{self.node.resolve_topic_name(t)}": p for t, p in inputs.items()}
        if self.name:
            extra = {"camera": self.name, "preset": self.spec.preset or "none", **extra}
        return diagnostic_status(self.stats, drops, queued, hardware_id=self.hardware_id,
                                 status=state, extra={**extra, **extra_values},
                                 name=status_name(self.name))

    def _warn_missing_once(self) -> None:
        missing = self.stats.missing_before_node()
        if any(missing.values()) and not self._missing_warned:
            self._missing_warned = True
            self.log.warning(
                f"images missing before the node (gaps in their stamps): {missing}; a driver without "
                "config/fastdds_large_data.xml loses large images in transport (docs/drivers.md), "
                "and the RMW drops images whose bytes it cannot deserialize (docs/node.md)")


@dataclass
class Prepared:
    """A decoded pair on its way to the engine."""

    camera: RigCamera
    pair: Pair
    item: AssembledFrame
    clock: StageClock

    @property
    def frame(self) -> RGBDFrame:
        return self.item.frame


@dataclass
class Completed:
    """A completed pair on its way from stage 1 to stage 2."""

    prepared: Prepared
    result: CompletionResult
    clock: StageClock


def _subscribed(publisher) -> bool:
    """Build an optional output only when someone listens (as depth_image_proc does)."""
    return publisher is not None and publisher.get_subscription_count() > 0
