"""The bag fast paths give exactly what the slow ones give: the lean MCAP reader yields
rosbags' messages in rosbags' order, the gathered MCAP writes survive short writes, the
spliced CompletedRGBD equals rosbags' serialization, and typestores are built once."""

import numpy as np
import pytest
from bag_helpers import cloud_msg
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.rosbag2.storage_mcap import McapReader
from rosbags.typesys import get_types_from_msg

from lingbot_depth_ros.bag import mcap_writer
from lingbot_depth_ros.bag.mcap_reader import LeanMcapReader
from lingbot_depth_ros.bag.mcap_writer import LeanWriter
from lingbot_depth_ros.bag.messages import CAMERA_INFO, COMPLETED_RGBD, IMAGE, POINT_CLOUD2, MessageFactory
from lingbot_depth_ros.bag.reader import build_typestore
from lingbot_depth_ros.core import serialized
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.outputs import CameraInfoFields, FrameOutputs, OutputBuilder, Summary

# sizes around the writer's limits (alone in a chunk from 64 KiB) and odd ones
SIZES = (10, 500_000, 30, 70_000, 5, 65_535, 65_536, 3, 200_000, 7) * 3


def _write_bag(tmp_path, name, cls=Writer, compress=False):
    rng = np.random.default_rng(0)
    writer = cls(tmp_path / name, version=8, storage_plugin=StoragePlugin.MCAP)
    if compress:
        writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    writer.open()
    store = build_typestore("kilted")
    conns = [writer.add_connection(t, "std_msgs/msg/String", typestore=store) for t in ("/a", "/b")]
    for i, size in enumerate(SIZES):  # some log times out of order, some shared
        writer.write(conns[i % 2], 1000 + 7 * (i // 3) - (5 if i % 5 == 0 else 0), rng.bytes(size))
    writer.close()
    return tmp_path / name / f"{name}.mcap"


def _completed_rgbd_msg(store, factory, out, header):
    """rosbags' own CompletedRGBD of one frame."""
    s = out.summary
    return store.types[COMPLETED_RGBD](
        header=header, rgb=factory.image(out.color, header), depth=factory.image(out.depth_32fc1, header),
        source_mask=factory.image(out.source_mask, header),
        camera_info=factory.camera_info(out.camera_info, header),
        measured_fraction=s.measured_fraction, filled_fraction=s.filled_fraction,
        latency_ms=s.latency_ms, inference_ms=s.inference_ms, engine=s.engine,
        model=s.model, mode=s.mode)


def _read(cls, path, topics, start, stop):
    reader = cls(path)
    reader.open()
    try:
        conns = [c for c in reader.connections if topics is None or c.topic in topics]
        return [(c.topic, t, type(d), bytes(d)) for c, t, d in reader.messages(conns, start, stop)]
    finally:
        reader.close()


@pytest.mark.parametrize("cls, compress", [(Writer, False), (Writer, True), (LeanWriter, False)])
def test_lean_mcap_reader_matches_rosbags_reader(tmp_path, cls, compress):
    path = _write_bag(tmp_path, "bag", cls, compress)
    for topics, start, stop in ((None, None, None), (["/a"], None, None), (None, 1010, 1040)):
        ours = _read(LeanMcapReader, path, topics, start, stop)
        assert ours == _read(McapReader, path, topics, start, stop)
        assert ours and all(kind is bytes for _, _, kind, _ in ours)


def test_gathered_writes_survive_short_writes(tmp_path, monkeypatch):
    real_writev = mcap_writer.os.writev
    monkeypatch.setattr(mcap_writer.os, "writev",  # the kernel takes at most 100 kB a call
                        lambda fd, parts: real_writev(fd, [bytes(b"".join(parts)[:100_000])]))
    path = _write_bag(tmp_path, "short", LeanWriter)
    monkeypatch.undo()
    assert _read(McapReader, path, None, None, None) == _read(
        McapReader, _write_bag(tmp_path, "ref"), None, None, None)


@pytest.mark.parametrize("frame_id, height, width, encoding, n_distortion", [
    ("", 3, 5, "rgb8", 5), ("a", 2, 7, "mono8", 0), ("camera_color_optical_frame", 4, 4, "bgra8", 8),
    ("cam", 1, 1, "rgb8", 5), ("odd", 480, 641, "bgr8", 5)])
def test_serialized_parts_equal_rosbags(frame_id, height, width, encoding, n_distortion):
    """What bag process writes (core.serialized's parts, pixels uncopied) joins to rosbags'
    bytes: sub-images of every length mod 8 after headers of every length mod 4."""
    rng = np.random.default_rng(2)
    channels = {"rgb8": 3, "bgr8": 3, "mono8": 1, "bgra8": 4}[encoding]
    color = encode_image(rng.integers(0, 255, (height, width, channels), dtype=np.uint8), encoding)
    depth = encode_image(rng.random((height, width)).astype(np.float32), "32FC1")
    mask = encode_image(rng.integers(0, 3, (height, width), dtype=np.uint8), "mono8")
    info = CameraInfoFields(height, width, "plumb_bob", tuple(rng.random(n_distortion)),
                            tuple(rng.random(9)), tuple(rng.random(9)), tuple(rng.random(12)))
    out = FrameOutputs(stamp_ns=1_700_000_000_123_456_789, frame_id=frame_id, depth=depth,
                       source_mask=mask, camera_info=info, cloud=None,
                       summary=Summary(0.5, 0.25, 1.5, 2.5, "guided", "model.pt", "completion"),
                       depth_32fc1=depth, color=color)
    store = build_typestore("kilted")
    factory = MessageFactory(store)
    header = factory.header(out.stamp_ns, frame_id)
    expected = bytes(store.serialize_cdr(_completed_rgbd_msg(store, factory, out, header), COMPLETED_RGBD))
    stamp = out.stamp_ns
    assert b"".join(bytes(p) for p in serialized.image_parts(stamp, frame_id, depth)) == bytes(
        store.serialize_cdr(factory.image(depth, header), IMAGE))
    assert b"".join(bytes(p) for p in serialized.completed_rgbd_parts(out)) == expected
    assert serialized.camera_info_cdr(stamp, frame_id, info) == bytes(
        store.serialize_cdr(factory.camera_info(info, header), CAMERA_INFO))
    cloud = OutputBuilder().cloud(rng.random((height, width)).astype(np.float32) + 0.5,
                                  rng.integers(0, 255, (height, width, 3), dtype=np.uint8),
                                  np.diag([300.0, 300.0, 1.0]))
    assert b"".join(bytes(p) for p in serialized.cloud_parts(stamp, frame_id, cloud)) == bytes(
        store.serialize_cdr(cloud_msg(store, cloud, header), POINT_CLOUD2))


def test_typestore_is_built_once_per_definitions():
    assert build_typestore("kilted") is build_typestore("kilted")
    assert build_typestore("humble") is not build_typestore("kilted")
    own = get_types_from_msg("uint8 x", "my_msgs/msg/Thing")
    assert build_typestore("kilted", own) is not build_typestore("kilted")
    assert "my_msgs/msg/Thing" in build_typestore("kilted", own).types
