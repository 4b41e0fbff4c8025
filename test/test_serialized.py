"""core.serialized against rclpy's own serialization: the node's serialized outputs must be
ordinary messages to every subscriber, and its reader must read what any publisher sends."""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message

from lingbot_depth_ros.core import serialized
from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.errors import BufferSizeError, EncodingError
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.core.outputs import CameraInfoFields, OutputBuilder, OutputOptions
from lingbot_depth_ros.paths import data_path
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros import messages
from reference_messages import cloud_msg, rgbd_msg

STAMP = 1_700_000_000_123_456_789
#: frame ids of every length modulo 8, so each field after them meets each alignment case
FRAME_IDS = ["", "a", "ab", "abc", "cam_ab", "optical", "camera_color_optical_frame", "ünï"]


@pytest.fixture(scope="module")
def completed():
    """A real capture crop (odd width: padded rows nowhere, odd byte counts everywhere)."""
    full = load_capture(data_path("examples") / "3")
    frame = RGBDFrame(rgb=full.rgb[200:261, 300:383].copy(), depth=full.depth[200:261, 300:383].copy(),
                      K=full.K, stamp_ns=STAMP, frame_id="f")
    return frame, create_engine("guided").complete(frame)


def info_fields(frame) -> CameraInfoFields:
    base = CameraInfoFields.from_K(frame.K, *frame.depth.shape)
    return replace(base, d=(0.1, -0.2, 0.0, 0.001, 0.01), binning_x=2, roi=(1, 2, 3, 4, True))


def outputs_for(completed, frame_id: str, options: OutputOptions = OutputOptions()):
    frame, result = completed
    frame = replace(frame, frame_id=frame_id)
    return OutputBuilder(options).build(frame, result, color=encode_image(frame.rgb, "rgb8"),
                                        info=info_fields(frame), model="model.pt")


def assert_same_message(ours: bytes, msg) -> None:
    """Same length as rclpy's bytes and the same message when read back (padding bytes,
    which Fast CDR leaves unset, may differ)."""
    reference = serialize_message(msg)
    assert len(ours) == len(reference)
    assert deserialize_message(ours, type(msg)) == deserialize_message(reference, type(msg))


@pytest.mark.parametrize("frame_id", FRAME_IDS)
def test_outputs_serialize_as_rclpy_does(completed, frame_id):
    out = outputs_for(completed, frame_id)
    header = messages.make_header(out.stamp_ns, frame_id)
    for fields in (out.depth, out.source_mask, out.color):
        assert_same_message(serialized.image_cdr(STAMP, frame_id, fields), messages.image_msg(fields, header))
    assert_same_message(serialized.camera_info_cdr(STAMP, frame_id, out.camera_info),
                        messages.camera_info_msg(out.camera_info, header))
    assert_same_message(serialized.cloud_cdr(STAMP, frame_id, out.cloud), cloud_msg(out.cloud, header))
    if messages.CompletedRGBD is not None:
        assert_same_message(serialized.completed_rgbd_cdr(out), rgbd_msg(out, header))


@pytest.mark.parametrize("options", [OutputOptions(depth_encoding="16UC1", cloud_organized=False),
                                     OutputOptions(cloud_decimation=4, cloud_max_range_m=0.5)])
def test_other_output_options_serialize_as_rclpy_does(completed, options):
    out = outputs_for(completed, "cam", options)
    header = messages.make_header(STAMP, "cam")
    assert_same_message(serialized.image_cdr(STAMP, "cam", out.depth), messages.image_msg(out.depth, header))
    assert_same_message(serialized.cloud_cdr(STAMP, "cam", out.cloud), cloud_msg(out.cloud, header))


@pytest.mark.parametrize("frame_id", FRAME_IDS)
def test_reads_what_rclpy_serializes(completed, frame_id):
    frame, _ = completed
    header = messages.make_header(STAMP, frame_id)
    depth = encode_image(frame.depth, "32FC1", step=83 * 4 + 12)  # padded rows
    image = serialized.read_image(serialize_message(messages.image_msg(depth, header)))
    assert (image.stamp_ns, image.frame_id, image.encoding) == (STAMP, frame_id, "32FC1")
    assert replace(image.fields, data=bytes(image.fields.data)) == depth
    info = serialized.read_camera_info(serialize_message(messages.camera_info_msg(info_fields(frame), header)))
    assert (info.stamp_ns, info.frame_id, info.fields) == (STAMP, frame_id, info_fields(frame))


def test_received_pixels_are_not_copied():
    data = serialize_message(messages.image_msg(encode_image(np.zeros((4, 5), np.uint16), "16UC1"),
                                                messages.make_header(0, "x")))
    view = serialized.read_image(data).fields.data
    assert isinstance(view, memoryview) and view.obj is data


def test_reads_big_endian_cdr():
    """A publisher on a big-endian machine serializes big-endian CDR."""
    body = (struct.pack(">iI", 5, 7) + struct.pack(">I", 2) + b"f\x00" + b"\x00\x00"
            + struct.pack(">II", 1, 2) + struct.pack(">I", 6) + b"mono8\x00" + b"\x01" + b"\x00"  # is_bigendian, pad
            + struct.pack(">I", 2) + struct.pack(">I", 2) + b"\x01\x02")
    image = serialized.read_image(b"\x00\x00\x00\x00" + body)
    assert (image.stamp_ns, image.frame_id) == (5 * 1_000_000_000 + 7, "f")
    assert (image.fields.height, image.fields.width, image.fields.encoding) == (1, 2, "mono8")
    assert (image.fields.is_bigendian, image.fields.step) == (1, 2)
    assert bytes(image.fields.data) == b"\x01\x02"


@pytest.mark.parametrize("cut", [0, 3, 10, 30, 50, -1])
def test_truncated_serialized_image_is_a_specific_error(cut):
    data = serialize_message(messages.image_msg(encode_image(np.ones((4, 5), np.uint16), "16UC1"),
                                                messages.make_header(STAMP, "camera")))
    with pytest.raises(BufferSizeError, match="truncated|no CDR header"):
        serialized.read_image(data[:cut])


def test_truncated_camera_info_is_a_specific_error():
    info = CameraInfoFields.from_K(np.array([[500.0, 0, 320], [0, 500, 240], [0, 0, 1]]), 480, 640)
    data = serialize_message(messages.camera_info_msg(info, messages.make_header(STAMP, "c")))
    with pytest.raises(BufferSizeError):
        serialized.read_camera_info(data[:200])


def test_bytes_that_are_not_cdr_are_a_specific_error():
    with pytest.raises(EncodingError, match="not plain CDR"):
        serialized.read_image(b"\x89PNG\r\n\x1a\n" + bytes(64))

