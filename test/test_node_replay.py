"""Replay: a rosbag2 MCAP of the shared captures at 30 Hz, played into the node in real time;
the outputs are recorded into a second MCAP. Every input pair is either in the output bag or
counted as dropped, with its reason, on /diagnostics."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

rosbags = pytest.importorskip("rosbags", reason="rosbags not installed")

from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from rosbags.rosbag2 import Reader, StoragePlugin, Writer  # noqa: E402
from rosbags.typesys import Stores, get_types_from_msg, get_typestore  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402

from node_harness import (FRAME_ID, OUTPUT_TOPICS, Running, accounting, load_captures,  # noqa: E402
                          )
from lingbot_depth_ros.ros import messages  # noqa: E402

ENGINE = "guided"
FRAMES = 60  # 2 s at 30 Hz
PERIOD_NS = 33_333_333
START_NS = 1_700_000_000 * 1_000_000_000
TOPICS = {"color": "/camera/color/image_raw", "depth": "/camera/depth/image_raw",
          "info": "/camera/color/camera_info"}
MSG_DIR = Path(__file__).resolve().parents[1] / "msg"
RGBD_TYPE = "lingbot_depth_ros/msg/CompletedRGBD"


def typestore():
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg((MSG_DIR / "CompletedRGBD.msg").read_text(), RGBD_TYPE))
    return store


def rosbags_image(store, array: np.ndarray, encoding: str, stamp_ns: int):
    t = store.types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                      frame_id=FRAME_ID)
    channels = 1 if array.ndim == 2 else array.shape[2]
    return t["sensor_msgs/msg/Image"](
        header=header, height=array.shape[0], width=array.shape[1], encoding=encoding,
        is_bigendian=0, step=array.shape[1] * channels * array.itemsize,
        data=np.ascontiguousarray(array).view(np.uint8).reshape(-1))


def write_input_bag(path: Path, captures) -> list[int]:
    """Colour, registered depth and camera info of the captures in turn, at 30 Hz."""
    store = typestore()
    stamps = []
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {name: writer.add_connection(topic, f"sensor_msgs/msg/{'CameraInfo' if name == 'info' else 'Image'}",
                                             typestore=store) for name, topic in TOPICS.items()}
        for i in range(FRAMES):
            capture, stamp = captures[i % 4], START_NS + i * PERIOD_NS
            encoding = "rgb8" if i % 2 == 0 else "bgr8"
            rgb = capture.rgb if encoding == "rgb8" else capture.rgb[:, :, ::-1]
            info = capture.info_msg(stamp)  # rclpy CameraInfo -> CDR: same bytes as rosbags'
            writer.write(conns["info"], stamp, serialize_message(info))
            writer.write(conns["color"], stamp, store.serialize_cdr(
                rosbags_image(store, rgb, encoding, stamp), "sensor_msgs/msg/Image"))
            writer.write(conns["depth"], stamp + 2_000_000, store.serialize_cdr(
                rosbags_image(store, capture.raw_depth, "16UC1", stamp), "sensor_msgs/msg/Image"))
            stamps.append(stamp)
    return stamps


def play(path: Path, probe) -> None:
    """Publish every message at its recorded time offset (real time), in timestamp order."""
    publishers = {TOPICS["color"]: (probe.color_pub, Image), TOPICS["depth"]: (probe.depth_pub, Image),
                  TOPICS["info"]: (probe.info_pub, CameraInfo)}
    with Reader(path) as reader:
        records = sorted(((t, c.topic, raw) for c, t, raw in reader.messages()), key=lambda r: r[0])
    t0, wall0 = records[0][0], time.monotonic()
    for t, topic, raw in records:
        delay = wall0 + (t - t0) / 1e9 - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher, msg_type = publishers[topic]
        publisher.publish(deserialize_message(raw, msg_type))


def record(path: Path, received: dict, namespace: str) -> None:
    """Write every recorded output message into an MCAP bag, as `ros2 bag record` would."""
    store = typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic, msg_type in OUTPUT_TOPICS.items():
            msgtype = RGBD_TYPE if topic.endswith("rgbd") else f"sensor_msgs/msg/{msg_type.__name__}"
            conn = writer.add_connection(f"{namespace}/{topic}", msgtype, typestore=store)
            for msg in received[topic]:
                writer.write(conn, messages.stamp_ns(msg.header), serialize_message(msg))


def read_output(path: Path) -> dict[str, list]:
    store = typestore()
    out: dict[str, list] = {}
    with Reader(path) as reader:
        for conn, _, raw in reader.messages():
            out.setdefault(conn.topic.rsplit("/replay/", 1)[1], []).append(
                store.deserialize_cdr(raw, conn.msgtype))
    return out


def test_replayed_pairs_are_published_or_counted(context, tmp_path):
    captures = load_captures()
    input_stamps = write_input_bag(tmp_path / "input", captures)
    # reliable input: in-process DDS then delivers everything, so the node sees every image
    overrides = {"engine": ENGINE, "qos": "reliable", "queue_depth": 30,
                 "color_topic": TOPICS["color"], "depth_topic": TOPICS["depth"],
                 "camera_info_topic": TOPICS["info"]}
    running = Running(context, overrides, namespace="/replay", topics=TOPICS)
    try:
        play(tmp_path / "input", running.probe)
        running.probe.wait_for(lambda _: running.node.stats.received["depth"] == FRAMES, 30,
                               "the node to receive every depth image")
        running.wait_idle()
        values = running.diagnostics()
        record(tmp_path / "output", running.probe.received, "/replay")
    finally:
        running.close()

    out = read_output(tmp_path / "output")
    published = [messages.stamp_ns(m.header) for m in out["depth_completed"]]
    assert published == sorted(set(published)) and set(published) <= set(input_stamps)
    # Camera info and colour travel on separate topics; only the very first pair can be
    # formed before any info has arrived (then: depth and mask only, counted).
    without_info = int(values["frames_without_camera_info"])
    assert without_info <= 1
    for topic in OUTPUT_TOPICS:
        stamps = [messages.stamp_ns(m.header) for m in out[topic]]
        full = topic in ("depth_completed", "depth_completed/source_mask")
        assert stamps == (published if full else published[without_info:]), topic
    assert {m.header.frame_id for m in out["depth_completed"]} == {FRAME_ID}
    if "depth_completed/rgbd" in out:
        assert {m.engine for m in out["depth_completed/rgbd"]} == {ENGINE}

    received, accounted = accounting(values)
    assert received == 2 * FRAMES == accounted
    assert int(values["published"]) == len(published) > 0
    missing_pairs = len(input_stamps) - len(published)
    assert int(values["dropped_total"]) == 2 * missing_pairs
    # the only reason a well-formed 30 Hz stream loses frames is a slower engine
    reasons = {k.split(".", 1)[1] for k in values if k.startswith("dropped.")}
    assert reasons <= {"superseded"}, values
    assert int(values.get("dropped.superseded", 0)) == 2 * missing_pairs


def test_pair_takes_the_camera_info_of_its_own_stamp():
    """Replayed info arrives interleaved with images; each pair gets the info of its instant."""
    from lingbot_depth_ros.core.pairing import StampPairer

    pairer = StampPairer(slop_s=0.005)
    for i in range(3):
        pairer.add_info(f"info{i}", stamp_ns=START_NS + i * PERIOD_NS)
    assert pairer.add_color(START_NS + PERIOD_NS, "c1") is None
    pair = pairer.add_depth(START_NS + PERIOD_NS + 1_000_000, "d1")
    assert (pair.color, pair.depth, pair.info) == ("c1", "d1", "info1")
    pairer.add_color(START_NS + 9 * PERIOD_NS, "c9")  # no info within slop: the newest
    assert pairer.add_depth(START_NS + 9 * PERIOD_NS, "d9").info == "info2"
    assert pairer.pending == 0
