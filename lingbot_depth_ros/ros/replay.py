"""Play a rosbag2 into a live LingbotDepthNode over DDS and record its outputs into a bag:
`ros2 bag play` + `ros2 bag record` for pip installs, sending the bag's own CDR bytes."""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import Reader

from ..core.output_topics import OUTPUT_TOPICS as TABLE
from ..bag.reader import build_typestore
from ..bag.topics import matching_topics
from ..bag.writer import BagWriter
from .node import LingbotDepthNode
from .params import TOPIC_PARAMS, load_params_file

#: node outputs (relative names) and their types, as recorded: the per-frame ones
OUTPUT_TOPICS = {topic.name: topic.msgtype for topic in TABLE if topic.per_frame}
_RELIABLE = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)


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
    outputs: dict[str, str] = field(default_factory=dict)


def message_class(msgtype: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.msg"), name)


def replay(input_bag: str | Path, output_bag: str | Path, params_file: str | Path | None = None,
           overrides: dict | None = None, namespace: str = "/lingbot",
           settle_s: float = 30.0) -> ReplaySummary:
    """Play `input_bag` in real time into a fresh node; record its outputs into `output_bag`."""
    params = load_params_file(params_file) if params_file else {}
    params.update(overrides or {})
    context = Context()
    # A private domain per process: a demo must not talk to (or hear) a live robot.
    rclpy.init(context=context, domain_id=1 + os.getpid() % 200)
    try:
        node = LingbotDepthNode(context=context, namespace=namespace,
                                parameter_overrides=[Parameter(k, value=v) for k, v in params.items()])
        player = rclpy.create_node("lingbot_replay", context=context, namespace=namespace)
        records, input_types = _read_records(input_bag)
        targets = _input_targets(node, input_types)
        publishers = {topic: player.create_publisher(message_class(t), targets[topic], _RELIABLE)
                      for topic, t in input_types.items()}
        recorder = _Recorder(player, namespace)
        executors = [_spin_in_thread(n, context) for n in (node, player)]
        try:
            _wait_matched(list(publishers.values()), node, recorder)
            t0 = time.monotonic()
            _play(records, publishers)
            _wait_drained(node, settle_s)
            time.sleep(0.3)  # let the last outputs cross DDS to the recorder
            wall_s = time.monotonic() - t0
            stats, drops = node.stats, node.drops.snapshot()
            pct = stats.percentiles()
            summary = ReplaySummary(
                played={t: sum(1 for r in records if r[1] == t) for t in input_types},
                recorded=recorder.counts(), published=stats.published, dropped=drops,
                queued=node.queued(), engine=stats.engine,
                latency_p50_ms=pct.get("latency_p50", float("nan")),
                latency_p95_ms=pct.get("latency_p95", float("nan")),
                engine_p50_ms=pct.get("engine_p50", float("nan")),
                rate_hz=stats.published / wall_s if wall_s > 0 else 0.0, wall_s=wall_s)
        finally:
            for executor, thread in executors:
                executor.shutdown(timeout_sec=5.0)
                thread.join(timeout=5.0)
            node.destroy_node()
            player.destroy_node()
        recorder.write(output_bag)
        return summary
    finally:
        rclpy.try_shutdown(context=context)


def _input_targets(node: LingbotDepthNode, bag_topics) -> dict[str, str]:
    """Bag topic -> the topic to play it on: the node's resolved input where one of its
    topic parameters names the bag topic (relative names match in any namespace, as the
    bag tools read them), else the bag topic itself."""
    targets = {t: t for t in bag_topics}
    for param in TOPIC_PARAMS:
        name = getattr(node.config, param)
        found = matching_topics(bag_topics, name)
        if len(found) == 1:
            targets[found[0]] = node.resolve_topic_name(name)
    return targets


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
    """Subscribes to every node output as serialized bytes, keeping (receive time, bytes)."""

    def __init__(self, node, namespace: str) -> None:
        self.namespace = namespace.rstrip("/")
        self._lock = threading.Lock()
        self.messages: dict[str, list[tuple[int, bytes]]] = {t: [] for t in OUTPUT_TOPICS}
        self.subscriptions = []
        for topic, msgtype in OUTPUT_TOPICS.items():
            try:
                cls = message_class(msgtype)
            except (ImportError, AttributeError):
                continue  # CompletedRGBD without the colcon-built message
            self.subscriptions.append(node.create_subscription(
                cls, topic, functools.partial(self._keep, topic), _RELIABLE, raw=True))

    def _keep(self, topic: str, raw: bytes) -> None:
        with self._lock:
            self.messages[topic].append((time.time_ns(), raw))

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {t: len(m) for t, m in self.messages.items()}

    def write(self, path: str | Path) -> None:
        with BagWriter(path, "mcap", build_typestore("kilted")) as writer:
            for topic, items in self.messages.items():
                if not items:
                    continue
                name = f"{self.namespace}/{topic}"
                writer.add_topic(name, OUTPUT_TOPICS[topic])
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


def _wait_matched(publishers, node, recorder, timeout: float = 20.0) -> None:
    outputs = [p for p in (node.depth_pub, node.info_pub, node.mask_pub, node.cloud_pub,
                           node.rgbd_pub) if p is not None]
    # Only the bag topics the node listens to get a subscriber (e.g. not the depth camera_info).
    wanted = {s.topic_name for s in node.subscriptions}
    publishers = [p for p in publishers if p.topic_name in wanted]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(p.get_subscription_count() > 0 for p in publishers + outputs):
            return
        time.sleep(0.05)
    raise TimeoutError("DDS discovery between the player and the node did not complete "
                       f"within {timeout} s")


def _wait_drained(node, timeout: float) -> None:
    """Until nothing admitted is left in the node's runner (or `timeout`)."""
    node.runner.drain(timeout, poll_s=0.02)
