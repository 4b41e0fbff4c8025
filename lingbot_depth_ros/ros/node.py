"""`lingbot_depth_node`: registered color + depth in; completed depth, clouds, CompletedRGBD out.

Subscription callbacks take ordinary rclpy messages (any RMW, XCDR1 or XCDR2), keep their
pixel buffers as they came (ros/messages.py) and pair them by stamp (core.pairing), then
admit the pair into the frame runner (core/runner.py, shared with `bag process`) under the
`admission` policy, so the executor never waits for inference. One worker decodes and
completes, the other builds the outputs (core.outputs) and publishes. Every
received image ends up published, counted as dropped under a reason, or still queued (see
ros/diagnostics.py). Messages the RMW cannot deserialize are dropped by the RMW itself.

Topics (relative, so a namespace or remap moves them; resolved names for the root namespace):
  in:  color/image_raw, depth/image_raw, color/camera_info (names set by parameters)
  out: depth_completed, depth_completed/camera_info, depth_completed/points,
       depth_completed/source_mask, depth_completed/rgbd, depth_completed/engine (latched),
       /diagnostics
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from dataclasses import dataclass

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2

from ..core.frame import CompletionResult, RGBDFrame
from ..core.allocator import HeapTrimmer
from ..core.outputs import CameraInfoFields, FrameOutputs, OutputBuilder
from ..core.pipeline import INPUT_ERRORS, AssembledFrame, FrameAssembler, complete, effective_mode
from ..core import output_topics as table
from ..core.pairing import DropCounter, Pair, StampPairer
from ..core.runner import Admission, FrameRunner, StageClock
from ..core.stamped import StampedImage, StampedInfo
from ..core.threads import set_math_threads
from ..engines.base import Engine
from . import messages
from .process_setup import prepare_node_process
from .diagnostics import NodeStats, RecentDrops, diagnostic_array, health
from .engine_keeper import EngineKeeper
from .input_qos import REFRESH_PERIOD_S, InputSpec, InputSubscriptions
from .node_process import run_node
from .output_qos import qos_profile
from .params import NODE_NAME, NodeConfig, declare_parameters
from .qos_overrides import OUTPUT_OVERRIDES, warn_unapplied

#: parameters any rclpy node accepts besides ours
_BUILTIN_PARAMS = ("use_sim_time", "start_type_description_service")
_WARN_EVERY_S = 5.0


class LingbotDepthNode(Node):
    """`engine`: an engine already made, used instead of loading the configured one (under
    the same fallback policy; its maker closes it)."""

    def __init__(self, engine: Engine | None = None, **node_kwargs) -> None:
        super().__init__(NODE_NAME, **node_kwargs)
        try:
            self._start(engine)
        except BaseException:  # a start-up error or a stop signal: undo what was built
            self.destroy_node()
            raise

    def _start(self, engine: Engine | None) -> None:
        self.config: NodeConfig = declare_parameters(self)
        set_math_threads(self.config.math_threads)  # process-wide (core/threads.py)
        self.camera = None  # source: realsense (declares realsense.* before the check below)
        if self.config.source == "realsense":
            from ..sources.realsense_ros import RealSenseRosSource
            self.camera = RealSenseRosSource.from_parameters(self, self.config.valid_range)
        self.undeclared_overrides = self._check_overrides()
        self.stats = NodeStats()
        self._missing_warned = False  # the one warning about images missing before the node
        self.heap_trimmer = HeapTrimmer(self.config.heap_trim_period)
        self.drops = DropCounter()
        self._pair_lock = threading.Lock()
        self.pairer = StampPairer(self.config.slop, self.config.pair_queue_size, self.drops,
                                  clock_ns=time.monotonic_ns)
        self.recent_drops = RecentDrops(self.config.health_timeout)
        self.fatal_error = ""  # set when the engine failed with fallback none (see _stop)
        self.assembler = FrameAssembler(self.config, warn=self._without_camera_info)
        self.keeper = EngineKeeper(self, self.config, self.stats, self._stop, engine=engine)
        # Reusing the cloud buffer is safe here: _process publishes (copies) before the next build.
        self.builder = OutputBuilder(self.config.output_options, reuse_buffers=True)
        self._make_publishers()
        # Before the inputs: a `source: realsense` camera hands over frames from its own
        # thread as soon as it starts. Live `every` is without bound: the executor must never
        # wait on the engine.
        admission = Admission(self.config.admission, self.drops,
                              burst_budget_s=self.config.burst_budget)
        self.runner = FrameRunner(admission, self.drops, self._complete_pair, self._publish_completed,
                                  self._warn_throttled)
        self.inputs = self._make_subscriptions()
        warn_unapplied(self)  # qos_overrides.* that no publisher took (ros/qos_overrides.py)
        self._timer = self.create_timer(self.config.diagnostics_period, self.publish_diagnostics)
        # Images whose partner never comes leave the queue as counted "unpaired" drops.
        self._expiry_timer = self.create_timer(min(self.config.pair_timeout, 0.5), self._expire_unpaired)
        self.get_logger().info(
            f"completing {self.resolve_topic_name(self.config.depth_topic)} with "
            f"{self.engine.describe()} -> {self.resolve_topic_name('depth_completed')} "
            f"(admission {self.config.admission})")

    # -- set-up ---------------------------------------------------------------------------
    def _check_overrides(self) -> list[str]:
        """Names given in --params-file/-p that no parameter of this node has (typos)."""
        # rclpy ignores overrides nobody declares; _parameter_overrides is where it keeps them.
        given = getattr(self, "_parameter_overrides", {})
        unknown = sorted(n for n in given if not self.has_parameter(n)
                         and n not in _BUILTIN_PARAMS and not n.startswith("qos_overrides."))
        for name in unknown:
            self.get_logger().warning(f"parameter '{name}' is not a parameter of {NODE_NAME}; ignored")
        return unknown

    @property
    def engine(self) -> Engine:
        return self.keeper.engine

    @property
    def model_id(self) -> str:
        return self.keeper.model_id

    def _stop(self, reason: str) -> None:
        """The engine failed with fallback none (a worker thread): stop the node's context
        from the executor thread (the pair-expiry timer, within half a second; no guard
        condition, which EventsExecutor does not take), so spinning ends and the process exits."""
        self.fatal_error = reason

    def _make_publishers(self) -> None:
        """The per-frame outputs of the output table (core/output_topics.py) it enables."""
        def publisher(topic: table.OutputTopic, msg_type):
            if not topic.enabled(self.config):
                return None
            return self.create_publisher(msg_type, topic.name, qos_profile(topic.qos(self.config)),
                                         qos_overriding_options=OUTPUT_OVERRIDES)

        self.depth_pub = publisher(table.DEPTH, Image)
        self.info_pub = publisher(table.DEPTH_INFO, CameraInfo)
        self.mask_pub = publisher(table.SOURCE_MASK, Image)
        self.cloud_pub = publisher(table.POINTS, PointCloud2)
        self.rgbd_pub = self._make_rgbd_publisher() if table.RGBD.enabled(self.config) else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)

    def _make_rgbd_publisher(self):
        """The CompletedRGBD publisher, or None (said once) where the message is not built."""
        problem = "lingbot_depth_ros.msg is not importable (pip install without colcon build)"
        if messages.CompletedRGBD is not None:
            try:
                return self.create_publisher(messages.CompletedRGBD, table.RGBD.name,
                                             qos_profile(table.RGBD.qos(self.config)),
                                             qos_overriding_options=OUTPUT_OVERRIDES)
            except Exception as exc:  # generated Python found, typesupport library not loadable
                problem = f"CompletedRGBD cannot be published here ({type(exc).__name__}: {exc})"
        self.get_logger().warning(f"{problem}: depth_completed/rgbd is disabled")
        return None

    def _make_subscriptions(self) -> InputSubscriptions | None:
        c = self.config
        if self.camera is not None:  # frames come from the camera thread instead of topics
            self.camera.start(on_frame=self._on_camera_frame)
            return None
        # Info first: when messages of all three are ready at once, the executor takes them in
        # creation order, so a pair then finds the camera info of its own stamp.
        inputs = InputSubscriptions(self, c.qos, c.queue_depth, [
            InputSpec(CameraInfo, c.camera_info_topic, self._on_info),
            InputSpec(Image, c.color_topic, functools.partial(self._receive, "color")),
            InputSpec(Image, c.depth_topic, functools.partial(self._receive, "depth"))])
        if c.qos == "auto":
            self._qos_timer = self.create_timer(REFRESH_PERIOD_S, inputs.refresh)
        return inputs

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

    def _on_camera_frame(self, color: StampedImage, depth: StampedImage, info: StampedInfo) -> None:
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
            self.runner.admission.put(pair)

    def _expire_unpaired(self) -> None:
        if self.fatal_error:  # set by a worker (_stop); the context is shut down from here
            self.context.try_shutdown()
            return
        with self._pair_lock:
            self.pairer.expire(int(self.config.pair_timeout * 1e9))

    # -- the runner's worker threads (core/runner.py) --------------------------------------
    def _complete_pair(self, pair: Pair) -> _Completed:
        """Stage 1: decode, validate and complete one pair."""
        clock = StageClock()
        clock.add("receive", pair.color.receive_ms + pair.depth.receive_ms,
                  pair.color.receive_cpu_ms + pair.depth.receive_cpu_ms)
        item = self._frame_of(pair)
        clock.lap("decode")
        result = complete(lambda frame: self.keeper.complete(frame, INPUT_ERRORS), item)
        clock.lap("engine")
        return _Completed(pair, item.frame, item.info, result, clock)

    def _publish_completed(self, done: _Completed) -> None:
        """Stage 2: build every subscribed output and publish it."""
        done.clock.resume()
        outputs = self.builder.build(
            done.frame, done.result, color=done.pair.color.fields, info=done.info,
            model=self.model_id, mode=self.effective_mode, paired_at_ns=done.pair.paired_at_ns,
            with_cloud=_subscribed(self.cloud_pub), with_rgbd=_subscribed(self.rgbd_pub))
        done.clock.lap("outputs")
        self._publish(outputs)
        done.clock.lap("publish")
        self.stats.count_published(outputs.summary.latency_ms, done.clock.ms, done.clock.cpu_ms)
        if self.heap_trimmer.maybe_trim():  # between frames, outside the timed stages
            self.stats.count_heap_trim(self.heap_trimmer.last_ms)

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

    @property
    def effective_mode(self) -> str:
        return effective_mode(self.engine.name, self.config.mode)

    def _frame_of(self, pair: Pair) -> AssembledFrame:
        """Decode and validate one pair (core/pipeline.py); raises an INPUT_ERRORS exception."""
        self.assembler.completion_mode = self.effective_mode == "completion"
        info = pair.info.fields if pair.info is not None else None
        item = self.assembler.assemble(pair.color, pair.depth, info, pair.paired_at_ns)
        if self.assembler.distortion_warning and not self.stats.distortion_warning:
            self.stats.distortion_warning = self.assembler.distortion_warning
        return item

    def _without_camera_info(self, message: str) -> None:
        self.stats.count_without_camera_info()
        self._warn_throttled(message)

    # -- diagnostics and shutdown ---------------------------------------------------------
    def _warn_throttled(self, message: str) -> None:
        self.get_logger().warning(message, throttle_duration_sec=_WARN_EVERY_S)

    def queued(self) -> int:
        """Images received but neither published nor dropped yet."""
        with self._pair_lock:
            waiting = self.pairer.pending
        return waiting + 2 * self.runner.pending

    def publish_diagnostics(self) -> None:
        queued = self.queued()
        if queued == 0 and self.heap_trimmer.maybe_trim():  # idle: no stream, no frame
            self.stats.count_heap_trim(self.heap_trimmer.last_ms)
        drops = self.drops.snapshot()
        self._warn_missing_once()
        status = health(self.stats, self.recent_drops.update(drops), queued,
                        self.config.health_timeout)
        inputs = self.inputs.names() if self.inputs is not None else {}
        extra = {f"qos.{self.resolve_topic_name(t)}": p for t, p in inputs.items()}
        self.diag_pub.publish(diagnostic_array(
            self.stats, drops, queued, self.get_clock().now().to_msg(),
            hardware_id=self.get_fully_qualified_name(), status=status, extra=extra))

    def _warn_missing_once(self) -> None:
        missing = self.stats.missing_before_node()
        if any(missing.values()) and not self._missing_warned:
            self._missing_warned = True
            self.get_logger().warning(
                f"images missing before the node (gaps in their stamps): {missing}; a driver without "
                "config/fastdds_large_data.xml loses large images in transport (docs/drivers.md), "
                "and the RMW drops images whose bytes it cannot deserialize (docs/node.md)")

    def destroy_node(self) -> None:
        """Stop the camera and workers, close the engine; only once, and also for a node
        whose constructor raised part-way (it calls this, and so may a context shutdown)."""
        if getattr(self, "_destroyed", False):
            return
        self._destroyed = True
        for part in ("camera", "runner"):
            if getattr(self, part, None) is not None:
                getattr(self, part).close()
        keeper = getattr(self, "keeper", None)
        if keeper is not None:
            keeper.close()
            self.get_logger().info(f"engine {keeper.engine.name} closed")
        super().destroy_node()


@dataclass
class _Completed:
    """A completed pair on its way from stage 1 to stage 2."""

    pair: Pair
    frame: RGBDFrame
    info: CameraInfoFields | None
    result: CompletionResult
    clock: StageClock


def _subscribed(publisher) -> bool:
    """Build an optional output only when someone listens (as depth_image_proc does)."""
    return publisher is not None and publisher.get_subscription_count() > 0


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (`lingbot_depth_node` enters through ros/node_main.py);
    start-up errors and stop signals are handled in ros/node_process.py."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    dds_note = prepare_node_process(os.environ)  # this process only (ros/process_setup.py)

    return run_node(LingbotDepthNode, args, NODE_NAME, started_note=dds_note)
