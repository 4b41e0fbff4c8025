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
from .params import NODE_NAME, TOPIC_PARAMS, NodeConfig, load_params_file

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
        config = NodeConfig.from_values(params)
        targets, named = _input_targets(player, config, input_types)
        publishers = {topic: player.create_publisher(message_class(t), targets[topic], _RELIABLE)
                      for topic, t in input_types.items()}
        recorder = _Recorder(player, namespace, output_topics(config))
        executor, thread = _spin_in_thread(player, context)
        try:
            _wait_matched(node, [publishers[t] for t in named.values()], recorder)
            t0 = time.monotonic()
            _play(records, publishers)
            image_topics = {named.get("color_topic"), named.get("depth_topic")}
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


def _summary(values: dict[str, str], records, input_types, recorder, wall_s: float) -> ReplaySummary:
    published = int(values.get("published", 0))
    received = int(values.get("color_received", 0)) + int(values.get("depth_received", 0))
    return ReplaySummary(
        played={t: sum(1 for r in records if r[1] == t) for t in input_types},
        recorded=recorder.counts(), published=published,
        dropped={k.split(".", 1)[1]: int(v) for k, v in values.items() if k.startswith("dropped.")},
        queued=int(values.get("queued", 0)), engine=values.get("engine", ""),
        latency_p50_ms=float(values.get("latency_p50_ms", "nan")),
        latency_p95_ms=float(values.get("latency_p95_ms", "nan")),
        engine_p50_ms=float(values.get("engine_p50_ms", "nan")),
        rate_hz=published / wall_s if wall_s > 0 else 0.0, wall_s=wall_s, received=received)


def _input_targets(player, config: NodeConfig, bag_topics) -> tuple[dict[str, str], dict[str, str]]:
    """(bag topic -> the topic to play it on, topic parameter -> the bag topic it names): the
    node's resolved input where one of its topic parameters names the bag topic (relative
    names match in any namespace, as the bag tools read them), else the bag topic itself.
    The player shares the node's namespace, so it resolves names as the node does."""
    targets, named = {t: t for t in bag_topics}, {}
    for param in TOPIC_PARAMS:
        name = getattr(config, param)
        found = matching_topics(bag_topics, name)
        if len(found) == 1:
            targets[found[0]] = player.resolve_topic_name(name)
            named[param] = found[0]
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
    keeping (receive time, bytes), and to /diagnostics, keeping the node's latest counters."""

    def __init__(self, node, namespace: str, topics: dict[str, str]) -> None:
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
        self.values: dict[str, str] = {}
        self._node_name = f"{self.namespace}/{NODE_NAME}"
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diagnostics, 10)

    def _keep(self, topic: str, raw: bytes) -> None:
        with self._lock:
            self.messages[topic].append((time.time_ns(), raw))

    def _on_diagnostics(self, msg: DiagnosticArray) -> None:
        values = parse_values(msg, self._node_name)
        if values:
            with self._lock:
                self.values = values

    def latest(self) -> dict[str, str]:
        with self._lock:
            return dict(self.values)

    def wait_drained(self, images: int, timeout: float) -> dict[str, str]:
        """The node's counters once it has received all `images` colour + depth images (or
        none more for 2 s: the rest were lost on the way) and holds none of them."""
        deadline, last, since = time.monotonic() + timeout, -1, time.monotonic()
        while time.monotonic() < deadline:
            values = self.latest()
            received = int(values.get("color_received", 0)) + int(values.get("depth_received", 0))
            if received != last:
                last, since = received, time.monotonic()
            settled = received >= images or time.monotonic() - since > 2.0
            if settled and values.get("queued") == "0":
                return values
            time.sleep(_DIAGNOSTICS_PERIOD_S / 2)
        return self.latest()

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
