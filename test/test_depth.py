"""Depth validation: raw sensor units -> metres with NaN for every kind of no-data."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from lingbot_depth_ros.core.depth import (
    DepthRange, depth_to_metres, metres_to_16uc1, raw_to_32fc1, require_some_valid)
from lingbot_depth_ros.core.errors import EncodingError, InvalidDepthError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAN = np.nan


def test_16uc1_millimetres_to_metres():
    raw = np.array([[0, 100, 1000, 2500], [10000, 10001, 65535, 30]], np.uint16)
    metres = depth_to_metres(raw, "16UC1", valid_range=DepthRange(0.1, 10.0))
    assert metres.dtype == np.float32 and metres.shape == raw.shape
    np.testing.assert_array_equal(
        metres, np.array([[NAN, 0.1, 1.0, 2.5], [10.0, NAN, NAN, NAN]], np.float32))


@pytest.mark.parametrize("encoding", ["16UC1", "mono16"])
def test_depth_scale_is_metres_per_unit(encoding):
    raw = np.array([[5000, 12345]], np.uint16)  # 0.1 mm units, as some sensors publish
    metres = depth_to_metres(raw, encoding, depth_scale=1e-4)
    np.testing.assert_allclose(metres, [[0.5, 1.2345]], rtol=1e-6)


def test_32fc1_keeps_only_finite_positive_in_range_metres():
    values = np.array([[NAN, np.inf, -np.inf, -1.0, 0.0, 0.05, 1.5, 20.0]], np.float32)
    metres = depth_to_metres(values, "32FC1")
    np.testing.assert_array_equal(metres, [[NAN] * 6 + [1.5, NAN]])
    assert not np.shares_memory(metres, values), "the caller's image must not be modified"
    assert values[0, 6] == 1.5 and np.isinf(values[0, 1])


def test_zero_is_no_data_even_when_the_range_starts_at_zero():
    for encoding, raw in (("16UC1", np.array([[0, 7]], np.uint16)),
                          ("32FC1", np.array([[0.0, 0.007]], np.float32))):
        metres = depth_to_metres(raw, encoding, valid_range=DepthRange(0.0, 5.0))
        assert np.isnan(metres[0, 0]) and metres[0, 1] == pytest.approx(0.007)


def test_example_3_spikes_and_near_garbage_become_nan():
    raw = cv2.imread(str(EXAMPLES / "3" / "raw_depth.png"), cv2.IMREAD_UNCHANGED)
    spikes = raw > 60000            # the sensor's ~65.5 m saturation values
    garbage = (raw > 0) & (raw < 50)
    assert spikes.any() and garbage.any(), "example 3 no longer holds the faults under test"
    metres = depth_to_metres(raw, "16UC1", valid_range=DepthRange(0.05, 10.0))
    assert np.isnan(metres[spikes]).all()
    assert np.isnan(metres[garbage]).all()
    assert np.isnan(metres[raw == 0]).all()
    in_range = (raw >= 50) & (raw <= 10000)
    np.testing.assert_array_equal(metres[in_range],
                                  raw[in_range].astype(np.float32) * np.float32(0.001))
    assert np.isfinite(metres).sum() == in_range.sum()


@settings(max_examples=200, deadline=None)
@given(arrays(np.uint16, st.tuples(st.integers(1, 8), st.integers(1, 8)),
              elements=st.integers(100, 10000)))
def test_metres_to_16uc1_round_trip(mm):
    metres = depth_to_metres(mm, "16UC1", valid_range=DepthRange(0.1, 10.0))
    assert np.isfinite(metres).all()
    np.testing.assert_array_equal(metres_to_16uc1(metres), mm)


def test_metres_to_16uc1_marks_no_data_with_zero_and_clips():
    metres = np.array([[NAN, np.inf, -np.inf, -0.5, 0.0004, 0.0006, 70.0, 1.2344]], np.float32)
    np.testing.assert_array_equal(metres_to_16uc1(metres), [[0, 0, 0, 0, 0, 1, 65535, 1234]])


@pytest.mark.parametrize("low,high", [(1.0, 0.5), (2.0, 2.0), (-0.1, 1.0), (0.0, np.inf),
                                      (NAN, 1.0), (0.1, NAN)])
def test_bad_range_raises(low, high):
    with pytest.raises(ValueError):
        DepthRange(low, high)


@pytest.mark.parametrize("scale", [0.0, -0.001, NAN])
def test_bad_depth_scale_raises(scale):
    with pytest.raises(ValueError):
        depth_to_metres(np.ones((2, 2), np.uint16), "16UC1", depth_scale=scale)


@pytest.mark.parametrize("encoding", ["rgb8", "mono8", "8UC1", "64FC1"])
def test_non_depth_encoding_raises(encoding):
    with pytest.raises(EncodingError):
        depth_to_metres(np.ones((2, 2), np.uint8), encoding)


def test_require_some_valid():
    depth = np.full((4, 4), NAN, np.float32)
    with pytest.raises(InvalidDepthError):
        require_some_valid(depth)
    depth[0, :2] = 1.0
    assert require_some_valid(depth) == pytest.approx(2 / 16)
    with pytest.raises(InvalidDepthError):
        require_some_valid(depth, min_fraction=0.5)


@pytest.mark.parametrize("scale", [0.001, 0.00025, 1.0])
@pytest.mark.parametrize("low, high", [(0.1, 10.0), (0.0, 5.0), (0.25, 0.3)])
def test_every_16bit_value_converts_as_defined(scale, low, high):
    """All 65536 raw values: float32(raw) * float32(scale), NaN outside [low, high] or at 0."""
    raw = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    metres = depth_to_metres(raw, "16UC1", scale, DepthRange(low, high))
    expected = raw.astype(np.float32) * np.float32(scale)
    outside = (expected < np.float32(low)) | (expected > np.float32(high)) | (raw == 0)
    assert np.isnan(metres[outside]).all()
    np.testing.assert_array_equal(metres[~outside], expected[~outside])
    assert metres.dtype == np.float32


def test_raw_to_32fc1_keeps_every_reading_and_marks_none_nan():
    """What a 32FC1 driver (the ZED) sends for raw depth: no range limit, 0 -> NaN."""
    raw = np.array([[0, 50, 1500], [25000, 65535, 0]], np.uint16)
    metres = raw_to_32fc1(raw)
    assert metres.dtype == np.float32
    np.testing.assert_array_equal(np.isnan(metres), raw == 0)
    np.testing.assert_allclose(metres[raw > 0], raw[raw > 0] * 0.001, rtol=1e-6)  # float32 rounding
    np.testing.assert_allclose(raw_to_32fc1(raw, 0.0001)[0, 2], 0.15, rtol=1e-6)
