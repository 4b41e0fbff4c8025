"""core.outputs: the plain-data outputs shared by the node and the bag tools (ROS-free)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.codec import decode_image, encode_image
from lingbot_depth_ros.core.depth import metres_to_16uc1
from lingbot_depth_ros.core.errors import IntrinsicsError
from lingbot_depth_ros.core.frame import SourceMask
from lingbot_depth_ros.core.outputs import (CameraInfoFields, OutputBuilder, OutputOptions,
                                            depth_pixels, nominal_intrinsics)
from lingbot_depth_ros.core.pointcloud import XYZRGB_DTYPE, unpack_rgb
from lingbot_depth_ros.engines import create_engine

EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[1] / "examples"


def depth_image(depth_m, encoding: str):
    """Completed metres -> 32FC1 or 16UC1 image fields, as the node encodes them."""
    return encode_image(depth_pixels(depth_m, encoding), encoding)


def build_outputs(frame, result, options: OutputOptions, **kwargs):
    """One frame's outputs from a builder of its own (no buffers shared between calls)."""
    return OutputBuilder(options).build(frame, result, **kwargs)


@pytest.fixture(scope="module")
def completed():
    frame = load_capture(EXAMPLES / "3")  # holes, 65535 mm spikes and sub-5 cm garbage
    frame.stamp_ns, frame.frame_id = 1_234_567_890_123, "camera_color_optical_frame"
    return frame, create_engine("nearest").complete(frame)


@pytest.fixture(scope="module")
def info(completed):
    frame, _ = completed
    return CameraInfoFields.from_K(frame.K, frame.height, frame.width)


def decoded(fields):
    return decode_image(fields.height, fields.width, fields.encoding, fields.is_bigendian,
                        fields.step, fields.data)


def cloud_points(cloud):
    return np.frombuffer(cloud.data, dtype=XYZRGB_DTYPE).reshape(cloud.height, cloud.width)


def test_depth_encodings():
    depth = np.array([[0.5, np.nan], [1.2344, 70.0]], dtype=np.float32)
    f32 = depth_image(depth, "32FC1")
    assert f32.encoding == "32FC1" and np.array_equal(decoded(f32), depth, equal_nan=True)
    u16 = depth_image(depth, "16UC1")
    assert u16.encoding == "16UC1" and decoded(u16).tolist() == [[500, 0], [1234, 65535]]
    with pytest.raises(ValueError):
        depth_image(depth, "mono8")


@pytest.mark.parametrize("kwargs", [{"depth_encoding": "8UC1"}, {"cloud_decimation": 0},
                                    {"cloud_max_range_m": -1.0}])
def test_invalid_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        OutputOptions(**kwargs)


def test_camera_info_fields(completed):
    frame, _ = completed
    info = CameraInfoFields.from_K(frame.K, frame.height, frame.width)
    assert np.array_equal(info.K, frame.K) and not info.has_distortion
    assert info.p[:3] == tuple(frame.K[0]) and info.p[3] == 0.0
    info.check_size(frame.height, frame.width)
    with pytest.raises(IntrinsicsError):
        info.check_size(240, 320)
    distorted = CameraInfoFields(**{**info.__dict__, "d": (0.1, 0.0, 0.0, 0.0, 0.0)})
    assert distorted.has_distortion
    with pytest.raises(IntrinsicsError):
        CameraInfoFields(**{**info.__dict__, "k": (0.0,) * 9}).K
    K = nominal_intrinsics(480, 640)
    assert K[0, 0] == K[1, 1] == 320 and K[0, 2] == 319.5 and K[1, 2] == 239.5


def test_full_outputs_match_the_completion(completed, info):
    frame, result = completed
    color = encode_image(frame.rgb[:, :, ::-1].copy(), "bgr8")  # as a camera sent it
    out = build_outputs(frame, result, OutputOptions(), color=color, info=info, model="m.pt")
    assert (out.stamp_ns, out.frame_id) == (frame.stamp_ns, frame.frame_id)
    assert np.array_equal(decoded(out.depth), result.depth, equal_nan=True)
    assert out.depth_32fc1 is out.depth and out.color is color and out.camera_info is info
    mask = decoded(out.source_mask)
    assert out.source_mask.encoding == "mono8" and np.array_equal(mask, result.source)
    assert set(np.unique(mask)) <= {int(s) for s in SourceMask}
    s = out.summary
    assert s.measured_fraction == pytest.approx(np.isfinite(frame.depth).mean())
    assert s.filled_fraction == pytest.approx(result.filled_fraction) and s.filled_fraction > 0
    assert s.inference_ms == pytest.approx(result.total_ms) and s.latency_ms == s.inference_ms
    assert (s.engine, s.model, s.mode) == ("nearest", "m.pt", "completion")

    points = cloud_points(out.cloud)
    assert points.shape == (frame.height, frame.width) and not out.cloud.is_dense
    assert out.cloud.point_step == 16 and out.cloud.row_step == 16 * frame.width
    assert [f.name for f in out.cloud.fields] == ["x", "y", "z", "rgb"]
    finite = np.isfinite(points["z"])
    assert np.array_equal(finite, np.isfinite(result.depth))
    v, u = 100, 200
    fx, fy, cx, cy = frame.K[0, 0], frame.K[1, 1], frame.K[0, 2], frame.K[1, 2]
    z = result.depth[v, u]
    assert points[v, u]["z"] == z
    assert points[v, u]["x"] == pytest.approx((u - cx) * z / fx, rel=1e-5)
    assert points[v, u]["y"] == pytest.approx((v - cy) * z / fy, rel=1e-5)
    assert np.array_equal(unpack_rgb(points["rgb"]), frame.rgb)


def test_16uc1_decimated_unorganised_capped_cloud(completed, info):
    frame, result = completed
    options = OutputOptions(depth_encoding="16UC1", cloud_decimation=2, cloud_organized=False,
                            cloud_max_range_m=2.5)
    out = build_outputs(frame, result, options, info=info)
    assert np.array_equal(decoded(out.depth), metres_to_16uc1(result.depth))
    assert out.depth_32fc1.encoding == "32FC1"
    assert np.array_equal(decoded(out.depth_32fc1), result.depth, equal_nan=True)
    assert out.color.encoding == "rgb8" and np.array_equal(decoded(out.color), frame.rgb)
    sampled = result.depth[::2, ::2]
    kept = np.isfinite(sampled) & (sampled <= 2.5)
    assert out.cloud.height == 1 and out.cloud.width == np.count_nonzero(kept) and out.cloud.is_dense
    points = cloud_points(out.cloud)
    assert np.array_equal(np.sort(points["z"].ravel()), np.sort(sampled[kept]))


def test_organised_decimated_cloud_keeps_the_grid(completed, info):
    frame, result = completed
    out = build_outputs(frame, result, OutputOptions(cloud_decimation=3, cloud_max_range_m=1.5),
                        info=info)
    points = cloud_points(out.cloud)
    assert points.shape == (160, 214)
    sampled = result.depth[::3, ::3]
    expected = np.where(sampled <= 1.5, sampled, np.nan)
    assert np.array_equal(points["z"], expected, equal_nan=True)


def test_without_camera_info_only_images(completed):
    frame, result = completed
    out = build_outputs(frame, result, OutputOptions(), info=None)
    assert out.cloud is None and out.camera_info is None
    assert out.depth_32fc1 is None and out.color is None  # CompletedRGBD needs the info
    assert np.array_equal(decoded(out.depth), result.depth, equal_nan=True)


def test_skipped_outputs_and_options(completed, info):
    frame, result = completed
    out = build_outputs(frame, result, OutputOptions(cloud=False, rgbd=False), info=info)
    assert out.cloud is None and out.color is None and out.camera_info is info
    out = OutputBuilder(OutputOptions()).build(frame, result, info=info, with_cloud=False,
                                               with_rgbd=False, mode="monocular")
    assert out.cloud is None and out.depth_32fc1 is None and out.summary.mode == "monocular"
    with pytest.raises(ValueError):
        build_outputs(frame, result, OutputOptions(), info=info, mode="stereo")


def test_latency_counts_from_pairing(completed, info):
    import time

    frame, result = completed
    paired = time.monotonic_ns() - 50_000_000  # paired 50 ms ago
    out = build_outputs(frame, result, OutputOptions(cloud=False), info=info, paired_at_ns=paired)
    assert 50.0 <= out.summary.latency_ms < 10_000


def test_buffers_alias_only_when_asked(completed, info):
    frame, result = completed
    fresh = OutputBuilder(OutputOptions())
    first = fresh.build(frame, result, info=info).cloud
    kept = bytes(first.data)
    shifted = type(result)(depth=result.depth * 2, source=result.source, engine="nearest")
    second = fresh.build(frame, shifted, info=info).cloud
    assert second.data is not first.data and bytes(first.data) == kept  # safe to keep

    reusing = OutputBuilder(OutputOptions(), reuse_buffers=True)
    a = reusing.build(frame, result, info=info)
    b = reusing.build(frame, shifted, info=info)
    expected = fresh.build(frame, shifted, info=info)
    for name in ("cloud", "depth", "source_mask", "depth_32fc1"):
        assert getattr(a, name).data is getattr(b, name).data, name
        assert getattr(b, name) == replace(getattr(expected, name), data=getattr(b, name).data)
        assert bytes(getattr(b, name).data) == bytes(getattr(expected, name).data), name
