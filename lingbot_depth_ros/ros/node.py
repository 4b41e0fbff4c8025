"""`lingbot_depth_node`: registered color + depth in; completed depth, clouds, CompletedRGBD out,
for one camera or a rig of several (the `cameras` parameter, docs/rig.md) with one engine.

Per camera (ros/camera.py), subscription callbacks take ordinary rclpy messages (any RMW,
XCDR1 or XCDR2), keep their pixel buffers as they came (ros/messages.py) and pair them by
stamp (core.pairing), then admit the pair into the camera's lane of the batching runner
(core/batcher.py) under its `admission` policy, so the executor never waits for inference.
One worker decodes the cameras' ready pairs and completes them in one engine call per input
shape, the other builds each camera's outputs (core.outputs) and publishes. Every received
image ends up published, counted as dropped under a reason, or still queued, per camera (see
ros/diagnostics.py). Messages the RMW cannot deserialize are dropped by the RMW itself.

Topics (relative, so a namespace or remap moves them; a rig's camera has them inside its own
namespace; resolved names for the root namespace):
  in:  color/image_raw, depth/image_raw, color/camera_info (names set by parameters)
  out: depth_completed, depth_completed/camera_info, depth_completed/points,
       depth_completed/source_mask, depth_completed/rgbd, depth_completed/engine (latched),
       /diagnostics (one status per camera)
"""

from __future__ import annotations

import logging
import os

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from std_msgs.msg import Header

from ..core import output_topics as table
from ..core.allocator import HeapTrimmer
from ..core.batcher import BatchRunner, Lane
from ..core.pipeline import INPUT_ERRORS, effective_mode
from ..core.threads import set_math_threads
from ..engines.base import Engine
from .camera import Completed, Prepared, RigCamera
from .engine_keeper import EngineKeeper, SharedStatus
from .node_process import run_node
from .params import NODE_NAME, NodeConfig, declare_parameters, declare_rig
from .process_setup import prepare_node_process
from .qos_overrides import warn_unapplied

#: parameters any rclpy node accepts besides ours
_BUILTIN_PARAMS = ("use_sim_time", "start_type_description_service")


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
        self.cameras = [RigCamera(self, spec) for spec in declare_rig(self, self.config)]
        self._camera_of_lane = {camera.lane.name: camera for camera in self.cameras}
        self.undeclared_overrides = self._check_overrides()
        self.heap_trimmer = HeapTrimmer(self.config.heap_trim_period)
        self.fatal_error = ""  # set when the engine failed with fallback none (see _stop)
        self.keeper = EngineKeeper(self, self.config, SharedStatus([c.stats for c in self.cameras]),
                                   self._stop, engine=engine,
                                   topics=[c.topic(table.ENGINE_TOPIC.name) for c in self.cameras])
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        # Before the inputs: a `source: realsense` camera hands over frames from its own
        # thread as soon as it starts. Live `every` is without bound: the executor must never
        # wait on the engine.
        self.runner = BatchRunner([c.lane for c in self.cameras], self._prepare, self._batch_key,
                                  self._complete_batch, self._publish_completed, self._warn_throttled,
                                  window_s=self.config.batch_window_ms / 1e3,
                                  max_batch=self.config.max_batch)
        self._make_subscriptions()
        warn_unapplied(self)  # qos_overrides.* that no publisher took (ros/qos_overrides.py)
        self._timer = self.create_timer(self.config.diagnostics_period, self.publish_diagnostics)
        # Images whose partner never comes leave the queue as counted "unpaired" drops.
        timeout = min(c.config.pair_timeout for c in self.cameras)
        self._expiry_timer = self.create_timer(min(timeout, 0.5), self._expire_unpaired)
        for camera in self.cameras:
            self.get_logger().info(
                f"completing {self.resolve_topic_name(camera.topic(camera.config.depth_topic))} with "
                f"{self.engine.describe()} -> {self.resolve_topic_name(camera.topic('depth_completed'))} "
                f"(admission {camera.config.admission})")

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

    def _make_subscriptions(self) -> None:
        if self.camera is not None:  # frames come from the camera thread instead of topics
            self.camera.start(on_frame=self.cameras[0].on_camera_frame)
            return
        for camera in self.cameras:
            camera.subscribe()

    @property
    def engine(self) -> Engine:
        return self.keeper.engine

    @property
    def model_id(self) -> str:
        return self.keeper.model_id

    @property
    def effective_mode(self) -> str:
        return effective_mode(self.engine.name, self.config.mode)

    def _stop(self, reason: str) -> None:
        """The engine failed with fallback none (a worker thread): stop the node's context
        from the executor thread (the pair-expiry timer, within half a second; no guard
        condition, which EventsExecutor does not take), so spinning ends and the process exits."""
        self.fatal_error = reason

    # -- the first camera's parts: a rig of one is the node of one camera -----------------
    def __getattr__(self, name: str):
        """`node.stats`, `node.depth_pub`, ...: the first camera's (only called for names the
        node itself lacks)."""
        if name in _FIRST_CAMERA and "cameras" in self.__dict__ and self.cameras:
            return getattr(self.cameras[0], name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def _expire_unpaired(self) -> None:
        if self.fatal_error:  # set by a worker (_stop); the context is shut down from here
            self.context.try_shutdown()
            return
        for camera in self.cameras:
            camera.expire_unpaired()

    # -- the runner's worker threads (core/batcher.py) -------------------------------------
    def _prepare(self, lane: Lane, pair) -> Prepared:
        camera = self._camera_of_lane[lane.name]
        return camera.prepare(pair, self.effective_mode == "completion")

    def _batch_key(self, prepared: Prepared):
        return self.keeper.batch_key(prepared.frame)

    def _complete_batch(self, batch: list[Prepared]) -> list[Completed]:
        """One engine call for frames of one input shape; the engine's wall time is each
        frame's, its CPU time is shared out."""
        for prepared in batch:
            prepared.clock.resume()
        results = self.keeper.complete_batch([p.frame for p in batch], INPUT_ERRORS)
        done = []
        for prepared, result in zip(batch, results):
            if prepared.item.infinities is not None:  # REP 117 too far / too close kept
                result = prepared.item.infinities.restore(result)
            done.append(Completed(prepared, result, prepared.clock))
        first = batch[0].clock
        first.lap("engine")
        for prepared in batch:
            prepared.clock.add("engine", first.ms["engine"], first.cpu_ms["engine"] / len(batch))
        return done

    def _publish_completed(self, lane: Lane, done: Completed) -> None:
        done.prepared.camera.publish_completed(done, self.model_id, self.effective_mode)
        if self.heap_trimmer.maybe_trim():  # between frames, outside the timed stages
            done.prepared.camera.stats.count_heap_trim(self.heap_trimmer.last_ms)

    # -- diagnostics and shutdown ---------------------------------------------------------
    def _warn_throttled(self, message: str) -> None:
        self.get_logger().warning(message, throttle_duration_sec=5.0)

    def queued(self) -> int:
        """Images received but neither published nor dropped yet, all cameras."""
        return sum(camera.queued() for camera in self.cameras)

    def publish_diagnostics(self) -> None:
        if self.queued() == 0 and self.heap_trimmer.maybe_trim():  # idle: no stream, no frame
            self.cameras[0].stats.count_heap_trim(self.heap_trimmer.last_ms)
        extra = {"rig_cameras": str(len(self.cameras)),
                 "engine_calls_by_batch": " ".join(f"{size}:{n}" for size, n in
                                                   sorted(self.runner.calls.items())) or "none"}
        statuses = [camera.status(extra if camera.name else {}) for camera in self.cameras]
        self.diag_pub.publish(DiagnosticArray(header=Header(stamp=self.get_clock().now().to_msg()),
                                              status=statuses))

    def destroy_node(self) -> None:
        """Stop the camera and workers, close the engine; only once, and also for a node
        whose constructor raised part-way (it calls this, and so may a context shutdown)."""
        if self.__dict__.get("_destroyed", False):
            return
        self._destroyed = True
        for part in ("camera", "runner"):
            if self.__dict__.get(part) is not None:
                self.__dict__[part].close()
        keeper = self.__dict__.get("keeper")
        if keeper is not None:
            keeper.close()
            self.get_logger().info(f"engine {keeper.engine.name} closed")
        super().destroy_node()


#: attributes of the first camera the node answers for (tests and tools of one camera)
_FIRST_CAMERA = ("stats", "drops", "pairer", "inputs", "assembler", "builder", "depth_pub",
                 "info_pub", "mask_pub", "cloud_pub", "rgbd_pub", "recent_drops")


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down (`lingbot_depth_node` enters through ros/node_main.py);
    start-up errors and stop signals are handled in ros/node_process.py."""
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    dds_note = prepare_node_process(os.environ)  # this process only (ros/process_setup.py)

    return run_node(LingbotDepthNode, args, NODE_NAME, started_note=dds_note)
