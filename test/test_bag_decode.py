"""Decoding of bag image messages: raw Image, CompressedImage colour and image_transport's
compressedDepth (12-byte ConfigHeader + PNG), against our encoder and hand-built payloads."""

import struct
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lingbot_depth_ros.bag.decode import (COMPRESSED, IMAGE, CompressedImageError,
                                          decode_color, decode_compressed_depth, decode_depth,
                                          encode_compressed_color, encode_compressed_depth)
from lingbot_depth_ros.core.captures import read_raw_depth, read_rgb
from lingbot_depth_ros.core.codec import encode_image
from lingbot_depth_ros.core.depth import DepthRange
from lingbot_depth_ros.core.errors import BufferSizeError, EncodingError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
WIDE = DepthRange(min_m=0.0, max_m=1000.0)


def compressed(fmt: str, data: bytes):
    return SimpleNamespace(format=fmt, data=np.frombuffer(data, np.uint8))


def image(array: np.ndarray, encoding: str):
    f = encode_image(array, encoding)
    return SimpleNamespace(height=f.height, width=f.width, encoding=f.encoding,
                           is_bigendian=f.is_bigendian, step=f.step, data=np.frombuffer(f.data, np.uint8))


@pytest.fixture(scope="module")
def capture3():
    return read_rgb(EXAMPLES / "3" / "rgb.jpg"), read_raw_depth(EXAMPLES / "3" / "raw_depth.png")


def test_16uc1_compressed_depth_is_lossless_below_depth_max(capture3):
    _, raw = capture3
    fmt, data = encode_compressed_depth(raw, depth_max=70.0)  # keep the 65535 mm spikes
    assert fmt == "16UC1; compressedDepth png"
    kind, a, b = struct.unpack_from("<iff", data)
    assert (kind, a, b) == (0, 0.0, 0.0)  # 16UC1 carries no quantisation
    encoding, back = decode_compressed_depth(fmt, data)
    assert encoding == "16UC1" and back.dtype == np.uint16
    np.testing.assert_array_equal(back, raw)


def test_16uc1_publisher_zeroes_beyond_depth_max(capture3):
    _, raw = capture3
    assert (raw > 10000).any()  # example 3 has 65535 mm spikes
    _, back = decode_compressed_depth(*encode_compressed_depth(raw))  # default depth_max 10 m
    np.testing.assert_array_equal(back, np.where(raw > 10000, 0, raw))


def test_32fc1_header_holds_the_publisher_quantisation():
    depth = np.full((4, 5), 2.0, np.float32)
    _, data = encode_compressed_depth(depth, depth_max=10.0, depth_quantization=100.0)
    kind, a, b = struct.unpack_from("<iff", data)
    assert kind == 0
    assert a == pytest.approx(100.0 * 101.0)  # depthQuantA = Z0 (Z0 + 1)
    assert b == pytest.approx(1.0 - a / 10.0)  # depthQuantB = 1 - A / depth_max
    png = cv2.imdecode(np.frombuffer(data[12:], np.uint8), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and int(png[0, 0]) == int(a / 2.0 + b)


def test_32fc1_inverse_depth_round_trip_error_and_holes():
    rng = np.random.default_rng(3)
    depth = rng.uniform(0.2, 9.5, size=(48, 64)).astype(np.float32)
    depth[5:9, 10:20] = np.nan
    depth[0, :5] = 12.0  # beyond depth_max: no data
    fmt, data = encode_compressed_depth(depth)
    encoding, back = decode_compressed_depth(fmt, data)
    assert encoding == "32FC1" and back.dtype == np.float32
    assert np.isnan(back[5:9, 10:20]).all() and np.isnan(back[0, :5]).all()
    valid = np.isfinite(depth) & (depth < 10.0)
    # one quantisation step of q = A/z + B is z^2 / A (truncation: the decoded depth is farther)
    step = depth[valid].astype(np.float64) ** 2 / (100.0 * 101.0)
    err = back[valid] - depth[valid]
    assert (err >= -1e-5).all() and (err <= step * 1.01 + 1e-5).all()


def test_decode_depth_validates_to_metres(capture3):
    _, raw = capture3
    msg = compressed(*encode_compressed_depth(raw))
    metres = decode_depth(msg, COMPRESSED, depth_scale=0.001, valid_range=DepthRange(0.1, 6.0))
    expected = raw.astype(np.float32) * np.float32(0.001)
    keep = (raw >= 100) & (raw <= 6000)
    np.testing.assert_array_equal(metres[keep], expected[keep])
    assert np.isnan(metres[~keep]).all()


@pytest.mark.parametrize("fmt", ["16UC1; compressedDepth", "16UC1; compressedDepth png",
                                 "16UC1;compressedDepth png"])
def test_format_spellings_of_old_and_new_publishers(fmt):
    raw = np.arange(12, dtype=np.uint16).reshape(3, 4) * 100
    _, data = encode_compressed_depth(raw)
    np.testing.assert_array_equal(decode_compressed_depth(fmt, data)[1], raw)


@pytest.mark.parametrize("fmt, error", [
    ("16UC1; compressedDepth rvl", "rvl"),
    ("8UC3; compressedDepth png", "8UC3"),
    ("16UC1; jpeg compressed bgr8", "not a compressedDepth"),
])
def test_unsupported_formats_name_the_problem(fmt, error):
    _, data = encode_compressed_depth(np.ones((2, 2), np.uint16))
    with pytest.raises(EncodingError, match=error):
        decode_compressed_depth(fmt, data)


def test_truncated_and_corrupt_payloads_raise_compressed_image_error():
    fmt, data = encode_compressed_depth(np.full((30, 40), 1234, np.uint16))
    with pytest.raises(CompressedImageError, match="12-byte header"):
        decode_compressed_depth(fmt, data[:12])
    with pytest.raises(CompressedImageError, match="corrupt"):
        decode_compressed_depth(fmt, data[:12] + b"\x89PNG garbage" + data[40:60])
    with pytest.raises(CompressedImageError, match="corrupt"):
        decode_color(compressed("rgb8; jpeg compressed bgr8", b"\xff\xd8 not a jpeg"), COMPRESSED)
    with pytest.raises(CompressedImageError, match="no data"):
        decode_color(compressed("jpeg", b""), COMPRESSED)


def test_png_colour_round_trip_is_exact_and_jpeg_close(capture3):
    rgb, _ = capture3
    fmt, data = encode_compressed_color(rgb, "png")
    assert fmt == "rgb8; png compressed bgr8"
    np.testing.assert_array_equal(decode_color(compressed(fmt, data), COMPRESSED), rgb)
    back = decode_color(compressed(*encode_compressed_color(rgb, "jpeg", quality=95)), COMPRESSED)
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb).mean() < 3.0  # right channel order, small loss


def test_rgb8_ordered_payload_is_not_swapped():
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200  # red
    ok, png = cv2.imencode(".png", rgb)  # stored as if BGR: the payload is in RGB order
    assert ok
    back = decode_color(compressed("rgb8; png compressed rgb8", png.tobytes()), COMPRESSED)
    assert back[0, 0].tolist() == [200, 0, 0]


def test_wrong_stream_kind_is_an_encoding_error():
    fmt, data = encode_compressed_depth(np.ones((4, 4), np.uint16))
    with pytest.raises(EncodingError, match="compressedDepth"):
        decode_color(compressed(fmt, data), COMPRESSED)
    with pytest.raises(EncodingError, match="only image_transport's compressedDepth"):
        decode_depth(compressed(*encode_compressed_color(np.zeros((4, 4, 3), np.uint8))), COMPRESSED)
    with pytest.raises(EncodingError, match="not a depth encoding"):
        decode_depth(image(np.zeros((4, 4, 3), np.uint8), "rgb8"), IMAGE)
    with pytest.raises(EncodingError, match="cannot read colour"):
        decode_color(image(np.zeros((4, 4, 3), np.uint8), "rgb8"), "sensor_msgs/msg/PointCloud2")


def test_raw_images_bgr8_and_short_buffers():
    rgb = np.random.default_rng(0).integers(0, 255, (6, 7, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_color(image(rgb[..., ::-1].copy(), "bgr8"), IMAGE), rgb)
    short = image(np.zeros((6, 7), np.uint16), "16UC1")
    short.data = short.data[:-1]
    with pytest.raises(BufferSizeError):
        decode_depth(short, IMAGE)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_16uc1_round_trip_any_size(h, w, seed):
    raw = np.random.default_rng(seed).integers(0, 10001, (h, w), dtype=np.uint16)
    msg = compressed(*encode_compressed_depth(raw))
    metres = decode_depth(msg, COMPRESSED, depth_scale=0.001, valid_range=WIDE)
    expected = np.where(raw > 0, raw.astype(np.float32) * np.float32(0.001), np.nan)
    np.testing.assert_array_equal(metres, expected)
