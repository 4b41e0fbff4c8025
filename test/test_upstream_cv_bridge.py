"""core/codec.py held against cv_bridge's encoding conventions.

cv_bridge's Python part imports here; its compiled part, `cv_bridge.boost.cv_bridge_boost`
(getCvType: encoding name -> OpenCV type; cvtColor2), is absent (no C++ ROS build on these
machines; where it is present, the stand-in below is not used and the test runs against the
real thing). What is compared without it:
- every encoding the codec reads maps to the OpenCV type name cv_bridge derives from the same
  numpy dtype and channel count (its dtype_with_channels_to_cvtype2 / cvtype_to_name);
- cv_bridge.cv2_to_imgmsg (pure Python) and codec.encode_image write the same step, data and
  is_bigendian for the same array;
- cv_bridge.imgmsg_to_cv2's own Python decoding (rows `step` apart, byte order), given the
  dtype and channels of each encoding as getCvType would, reads codec-written messages
  (padded rows) as codec.decode_fields does. Its big-endian path calls ndarray.newbyteorder,
  which numpy 2 removed: big-endian is compared on the encoding side only.
"""

from __future__ import annotations

import numpy as np
import pytest

cv_bridge = pytest.importorskip(
    "cv_bridge", reason="cv_bridge is not installed: no ROS 2 install and no "
                        "../shared/ros2-upstream (./run.sh installs it)")
cv2 = pytest.importorskip("cv2")

from sensor_msgs.msg import Image  # noqa: E402

from lingbot_depth_ros.core.codec import ENCODINGS, decode_fields, encode_image  # noqa: E402

#: sensor_msgs/image_encodings.hpp: the OpenCV type of each encoding (what getCvType returns)
CV_TYPE_OF_ENCODING = {"rgb8": "8UC3", "bgr8": "8UC3", "rgba8": "8UC4", "bgra8": "8UC4",
                       "mono8": "8UC1", "8UC1": "8UC1", "mono16": "16UC1", "16UC1": "16UC1",
                       "32FC1": "32FC1"}

try:
    from cv_bridge.boost import cv_bridge_boost  # noqa: F401
    HAS_BOOST = True
except ImportError:
    HAS_BOOST = False


def sample(encoding: str, seed: int = 0, shape=(7, 5)) -> np.ndarray:
    dtype, channels = ENCODINGS[encoding]
    rng = np.random.default_rng(seed)
    full = shape + ((channels,) if channels > 1 else ())
    if dtype.kind == "f":
        return rng.uniform(0.1, 20.0, full).astype(dtype)
    return rng.integers(0, np.iinfo(dtype).max, full, endpoint=True).astype(dtype)


def as_msg(fields) -> Image:
    msg = Image(height=fields.height, width=fields.width, encoding=fields.encoding,
                is_bigendian=fields.is_bigendian, step=fields.step)
    msg.data = fields.data
    return msg


@pytest.fixture()
def bridge():
    bridge = cv_bridge.CvBridge()
    if not HAS_BOOST:  # stand-in for getCvType only (see the module docstring)
        def dtype_and_channels(encoding):
            name = CV_TYPE_OF_ENCODING[encoding]
            cv_type = getattr(cv2, f"CV_{name}")
            return bridge.cvdepth_to_numpy_depth[cv_type & 7], int(name.split("C")[1])
        bridge.encoding_to_dtype_with_channels = dtype_and_channels
    return bridge


def test_the_compiled_part_is_absent_here_or_used():
    # Recorded, so a machine with the real cv_bridge shows it ran against getCvType itself.
    assert HAS_BOOST in (True, False)
    if not HAS_BOOST:
        with pytest.raises(ImportError):
            cv_bridge.CvBridge().encoding_to_cvtype2("rgb8")


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_codec_dtypes_are_cv_bridges_types(bridge, encoding):
    dtype, channels = ENCODINGS[encoding]
    assert bridge.dtype_with_channels_to_cvtype2(dtype, channels) == CV_TYPE_OF_ENCODING[encoding]
    assert bridge.cvtype_to_name[getattr(cv2, f"CV_{CV_TYPE_OF_ENCODING[encoding]}")] == \
        CV_TYPE_OF_ENCODING[encoding]


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("bigendian", [False, True])
def test_encoding_writes_what_cv2_to_imgmsg_writes(bridge, encoding, bigendian):
    array = sample(encoding)
    if bigendian and array.dtype.itemsize == 1:
        pytest.skip("one-byte pixels have no byte order")
    theirs = bridge.cv2_to_imgmsg(array.astype(array.dtype.newbyteorder(">")) if bigendian else array)
    ours = encode_image(array, encoding, bigendian=bigendian)
    assert theirs.encoding == CV_TYPE_OF_ENCODING[encoding]  # passthrough names the cv type
    assert (theirs.height, theirs.width, theirs.step) == (ours.height, ours.width, ours.step)
    assert bool(theirs.is_bigendian) == bool(ours.is_bigendian)
    assert bytes(theirs.data) == ours.data
    # and the codec reads cv_bridge's message back (under the encoding's own name)
    theirs.encoding = encoding
    assert np.array_equal(decode_fields(theirs), array)


def padded_msg(array: np.ndarray, encoding: str, pad_bytes: int) -> Image:
    row = encode_image(array, encoding).step
    return as_msg(encode_image(array, encoding, step=row + pad_bytes))


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad_pixels", [0, 3])
def test_imgmsg_to_cv2_reads_codec_messages_as_the_codec_does(bridge, encoding, pad_pixels):
    array = sample(encoding, seed=1)
    dtype, channels = ENCODINGS[encoding]
    msg = padded_msg(array, encoding, pad_pixels * dtype.itemsize * channels)
    theirs = bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough")
    assert theirs.shape == array.shape and theirs.dtype == array.dtype
    assert np.array_equal(theirs, decode_fields(msg))
    assert np.array_equal(theirs, array)


@pytest.mark.parametrize("encoding", ["rgba8", "bgra8"])
def test_difference_step_not_a_whole_number_of_pixels(bridge, encoding):
    """REP 117's step is bytes per row; cv_bridge's Python decode takes step / pixel size
    as the row length in pixels, so rows padded by a part of a pixel are read skewed. The
    codec reads them right (docs/upstream_tier.md)."""
    array = sample(encoding, seed=2)
    msg = padded_msg(array, encoding, 3)
    assert np.array_equal(decode_fields(msg), array)
    assert not np.array_equal(bridge.imgmsg_to_cv2(msg, desired_encoding="passthrough"), array)
