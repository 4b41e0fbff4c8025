"""Damaged and unusual bags: each gives a specific error (exit code 2, one clear line, no
traceback) or counted skips, and whatever is readable still comes out."""

import os
import shutil
import sqlite3

import numpy as np
import pytest
from bag_helpers import COLOR, CONFIG, DEPTH, EXAMPLES, FRAME_ID, INFO, make_demo, read_bag, run_cli
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_types_from_msg

from lingbot_depth_ros.bag.decode import encode_compressed_depth
from lingbot_depth_ros.bag.messages import MessageFactory
from lingbot_depth_ros.bag.reader import build_typestore
from lingbot_depth_ros.core.captures import find_captures, read_intrinsics, read_raw_depth, read_rgb, rgb_path
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.outputs import CameraInfoFields

D435I = CONFIG / "realsense_d435i.yaml"
STORE = build_typestore("kilted")
F = MessageFactory(STORE)
CAPTURE = find_captures(EXAMPLES)[0]
RGB = read_rgb(rgb_path(CAPTURE))
RAW = read_raw_depth(CAPTURE / "raw_depth.png")
K = read_intrinsics(CAPTURE / "intrinsics.txt")
IMAGE, INFO_TYPE = "sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo"


def write_bag(path, entries, storage=StoragePlugin.MCAP, extra_types=None):
    """entries: (topic, msgtype, log time, message object or raw CDR bytes)."""
    store = build_typestore("kilted", extra_types)
    writer = Writer(path, version=8, storage_plugin=storage)
    writer.open()
    conns = {}
    for topic, msgtype, _, _ in entries:
        if topic not in conns:
            conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
    for topic, msgtype, t, msg in entries:
        raw = msg if isinstance(msg, bytes) else store.serialize_cdr(msg, msgtype)
        writer.write(conns[topic], t, raw)
    writer.close()
    return path


def frame_entries(i, rgb=RGB, raw=RAW, depth=True, info=True):
    t = 1_000_000_000 + i * 33_000_000
    header = F.header(t, FRAME_ID)
    entries = []
    if info:
        entries.append((INFO, INFO_TYPE, t + 1, F.camera_info(CameraInfoFields.from_K(K, 480, 640), header)))
    entries.append((COLOR, IMAGE, t + 2, F.image(encode_image(rgb, "rgb8"), header)))
    if depth:
        entries.append((DEPTH, IMAGE, t + 3, F.image(encode_image(raw, "16UC1"), header)))
    return entries


def process(argv, capsys, *extra):
    rc, out, err = run_cli(["bag", "process", *argv, "--engine", "nearest", "--no-progress", *extra], capsys)
    assert "Traceback" not in out + err
    return rc, out, err


def test_missing_depth_topic_is_named(tmp_path, capsys):
    bag = write_bag(tmp_path / "nodepth", [e for i in range(3) for e in frame_entries(i, depth=False)])
    rc, _, err = process([bag, tmp_path / "o1.mcap"], capsys)
    assert rc == 2 and "no depth image topic" in err and COLOR in err
    rc, _, err = process([bag, tmp_path / "o2.mcap", "--params", D435I], capsys)
    # the preset names it relative to the camera's namespace (docs/drivers.md)
    assert rc == 2 and "has no depth topic camera/aligned_depth_to_color/image_raw in any namespace" in err
    assert not (tmp_path / "o1.mcap").exists() and not (tmp_path / "o2.mcap").exists()


def test_mismatched_sizes_are_counted_drops(tmp_path, capsys):
    small = RAW[::2, ::2].copy()  # 320x240 depth against 640x480 colour
    entries = [e for i in range(4) for e in frame_entries(i, raw=small if i % 2 else RAW)]
    bag = write_bag(tmp_path / "mixed", entries)
    rc, out, _ = process([bag, tmp_path / "out.mcap"], capsys)
    assert rc == 0 and "processed 2" in out and "size_mismatch 4" in out
    assert len(read_bag(tmp_path / "out.mcap")["/depth_completed"]) == 2
    all_bad = write_bag(tmp_path / "bad", [e for i in range(2) for e in frame_entries(i, raw=small)])
    rc, out, err = process([all_bad, tmp_path / "out2.mcap"], capsys)
    assert rc == 2 and "size_mismatch 4" in out and "no frame of" in err
    assert not (tmp_path / "out2.mcap").exists()  # exit 2 leaves nothing at OUT


def _truncate(src, dst, keep: float):
    shutil.copytree(src, dst)
    data = next(p for p in dst.iterdir() if p.name != "metadata.yaml")
    os.truncate(data, int(data.stat().st_size * keep))
    return dst


def test_truncated_mcap_is_read_up_to_the_cut(tmp_path, capsys):
    bag = _truncate(make_demo(tmp_path, "full", repeat=2), tmp_path / "cut", 0.6)
    rc, out, _ = process([bag, tmp_path / "out.mcap"], capsys)
    assert rc == 0 and "TRUNCATED" in out
    processed = len(read_bag(tmp_path / "out.mcap")["/depth_completed"])
    assert 0 < processed < 8
    tiny = _truncate(tmp_path / "full", tmp_path / "tiny", 0.001)
    rc, _, err = process([tiny, tmp_path / "out2.mcap"], capsys)  # only camera info left
    assert rc == 2 and "has no colour image topic with messages" in err


def test_truncated_sqlite3_is_a_bag_error(tmp_path, capsys):
    bag = _truncate(make_demo(tmp_path, "full", storage="sqlite3"), tmp_path / "cut", 0.5)
    rc, _, err = process([bag, tmp_path / "out.mcap"], capsys)
    assert rc == 2 and "lingbot-depth bag: error:" in err and "malformed" in err


def test_garbage_files_and_paths(tmp_path, capsys):
    (tmp_path / "noise.mcap").write_bytes(np.random.default_rng(0).bytes(5000))
    rc, _, err = process([tmp_path / "noise.mcap", tmp_path / "o.mcap"], capsys)
    assert rc == 2 and "cannot open bag" in err
    rc, _, err = process([tmp_path / "nothing", tmp_path / "o.mcap"], capsys)
    assert rc == 2 and "does not exist" in err
    (tmp_path / "plain_dir").mkdir()
    rc, _, err = process([tmp_path / "plain_dir", tmp_path / "o.mcap"], capsys)
    assert rc == 2 and "cannot open bag" in err


@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_empty_bags(tmp_path, capsys, storage):
    no_messages = write_bag(tmp_path / "empty", [], storage)
    rc, _, err = process([no_messages, tmp_path / "o.mcap"], capsys)
    assert rc == 2 and "holds no messages" in err


BLOB = "acme_msgs/msg/Blob"
BLOB_TYPES = get_types_from_msg("uint32 id\nuint8[] payload\n", BLOB)
STORE_WITH_BLOB = build_typestore("kilted", BLOB_TYPES)


def test_unknown_types_are_skipped_not_fatal(tmp_path, capsys):
    blob = STORE_WITH_BLOB.types[BLOB](id=7, payload=np.arange(5, dtype=np.uint8))
    entries = [e for i in range(2) for e in frame_entries(i)] + [("/acme/blob", BLOB, 5, blob)]
    bag = write_bag(tmp_path / "b", entries, StoragePlugin.SQLITE3, BLOB_TYPES)
    with sqlite3.connect(next((tmp_path / "b").glob("*.db3"))) as db:  # as a pre-Iron recorder
        db.execute("DELETE FROM message_definitions WHERE topic_type = ?", (BLOB,))
    rc, out, _ = process([bag, tmp_path / "o.mcap"], capsys)
    assert rc == 0 and "processed 2" in out
    assert f"/acme/blob (no definition of {BLOB})" in out
    assert "/acme/blob" not in read_bag(tmp_path / "o.mcap")
    rc, _, err = process([bag, tmp_path / "o2.mcap", "--color-topic", "/acme/blob"], capsys)
    assert rc == 2 and f"has type {BLOB}" in err



def test_undecodable_messages_are_counted(tmp_path, capsys):
    header = F.header(1_000_000_000, FRAME_ID)
    fmt, data = encode_compressed_depth(RAW)
    bad_png = F.compressed(fmt, data[:12] + b"not a png" + data[100:200], header)
    entries = frame_entries(0) + [
        (DEPTH + "/compressedDepth", "sensor_msgs/msg/CompressedImage", 5, bad_png),
        (COLOR, IMAGE, 1_033_000_002, b"\x00\x01\x00\x00garbage"),  # not an Image
    ] + frame_entries(2)
    bag = write_bag(tmp_path / "g", entries)
    rc, out, _ = process([bag, tmp_path / "o.mcap"], capsys)
    assert rc == 0 and "processed 2" in out and "undecodable_message 1" in out
    rc, out, _ = process([bag, tmp_path / "o2.mcap", "--depth-topic", DEPTH + "/compressedDepth"], capsys)
    assert "bad_compressed_image 2" in out


def test_unusable_camera_info_gives_depth_without_cloud(tmp_path, capsys):
    entries = [e for i in range(2) for e in frame_entries(i, info=False)]
    wrong = F.camera_info(CameraInfoFields.from_K(K, 240, 320), F.header(1, FRAME_ID))
    bag = write_bag(tmp_path / "i", [(INFO, INFO_TYPE, 1, wrong)] + entries)
    rc, out, _ = process([bag, tmp_path / "o.mcap"], capsys)
    assert rc == 0 and "without usable camera info (no cloud/camera info out): 2" in out
    msgs = read_bag(tmp_path / "o.mcap")
    assert len(msgs["/depth_completed"]) == 2
    assert "/depth_completed/points" not in msgs and "/depth_completed/rgbd" not in msgs


def test_missing_completed_rgbd_definition(tmp_path, capsys, monkeypatch):
    """A pip install without msg/: every output but CompletedRGBD still works."""
    from lingbot_depth_ros.bag import reader

    bag = make_demo(tmp_path, "in.mcap")
    monkeypatch.setattr(reader, "_msg_file_candidates", lambda: [tmp_path / "none.msg"])
    reader.completed_rgbd_types.cache_clear()
    try:
        rc, _, err = process([bag, tmp_path / "o.mcap"], capsys)
        assert rc == 2 and "publish_rgbd:=false" in err and not (tmp_path / "o.mcap").exists()
        rc, out, _ = process([bag, tmp_path / "o2.mcap", "-p", "publish_rgbd:=false"], capsys)
        assert rc == 0 and "processed 4" in out
    finally:
        reader.completed_rgbd_types.cache_clear()


def test_wrong_encodings_are_named_before_buffer_checks(tmp_path, capsys):
    """A 16UC1 image on the colour topic reads as a wrong encoding (as in the node)."""
    header = F.header(1_000_000_000, FRAME_ID)
    entries = [(INFO, INFO_TYPE, 1, F.camera_info(CameraInfoFields.from_K(K, 480, 640), header)),
               (COLOR, IMAGE, 2, F.image(encode_image(RGB, "rgb8"), header)),
               (DEPTH, IMAGE, 3, F.image(encode_image(RAW, "16UC1"), header))]
    swapped = F.header(1_033_000_000, FRAME_ID)
    entries += [(COLOR, IMAGE, 4, F.image(encode_image(RAW, "16UC1"), swapped)),
                (DEPTH, IMAGE, 5, F.image(encode_image(RGB, "rgb8"), swapped))]
    bag = write_bag(tmp_path / "enc", entries)
    rc, out, _ = process([bag, tmp_path / "o.mcap", "--params", D435I], capsys)
    assert rc == 0 and "processed 1" in out and "bad_encoding 2" in out
