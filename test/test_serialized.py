"""core.serialized (what bag process writes) against rclpy's own serialization, and
ros/messages.py reading received messages back into the pipeline's fields."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import CameraInfo, Image

from lingbot_depth_ros.core import serialized
from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.core.outputs import CameraInfoFields, OutputBuilder, OutputOptions
from lingbot_depth_ros.paths import data_path
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros import messages
from lingbot_depth_ros.ros.messages import cloud_msg, rgbd_msg

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
    assert_same_message(b"".join(serialized.cloud_parts(STAMP, frame_id, out.cloud)), cloud_msg(out.cloud, header))
    if messages.CompletedRGBD is not None:
        assert_same_message(b"".join(serialized.completed_rgbd_parts(out)), rgbd_msg(out, header))


@pytest.mark.parametrize("options", [OutputOptions(depth_encoding="16UC1", cloud_organized=False),
                                     OutputOptions(cloud_decimation=4, cloud_max_range_m=0.5)])
def test_other_output_options_serialize_as_rclpy_does(completed, options):
    out = outputs_for(completed, "cam", options)
    header = messages.make_header(STAMP, "cam")
    assert_same_message(serialized.image_cdr(STAMP, "cam", out.depth), messages.image_msg(out.depth, header))
    assert_same_message(b"".join(serialized.cloud_parts(STAMP, "cam", out.cloud)), cloud_msg(out.cloud, header))


@pytest.mark.parametrize("frame_id", FRAME_IDS)
def test_received_messages_read_back(completed, frame_id):
    """What a subscriber receives (rclpy's deserialized message) reads back to the fields."""
    frame, _ = completed
    header = messages.make_header(STAMP, frame_id)
    depth = encode_image(frame.depth, "32FC1", step=83 * 4 + 12)  # padded rows
    received = deserialize_message(serialize_message(messages.image_msg(depth, header)), Image)
    image = messages.stamped_image(received)
    assert (image.stamp_ns, image.frame_id, image.encoding) == (STAMP, frame_id, "32FC1")
    assert replace(image.fields, data=bytes(image.fields.data)) == depth
    info_msg = messages.camera_info_msg(info_fields(frame), header)
    info = messages.stamped_info(deserialize_message(serialize_message(info_msg), CameraInfo))
    assert (info.stamp_ns, info.frame_id, info.fields) == (STAMP, frame_id, info_fields(frame))


def test_received_pixels_are_not_copied():
    msg = messages.image_msg(encode_image(np.zeros((4, 5), np.uint16), "16UC1"),
                             messages.make_header(0, "x"))
    received = deserialize_message(serialize_message(msg), Image)
    assert messages.stamped_image(received).fields.data is received.data
