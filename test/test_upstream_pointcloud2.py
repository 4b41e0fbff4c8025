"""The node's published clouds read back with upstream sensor_msgs_py.point_cloud2.read_points
(as a ROS user's code reads them), held against an unprojection written here from the
published depth and camera info: organised and not, XYZ with and without the colour field,
decimation and range cap."""

from __future__ import annotations

import numpy as np
import pytest

point_cloud2 = pytest.importorskip(
    "sensor_msgs_py.point_cloud2", reason="sensor_msgs_py is not installed: no ROS 2 install "
                                          "and no ../shared/ros2-upstream (./run.sh installs it)")

from node_harness import Running, image_array, load_captures  # noqa: E402

STAMP_NS = 1_700_000_000_000_000_000


def unproject(depth: np.ndarray, k, stride: int = 1):
    """(H', W', 3) points in the optical frame for every `stride`-th pixel: x right, y down."""
    fx, cx, fy, cy = k[0], k[2], k[4], k[5]
    v, u = np.mgrid[0:depth.shape[0]:stride, 0:depth.shape[1]:stride].astype(np.float64)
    z = depth[::stride, ::stride].astype(np.float64)
    return np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)


def rgb_of(points) -> np.ndarray:
    """PCL's packed rgb float -> (N, 3) uint8, by hand (not the package's unpack_rgb)."""
    packed = np.asarray(points, dtype=np.float32).view(np.uint32)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], axis=-1).astype(np.uint8)


def published(context, overrides: dict, capture_index: int = 0):
    """(depth metres, camera info, cloud, colour) the node publishes for one capture."""
    capture = load_captures()[capture_index]
    running = Running(context, {"engine": "guided", "publish_rgbd": False, **overrides},
                      namespace=f"/pc{abs(hash(tuple(sorted(overrides.items())))) % 10**6}")
    try:
        running.send_info(capture.info_msg(STAMP_NS))
        running.probe.send(capture.color_msg(STAMP_NS), capture.depth_msg(STAMP_NS))
        depth = running.probe.wait_outputs("depth_completed", 1, timeout=30)[0]
        info = running.probe.wait_outputs("depth_completed/camera_info", 1, timeout=30)[0]
        cloud = running.probe.wait_outputs("depth_completed/points", 1, timeout=30)[0]
    finally:
        running.close()
    return image_array(depth).astype(np.float32), info, cloud, capture.rgb


@pytest.mark.parametrize("stride", [1, 3])
def test_organised_cloud_reads_back_as_the_depths_unprojection(context, stride):
    depth, info, cloud, rgb = published(context, {"cloud_decimation": stride})
    expected = unproject(depth, info.k, stride)
    assert (cloud.height, cloud.width) == expected.shape[:2] and not cloud.is_dense
    points = point_cloud2.read_points(cloud, field_names=("x", "y", "z", "rgb"), skip_nans=False)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1).reshape(expected.shape)
    valid = np.isfinite(expected[..., 2])
    assert np.array_equal(np.isfinite(xyz[..., 2]), valid)
    assert np.abs(xyz[valid] - expected[valid]).max() < 1e-5  # float32 arithmetic
    colours = rgb_of(points["rgb"]).reshape(*expected.shape[:2], 3)
    assert np.array_equal(colours[valid], rgb[::stride, ::stride][valid])
    # Without the colour field: the same points.
    plain = point_cloud2.read_points_numpy(cloud, field_names=("x", "y", "z"), skip_nans=True)
    assert np.abs(plain - expected[valid]).max() < 1e-5


def test_unorganised_capped_cloud_reads_back_as_the_kept_pixels(context):
    depth, info, cloud, rgb = published(context, {"cloud_organized": False, "cloud_max_range": 2.0},
                                        capture_index=1)
    expected = unproject(depth, info.k)
    kept = np.isfinite(expected[..., 2]) & (expected[..., 2] <= 2.0)
    assert cloud.height == 1 and cloud.width == np.count_nonzero(kept) and cloud.is_dense
    points = point_cloud2.read_points(cloud, field_names=("x", "y", "z", "rgb"), skip_nans=True)
    xyz = np.stack([points["x"], points["y"], points["z"]], axis=-1)
    assert np.abs(xyz - expected[kept]).max() < 1e-5  # row-major order of the kept pixels
    assert np.array_equal(rgb_of(points["rgb"]), rgb[kept])
