"""`bag make-demo` writes RealSense-like bags from examples/ that rosbags (and the MCAP
library) read back with the right topics, types, stamps, frame ids, intrinsics and pixels;
the lean MCAP writer produces the same records as rosbags' own writer."""

from dataclasses import replace

import numpy as np
import pytest
from bag_helpers import (COLOR, DEPTH, EXAMPLES, FRAME_ID, INFO, bag_types, cloud_msg, image_array,
                         make_demo, read_bag, run_cli, stamp)
from rosbags.rosbag2 import StoragePlugin, Writer

from lingbot_depth_ros.bag.decode import COMPRESSED, decode_color, decode_depth
from lingbot_depth_ros.bag.demo import DEMO_START_NS
from lingbot_depth_ros.bag.mcap_writer import LeanWriter
from lingbot_depth_ros.bag.messages import MessageFactory, serialize_parts
from lingbot_depth_ros.bag.reader import BagReader, build_typestore
from lingbot_depth_ros.core.captures import find_captures, read_intrinsics, read_raw_depth, read_rgb, rgb_path
from lingbot_depth_ros.core.codec import ImageFields
from lingbot_depth_ros.core.depth import DepthRange
from lingbot_depth_ros.core.pointcloud import XYZRGB_FIELDS, CloudFields

CAPTURES = find_captures(EXAMPLES)


@pytest.mark.parametrize("name, storage, expect", [
    ("demo.mcap", None, "mcap"), ("demo_dir", "sqlite3", "sqlite3"), ("demo.db3", None, "sqlite3")])
def test_make_demo_cli_writes_readable_realsense_bag(tmp_path, capsys, name, storage, expect):
    argv = ["bag", "make-demo", EXAMPLES, tmp_path / name, "--fps", "15", "--repeat", "2"]
    rc, out, _ = run_cli(argv + (["--storage", storage] if storage else []), capsys)
    assert rc == 0 and f"wrote 8 frames ({expect})" in out
    assert (tmp_path / name).is_dir() == (name == "demo_dir")
    with BagReader(tmp_path / name) as reader:
        assert reader.storage == expect
    msgs = read_bag(tmp_path / name)
    assert {t: len(m) for t, m in msgs.items()} == {
        COLOR: 8, DEPTH: 8, INFO: 8, "/camera/camera/aligned_depth_to_color/camera_info": 8}
    assert bag_types(tmp_path / name)[COLOR] == "sensor_msgs/msg/Image"
    stamps = [stamp(m.header) for _, m in msgs[COLOR]]
    period = round(1e9 / 15)
    assert stamps == [DEMO_START_NS + i * period for i in range(8)]
    assert [stamp(m.header) for _, m in msgs[DEPTH]] == stamps
    assert all(log > s for (log, _), s in zip(msgs[COLOR], stamps))  # received after capture
    for i, ((_, color), (_, depth), (_, info)) in enumerate(zip(msgs[COLOR], msgs[DEPTH], msgs[INFO])):
        capture = CAPTURES[i % len(CAPTURES)]
        assert color.header.frame_id == depth.header.frame_id == info.header.frame_id == FRAME_ID
        assert (color.encoding, depth.encoding) == ("rgb8", "16UC1")
        np.testing.assert_array_equal(image_array(color), read_rgb(rgb_path(capture)))
        np.testing.assert_array_equal(image_array(depth), read_raw_depth(capture / "raw_depth.png"))
        K = read_intrinsics(capture / "intrinsics.txt")
        np.testing.assert_allclose(info.k.reshape(3, 3), K)
        assert info.distortion_model == "plumb_bob" and not info.d.any()
        assert (info.height, info.width) == (depth.height, depth.width) == (480, 640)
        np.testing.assert_allclose(info.p.reshape(3, 4)[:, :3], K)


def test_compressed_transport_topics_and_payloads(tmp_path):
    bag = make_demo(tmp_path, "c.mcap", transport="compressed")
    types = bag_types(bag)
    assert types[COLOR + "/compressed"] == types[DEPTH + "/compressedDepth"] == COMPRESSED
    msgs = read_bag(bag)
    _, depth_msg = msgs[DEPTH + "/compressedDepth"][3]
    _, color_msg = msgs[COLOR + "/compressed"][3]
    assert depth_msg.format == "16UC1; compressedDepth png"
    assert color_msg.format == "rgb8; jpeg compressed bgr8"
    raw = read_raw_depth(CAPTURES[3] / "raw_depth.png")
    metres = decode_depth(depth_msg, COMPRESSED, 0.001, DepthRange(0.0, 10.0))
    keep = (raw > 0) & (raw <= 10000)
    np.testing.assert_array_equal(metres[keep], raw[keep].astype(np.float32) * np.float32(0.001))
    assert np.isnan(metres[~keep]).all()
    rgb = decode_color(color_msg, COMPRESSED)
    assert np.abs(rgb.astype(int) - read_rgb(rgb_path(CAPTURES[3]))).mean() < 4.0


def test_make_demo_rejects_bad_arguments(tmp_path, capsys):
    rc, _, err = run_cli(["bag", "make-demo", EXAMPLES, tmp_path / "x.mcap", "--storage", "sqlite3"], capsys)
    assert rc == 2 and "ends in .mcap but --storage is sqlite3" in err
    rc, _, err = run_cli(["bag", "make-demo", tmp_path, tmp_path / "y.mcap"], capsys)
    assert rc == 2 and "no capture folders" in err
    make_demo(tmp_path, "z.mcap")
    rc, _, err = run_cli(["bag", "make-demo", EXAMPLES, tmp_path / "z.mcap"], capsys)
    assert rc == 2 and "exists already" in err and "Traceback" not in err


def _write(cls, path, payloads, stamps, typestore):
    writer = cls(path, version=8, storage_plugin=StoragePlugin.MCAP)
    writer.open()
    image = writer.add_connection("/a", "sensor_msgs/msg/Image", typestore=typestore)
    text = writer.add_connection("/b", "std_msgs/msg/String", typestore=typestore)
    for i, (payload, t) in enumerate(zip(payloads, stamps)):
        writer.write(image if i % 2 else text, t, payload)
    writer.close()


def test_lean_mcap_writer_matches_rosbags_writer(tmp_path):
    """Same messages through both writers: identical messages back from rosbags and from the
    independent MCAP library, which also checks the record structure and indexes."""
    mcap_reader = pytest.importorskip("mcap.reader")
    rng = np.random.default_rng(0)
    sizes = (10, 500_000, 2_000_000, 30, 1_500_000, 100, 70_000, 5, 65_535, 65_536)
    payloads = [rng.bytes(n) for n in sizes]
    stamps = [1000 + 7 * i for i in range(len(sizes))]
    stamps[3] = 990  # out of log-time order, as merged streams are
    store = build_typestore("kilted")
    results = []
    for cls, name in ((Writer, "ref"), (LeanWriter, "lean")):
        _write(cls, tmp_path / name, payloads, stamps, store)
        with BagReader(tmp_path / name) as reader:
            ours = [(c.topic, t, bytes(raw)) for c, t, raw in reader.messages()]
        with open(tmp_path / name / f"{name}.mcap", "rb") as f:
            reader = mcap_reader.make_reader(f)
            theirs = [(ch.topic, m.log_time, m.data) for _, ch, m in reader.iter_messages(log_time_order=True)]
            assert reader.get_summary().statistics.message_count == len(sizes)
        assert ours == theirs
        results.append(ours)
    assert results[0] == results[1]
    assert [t for _, t, _ in results[1]] == sorted(stamps)


@pytest.mark.parametrize("msgtype", ["sensor_msgs/msg/Image", "sensor_msgs/msg/PointCloud2"])
def test_spliced_serialization_equals_rosbags(msgtype):
    """Image/cloud bodies written uncopied: the parts join to rosbags' own CDR bytes."""
    store = build_typestore("kilted")
    factory = MessageFactory(store)
    header = factory.header(DEMO_START_NS + 123, FRAME_ID)
    body = np.random.default_rng(1).bytes(70_001)  # odd length: the tail lands unaligned
    if msgtype.endswith("Image"):
        msg = factory.image(ImageFields(1, 70_001, "mono8", 0, 70_001, body), header)
    else:
        msg = cloud_msg(store, CloudFields(height=1, width=4375, fields=XYZRGB_FIELDS, point_step=16,
                                           row_step=70_000, data=body, is_dense=True), header)
    parts = serialize_parts(store, msg, msgtype)
    assert len(parts) == 3 and parts[1].obj is not None  # spliced, body not copied
    assert b"".join(parts) == bytes(store.serialize_cdr(msg, msgtype))
    small = replace(msg, data=np.zeros(10, np.uint8))
    assert serialize_parts(store, small, msgtype) == [store.serialize_cdr(small, msgtype)]
