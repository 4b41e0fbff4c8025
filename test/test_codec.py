"""numpy <-> sensor_msgs/Image field codec: round trips, zero-copy views, bad buffers."""

import array
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lingbot_depth_ros.core.codec import ENCODINGS, decode_image, encode_image, from_rgb8, to_rgb8
from lingbot_depth_ros.core.errors import BufferSizeError, EncodingError

MULTI_BYTE = [name for name, (dtype, _) in ENCODINGS.items() if dtype.itemsize > 1]


def bytes_per_pixel(encoding: str) -> int:
    dtype, channels = ENCODINGS[encoding]
    return dtype.itemsize * channels


@st.composite
def images(draw, encodings=tuple(ENCODINGS)):
    """(encoding, array) with any values of the encoding's dtype (NaN and inf included)."""
    encoding = draw(st.sampled_from(encodings))
    dtype, channels = ENCODINGS[encoding]
    height = draw(st.integers(1, 6))
    width = draw(st.integers(1, 6))
    shape = (height, width) if channels == 1 else (height, width, channels)
    return encoding, draw(arrays(dtype, shape))


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Equal shapes and identical bytes (so NaN payloads compare too)."""
    return a.shape == b.shape and np.array_equal(
        np.ascontiguousarray(a).view(np.uint8), np.ascontiguousarray(b).view(np.uint8))


def decode(fields, data=None):
    return decode_image(fields.height, fields.width, fields.encoding, fields.is_bigendian,
                        fields.step, fields.data if data is None else data)


@settings(max_examples=300, deadline=None)
@given(images(), st.integers(0, 9), st.booleans())
def test_round_trip_with_padding_and_byte_order(image, padding, bigendian):
    encoding, arr = image
    row_bytes = arr.shape[1] * bytes_per_pixel(encoding)
    fields = encode_image(arr, encoding, step=row_bytes + padding, bigendian=bigendian)
    assert fields.step == row_bytes + padding
    assert len(fields.data) == fields.step * arr.shape[0]
    assert fields.is_bigendian == int(bigendian and encoding in MULTI_BYTE)
    rows = np.frombuffer(fields.data, np.uint8).reshape(arr.shape[0], fields.step)
    assert not rows[:, row_bytes:].any(), "row padding must be zero bytes"
    decoded = decode(fields)
    assert decoded.dtype == ENCODINGS[encoding][0] and decoded.dtype.isnative
    assert same_bits(decoded, arr)


@pytest.mark.parametrize("encoding,wire,expected", [
    ("16UC1", b"\x01\x02\x00\x03", [258, 3]),
    ("mono16", b"\xff\xfe\x00\x01", [65534, 1]),
    ("32FC1", struct.pack(">ff", 1.5, -2.25), [1.5, -2.25]),
])
def test_big_endian_wire_bytes_decode_to_values(encoding, wire, expected):
    decoded = decode_image(1, 2, encoding, 1, len(wire), wire)
    np.testing.assert_array_equal(decoded, np.array([expected], dtype=ENCODINGS[encoding][0]))
    assert decoded.dtype.isnative
    assert encode_image(decoded, encoding, bigendian=True).data == wire


@settings(max_examples=100, deadline=None)
@given(images(), st.integers(0, 9), st.booleans())
def test_little_endian_decodes_as_a_view_of_the_buffer(image, padding, as_numpy):
    encoding, arr = image
    row_bytes = arr.shape[1] * bytes_per_pixel(encoding)
    fields = encode_image(arr, encoding, step=row_bytes + padding)
    # rclpy hands over array.array, rosbags a numpy uint8 array
    buffer = (np.frombuffer(fields.data, np.uint8).copy() if as_numpy
              else array.array("B", fields.data))
    decoded = decode(fields, buffer)
    assert np.shares_memory(decoded, np.frombuffer(buffer, np.uint8))
    assert same_bits(decoded, arr)


@pytest.mark.parametrize("encoding", MULTI_BYTE)
def test_big_endian_decodes_to_a_native_copy(encoding):
    arr = np.arange(12, dtype=ENCODINGS[encoding][0]).reshape(3, 4)
    fields = encode_image(arr, encoding, step=4 * arr.itemsize + 3, bigendian=True)
    buffer = np.frombuffer(fields.data, np.uint8)
    decoded = decode(fields, buffer)
    assert not np.shares_memory(decoded, buffer)
    np.testing.assert_array_equal(decoded, arr)


@settings(max_examples=150, deadline=None)
@given(images(), st.integers(0, 9), st.data())
def test_truncated_buffer_raises(image, padding, data):
    encoding, arr = image
    row_bytes = arr.shape[1] * bytes_per_pixel(encoding)
    fields = encode_image(arr, encoding, step=row_bytes + padding)
    # The last row's padding is optional on the wire; anything shorter is truncated.
    needed = fields.step * (arr.shape[0] - 1) + row_bytes
    assert same_bits(decode(fields, fields.data[:needed]), arr)
    cut = data.draw(st.integers(1, needed))
    with pytest.raises(BufferSizeError):
        decode(fields, fields.data[:needed - cut])


@settings(max_examples=100, deadline=None)
@given(images(), st.data())
def test_step_shorter_than_a_row_raises(image, data):
    encoding, arr = image
    row_bytes = arr.shape[1] * bytes_per_pixel(encoding)
    step = data.draw(st.integers(0, row_bytes - 1))
    fields = encode_image(arr, encoding)
    with pytest.raises(BufferSizeError):
        decode_image(arr.shape[0], arr.shape[1], encoding, 0, step, fields.data)
    with pytest.raises(BufferSizeError):
        encode_image(arr, encoding, step=step)


@pytest.mark.parametrize("height,width", [(0, 4), (4, 0), (-1, 4)])
def test_empty_image_raises(height, width):
    with pytest.raises(BufferSizeError):
        decode_image(height, width, "mono8", 0, 4, b"\0" * 16)


@pytest.mark.parametrize("encoding", ["yuv422", "bayer_rggb8", "RGB8", "16uc1", "", "64FC1"])
def test_unknown_encodings_raise(encoding):
    with pytest.raises(EncodingError):
        decode_image(2, 2, encoding, 0, 8, b"\0" * 16)
    with pytest.raises(EncodingError):
        encode_image(np.zeros((2, 2), np.uint8), encoding)


@pytest.mark.parametrize("encoding,arr", [
    ("rgb8", np.zeros((2, 2), np.uint8)),          # channels missing
    ("mono8", np.zeros((2, 2, 3), np.uint8)),      # too many channels
    ("16UC1", np.zeros((2, 2), np.float32)),       # wrong dtype
    ("32FC1", np.zeros((2, 2), np.float64)),       # float64 is not 32FC1
])
def test_encode_rejects_arrays_that_do_not_fit_the_encoding(encoding, arr):
    with pytest.raises(EncodingError):
        encode_image(arr, encoding)


@pytest.mark.parametrize("encoding,pixel,expected", [
    ("rgb8", [10, 20, 30], [10, 20, 30]),
    ("bgr8", [10, 20, 30], [30, 20, 10]),
    ("rgba8", [10, 20, 30, 40], [10, 20, 30]),
    ("bgra8", [10, 20, 30, 40], [30, 20, 10]),
    ("mono8", [7], [7, 7, 7]),
])
def test_to_rgb8_channel_order(encoding, pixel, expected):
    image = np.array(pixel, np.uint8).reshape(1, 1, -1)
    image = image[:, :, 0] if encoding == "mono8" else image
    rgb = to_rgb8(image, encoding)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 1, 3)
    assert rgb[0, 0].tolist() == expected


@settings(max_examples=50, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5), st.just(3))),
       st.sampled_from(["rgb8", "bgr8", "rgba8", "bgra8"]), st.integers(0, 5))
def test_colour_through_the_wire_comes_back_as_rgb(rgb, encoding, padding):
    """What a camera driver publishes in any colour encoding decodes to the same RGB."""
    wire_image = {"rgb8": rgb, "bgr8": rgb[:, :, ::-1],
                  "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
                  "bgra8": np.dstack([rgb[:, :, ::-1], np.zeros(rgb.shape[:2], np.uint8)])}
    arr = np.ascontiguousarray(wire_image[encoding])
    fields = encode_image(arr, encoding, step=arr.shape[1] * arr.shape[2] + padding)
    np.testing.assert_array_equal(to_rgb8(decode(fields), encoding), rgb)


@pytest.mark.parametrize("encoding", ["16UC1", "mono16", "32FC1", "8UC1"])
def test_to_rgb8_rejects_non_colour_encodings(encoding):
    with pytest.raises(EncodingError):
        to_rgb8(np.zeros((2, 2), ENCODINGS[encoding][0]), encoding)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
def test_from_rgb8_is_what_to_rgb8_reads_back(encoding):
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    wire = from_rgb8(rgb, encoding)
    assert wire.shape[2] == ENCODINGS[encoding][1]
    np.testing.assert_array_equal(to_rgb8(wire, encoding), rgb)
    if encoding == "bgra8":  # the ZED's order: blue first, opaque
        assert wire[0, 1].tolist() == [5, 4, 3, 255]


def test_from_rgb8_refuses_what_it_cannot_make():
    with pytest.raises(EncodingError, match="cannot make 'mono8'"):
        from_rgb8(np.zeros((1, 1, 3), np.uint8), "mono8")
