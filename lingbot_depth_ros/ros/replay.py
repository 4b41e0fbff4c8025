"""Play a rosbag2 into a live lingbot_depth_node over DDS and record its outputs into a bag:
`ros2 bag play` + `ros2 bag record` for pip installs, sending the bag's own CDR bytes. The
node runs as its own process, as `ros2 run` starts it (the player and recorder hold this
process's GIL, which the node does not share with a camera driver or a recorder when deployed)."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader

from ..bag.output_topics import output_topics
from ..bag.reader import build_typestore
from ..bag.topics import matching_topics
from ..bag.writer import BagWriter
from ..paths import data_path
from .dds_profile import PROFILES_FILE
from .diagnostics import parse_values
from ..core.rig import CameraSpec, rig_from_values
from .params import NODE_NAME, TOPIC_PARAMS, load_params_file

_RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
#: how often the node reports its counters while replaying, s
_DIAGNOSTICS_PERIOD_S = 0.2


@dataclass
class ReplaySummary:
    played: dict[str, int]
    recorded: dict[str, int]
    published: int
    dropped: dict[str, int]
    queued: int
    latency_p50_ms: float
    latency_p95_ms: float
    engine_p50_ms: float
    rate_hz: float
    engine: str
    wall_s: float
    #: colour + depth images the node received (the rest were lost on the way)
    received: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    #: a rig's cameras, each with its own figures (this one's are their sums, its
    #: latencies the worst camera's); empty for one camera
    cameras: dict[str, ReplaySummary] = field(default_factory=dict)


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def replay(input_bag: str | Path, output_bag: str | Path, params_file: str | Path | None = None,
           overrides: dict | None = None, namespace: str = "/lingbot",
           settle_s: float = 30.0) -> ReplaySummary:
    """Play `input_bag` in real time into a fresh node process; record its outputs into
    `output_bag`. RuntimeError if the node does not come up."""
    params = load_params_file(params_file) if params_file else {}
    params.update(overrides or {})
    cameras = rig_from_values(params)  # a rig of one without `cameras`
    records, input_types = _read_records(input_bag)
    # A private domain per process: a demo must not talk to (or hear) a live robot. Both
    # sides get the launch file's DDS profile unless the environment names one.
    domain = 1 + os.getpid() % 200
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain))
    env.setdefault(PROFILES_FILE, str(data_path("config/fastdds_large_data.xml")))
    node = _start_node(params, namespace, env)
    context = Context()
    try:
        rclpy.init(context=context, domain_id=domain)
        player = rclpy.create_node("lingbot_replay", context=context, namespace=namespace)
        targets, named = _input_targets(player, cameras, input_types)
        publishers = {topic: player.create_publisher(message_class(t), targets[topic], _RELIABLE)
                      for topic, t in input_types.items()}
        names = tuple(camera.name for camera in cameras)
        recorder = _Recorder(player, namespace, output_topics(cameras[0].config, names), names)
        executor, thread = _spin_in_thread(player, context)
        try:
            _wait_matched(node, [publishers[t] for t in named.values()], recorder)
            t0 = time.monotonic()
            _play(records, publishers)
            image_topics = {topic for (_, param), topic in named.items()
                            if param in ("color_topic", "depth_topic")}
            values = recorder.wait_drained(sum(1 for r in records if r[1] in image_topics), settle_s)
            time.sleep(0.3)  # let the last outputs cross DDS to the recorder
            wall_s = time.monotonic() - t0
        finally:
            _stop_node(node)
            executor.shutdown(timeout_sec=5.0)
            thread.join(timeout=5.0)
            player.destroy_node()
        recorder.write(output_bag)
        return _summary(values, records, input_types, recorder, wall_s)
    finally:
        _stop_node(node)  # when set-up failed before the replay (else a no-op)
        rclpy.try_shutdown(context=context)


def _start_node(params: dict, namespace: str, env: dict) -> subprocess.Popen:
    """The node with `params` (the file's merged with the overrides: as one file, since rcl
    ranks a file's `/**/lingbot_depth_node` section above a `-p` given beside it)."""
    params = {**params, "diagnostics_period": _DIAGNOSTICS_PERIOD_S}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix="lingbot_replay_", delete=False) as f:
        yaml.safe_dump({f"/**/{NODE_NAME}": {"ros__parameters": params}}, f)
    command = [sys.executable, str(data_path("scripts/lingbot_depth_node")), "--ros-args",
               "-r", f"__ns:={namespace}", "--params-file", f.name]
    node = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL)
    node.params_file = Path(f.name)  # removed by _stop_node
    return node


def _stop_node(node: subprocess.Popen) -> None:
    """Ctrl-C, as a terminal would; killed if it has not finished within 15 s."""
    if node.poll() is None:
        node.send_signal(signal.SIGINT)
        try:
            node.wait(timeout=15.0)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()
    node.params_file.unlink(missing_ok=True)


def _summary(values: dict[str, dict[str, str]], records, input_types, recorder,
             wall_s: float) -> ReplaySummary:
    """The summary of each camera's counters (`values`: camera -> its latest status); for a
    rig, their sums with the worst camera's latencies."""
    played = {t: sum(1 for r in records if r[1] == t) for t in input_types}
    recorded = recorder.counts()

    def one(v: dict[str, str]) -> ReplaySummary:
        published = int(v.get("published", 0))
        return ReplaySummary(
            played=played, recorded=recorded, published=published,
            dropped={k.split(".", 1)[1]: int(n) for k, n in v.items() if k.startswith("dropped.")},
            queued=int(v.get("queued", 0)), engine=v.get("engine", ""),
            latency_p50_ms=float(v.get("latency_p50_ms", "nan")),
            latency_p95_ms=float(v.get("latency_p95_ms", "nan")),
            engine_p50_ms=float(v.get("engine_p50_ms", "nan")),
            rate_hz=published / wall_s if wall_s > 0 else 0.0, wall_s=wall_s,
            received=int(v.get("color_received", 0)) + int(v.get("depth_received", 0)))

    each = {name: one(v) for name, v in values.items()}
    if list(each) == [""]:
        return each[""]
    total = one({})
    for part in each.values():
        total.published += part.published
        total.received += part.received
        total.queued += part.queued
        for reason, n in part.dropped.items():
            total.dropped[reason] = total.dropped.get(reason, 0) + n
    total.rate_hz = total.published / wall_s if wall_s > 0 else 0.0
    total.engine = next(iter(each.values())).engine
    for attr in ("latency_p50_ms", "latency_p95_ms", "engine_p50_ms"):
        setattr(total, attr, max(getattr(p, attr) for p in each.values()))
    total.cameras = each
    return total


def _input_targets(player, cameras: list[CameraSpec], bag_topics
                   ) -> tuple[dict[str, str], dict[tuple[str, str], str]]:
    """(bag topic -> the topic to play it on, (camera, topic parameter) -> the bag topic it
    names): the node's resolved input where one of a camera's topic parameters (inside its
    namespace) names the bag topic (relative names match in any namespace, as the bag tools
    read them), else the bag topic itself. The player shares the node's namespace, so it
    resolves names as the node does."""
    targets, named = {t: t for t in bag_topics}, {}
    for camera in cameras:
        for param in TOPIC_PARAMS:
            name = camera.topic(getattr(camera.config, param))
            found = matching_topics(bag_topics, name)
            if len(found) == 1:
                targets[found[0]] = player.resolve_topic_name(name)
                named[(camera.name, param)] = found[0]
    return targets, named


def _read_records(path: str | Path) -> tuple[list[tuple[int, str, bytes]], dict[str, str]]:
    with Reader(path) as reader:
        types = {c.topic: c.msgtype for c in reader.connections}
        records = sorted(((t, c.topic, bytes(raw)) for c, t, raw in reader.messages()),
                         key=lambda r: r[0])
    return records, types


def _play(records, publishers) -> None:
    """Publish each message at its recorded time offset, in log-time order."""
    if not records:
        return
    t0, wall0 = records[0][0], time.monotonic()
    for t, topic, raw in records:
        delay = wall0 + (t - t0) / 1e9 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publishers[topic].publish(raw)


class _Recorder:
    """Subscribes to the node's outputs (root-namespace name -> type) as serialized bytes,
    keeping (receive time, bytes), and to /diagnostics, keeping the latest counters of each
    of `cameras` ("": the node of one camera)."""

    def __init__(self, node, namespace: str, topics: dict[str, str],
                 cameras: tuple[str, ...] = ("",)) -> None:
        self.namespace = namespace.rstrip("/")
        self._lock = threading.Lock()
        self.topics = {topic.lstrip("/"): msgtype for topic, msgtype in topics.items()}
        self.messages: dict[str, list[tuple[int, bytes]]] = {t: [] for t in self.topics}
        self.subscriptions = []
        for topic, msgtype in self.topics.items():
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError):
                continue  # CompletedRGBD without the colcon-built message
            self.subscriptions.append(node.create_subscription(
                cls, topic, functools.partial(self._keep, topic), _RELIABLE, raw=True))
        self.values: dict[str, dict[str, str]] = {}
        # named as ros/camera.py names them: the player shares the node's namespace, and a
        # rig's camera reports as a node of its own in the camera's namespace would
        self._hardware_ids = {
            camera: (node.resolve_topic_name(camera) if camera else node.get_namespace()).rstrip("/")
            + f"/{NODE_NAME}" for camera in cameras}
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _keep(self, topic: str, raw: bytes) -> None:
        with self._lock:
            self.messages[topic].append((time.time_ns(), raw))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        for camera, hardware_id in self._hardware_ids.items():
            values = parse_values(msg, hardware_id)
            if values:
                with self._lock:
                    self.values[camera] = values

    def latest(self) -> dict[str, dict[str, str]]:
        """Each camera's latest counters; empty until every camera has reported."""
        with self._lock:
            if len(self.values) < len(self._hardware_ids):
                return {}
            return {camera: dict(v) for camera, v in self.values.items()}

    def wait_drained(self, images: int, timeout: float) -> dict[str, dict[str, str]]:
        """The cameras' counters once the node has received all `images` colour + depth
        images (or none more for 2 s: the rest were lost on the way) and holds none of them."""
        deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            values = self.latest()
            received = sum(int(v.get("color_received", 0)) + int(v.get("depth_received", 0))
                           for v in values.values())
            if received != last:
                last, since = received, time.monotonic()
            settled = received >= images or time.monotonic() - since > 2.0
            if values and settled and all(v.get("queued") == "0" for v in values.values()):
                return values
            time.sleep(_DIAGNOSTICS_PERIOD_S / 2)
        return self.latest() or {camera: {} for camera in self._hardware_ids}

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: len(m) for t, m in self.messages.items()}

    def write(self, path: str | Path) -> None:
        with BagWriter(path, "mcap", build_typestore("kilted")) as writer:
            for topic, items in self.messages.items():
                if not items:
                    continue
                name = f"{self.namespace}/{topic}"
                writer.add_topic(name, self.topics[topic])
                for t, raw in items:
                    writer.write_raw(name, t, raw)


def _spin_in_thread(node, context: Context):
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)

    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()

    thread = threading.Thread(target=spin, name=f"spin-{node.get_name()}", daemon=True)
    thread.start()
    return executor, thread


def _wait_matched(node: subprocess.Popen, publishers, recorder: _Recorder, timeout: float = 60.0) -> None:
    """Until the node listens to every input it names and its outputs reach the recorder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if node.poll() is not None:
            raise RuntimeError(f"lingbot_depth_node exited with status {node.returncode} before "
                               "the replay began (its log is above)")
        if (all(p.get_subscription_count() > 0 for p in publishers)
                and all(s.get_publisher_count() > 0 for s in recorder.subscriptions)
                and recorder.latest()):
            return
        time.sleep(0.05)
    raise TimeoutError("DDS discovery between the player and the node did not complete "
                       f"within {timeout} s")
