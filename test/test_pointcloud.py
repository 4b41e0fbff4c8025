"""Organized point clouds: geometry against hand-computed points, colour packing, layout, and
the one PointCloud2 builder (OutputBuilder.cloud)."""

import array
from pathlib import Path

import numpy as np
import pytest

from lingbot_depth_ros.core import pointcloud as pc
from lingbot_depth_ros.core.captures import load_capture, read_intrinsics
from lingbot_depth_ros.core.errors import IntrinsicsError, ShapeMismatchError
from lingbot_depth_ros.core.outputs import OutputBuilder, OutputOptions

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
H, W = 480, 640

# (u, v, z) -> (x, y) by hand from examples/0/intrinsics.txt:
# fx 460.139587, cx 319.656128, fy 460.199005, cy 237.396271;
# x = (u - cx) z / fx, y = (v - cy) z / fy
HAND_POINTS = [
    ((0, 0, 2.0), (-1.3893876, -1.0317114)),
    ((639, 479, 0.5), (0.3470076, 0.2624992)),
    ((320, 240, 1.25), (0.00093415, 0.00707229)),
    ((100, 400, 3.0), (-1.4321054, 1.0600005)),
]


@pytest.fixture(scope="module")
def K():
    return read_intrinsics(EXAMPLES / "0" / "intrinsics.txt")


def sparse_depth(points=HAND_POINTS):
    depth = np.full((H, W), np.nan, np.float32)
    for (u, v, z), _ in points:
        depth[v, u] = z
    return depth


def test_points_match_hand_computed_geometry(K):
    cloud = pc.organized_points(sparse_depth(), K)
    assert cloud.shape == (H, W) and cloud.dtype == pc.XYZ_DTYPE
    for (u, v, z), (x, y) in HAND_POINTS:
        point = cloud[v, u]
        assert point["x"] == pytest.approx(x, rel=1e-5, abs=1e-7)
        assert point["y"] == pytest.approx(y, rel=1e-5, abs=1e-7)
        assert point["z"] == z
    assert np.isfinite(cloud["z"]).sum() == len(HAND_POINTS)


def test_skewed_camera_matrix(K):
    skewed = K.copy()
    skewed[0, 1] = 5.0
    point = pc.organized_points(sparse_depth(), skewed)[400, 100]
    y = (400 - K[1, 2]) * 3.0 / K[1, 1]
    x = ((100 - K[0, 2]) * 3.0 - 5.0 * y) / K[0, 0]
    assert (point["x"], point["y"]) == (pytest.approx(x, rel=1e-5), pytest.approx(y, rel=1e-5))


def test_rgb_is_packed_as_00rrggbb(K):
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[240, 320] = (255, 128, 1)
    rgb[0, 0] = (1, 2, 3)
    cloud = pc.organized_points(sparse_depth(), K, rgb)
    assert cloud.dtype == pc.XYZRGB_DTYPE and cloud.dtype.itemsize == 16
    packed = cloud["rgb"].view(np.uint32)
    assert packed[240, 320] == 0x00FF8001 and packed[0, 0] == 0x00010203
    # On the wire (little-endian): bytes 12..15 of the point are B, G, R, 0.
    assert cloud[240:241, 320].tobytes()[12:16] == bytes([1, 128, 255, 0])
    np.testing.assert_array_equal(pc.unpack_rgb(cloud["rgb"]), rgb)
    np.testing.assert_array_equal(pc.pack_rgb(rgb), packed)


def test_invalid_depth_gives_nan_points_with_colour_kept(K):
    depth = np.ones((H, W), np.float32)
    bad = {(0, 0): np.nan, (0, 1): 0.0, (0, 2): -1.0, (0, 3): np.inf, (0, 4): -np.inf}
    for (v, u), value in bad.items():
        depth[v, u] = value
    rgb = np.full((H, W, 3), 200, np.uint8)
    cloud = pc.organized_points(depth, K, rgb)
    for v, u in bad:
        assert np.isnan([cloud[v, u]["x"], cloud[v, u]["y"], cloud[v, u]["z"]]).all()
        assert pc.unpack_rgb(cloud["rgb"][v, u]).tolist() == [200, 200, 200]
    assert np.isfinite(cloud["z"]).sum() == H * W - len(bad)
    assert pc.finite_points(cloud).size == H * W - len(bad)


@pytest.mark.parametrize("stride", [1, 3])
def test_trusted_engine_depth_gives_the_same_cloud(K, stride):
    """positive_or_nan skips sanitizing what Engine.complete already guarantees."""
    frame = load_capture(EXAMPLES / "2")  # real holes: NaN where the sensor had no data
    checked = pc.organized_points(frame.depth, frame.K, frame.rgb, stride=stride)
    trusted = pc.organized_points(frame.depth, frame.K, frame.rgb, stride=stride,
                                  positive_or_nan=True)
    assert np.isnan(checked["z"]).any()
    np.testing.assert_array_equal(trusted.view(np.uint8), checked.view(np.uint8))


@pytest.mark.parametrize("stride,shape", [(1, (480, 640)), (2, (240, 320)), (3, (160, 214)),
                                          (7, (69, 92))])
def test_decimation_keeps_every_stride_th_pixel(K, stride, shape):
    frame = load_capture(EXAMPLES / "0")
    full = pc.organized_points(frame.depth, frame.K, frame.rgb)
    decimated = pc.organized_points(frame.depth, frame.K, frame.rgb, stride=stride)
    assert decimated.shape == shape == pc.cloud_shape(H, W, stride)
    np.testing.assert_array_equal(decimated.view(np.uint8),
                                  full[::stride, ::stride].copy().view(np.uint8))


def test_range_cap_is_along_the_optical_axis(K):
    depth = np.full((H, W), 2.0, np.float32)
    depth[:, :100] = 2.5
    cloud = pc.organized_points(depth, K, max_depth=2.0)
    assert np.isnan(cloud["z"][:, :100]).all() and np.isnan(cloud["x"][:, :100]).all()
    assert (cloud["z"][:, 100:] == 2.0).all()  # exactly at the cap is kept


def cloud_fields(frame, **options):
    """The node's cloud: OutputBuilder.cloud, as for a frame the engine completed."""
    return OutputBuilder(OutputOptions(**options)).cloud(frame.depth, frame.rgb, frame.K,
                                                          positive_or_nan=False)


def test_cloud_fields_and_data(K):
    frame = load_capture(EXAMPLES / "0")
    fields = cloud_fields(frame)
    assert (fields.height, fields.width, fields.point_step, fields.row_step) == (H, W, 16, 16 * W)
    assert [(f.name, f.offset, f.datatype, f.count) for f in fields.fields] == [
        ("x", 0, 7, 1), ("y", 4, 7, 1), ("z", 8, 7, 1), ("rgb", 12, 7, 1)]
    assert not fields.is_bigendian and not fields.is_dense
    # array.array('B'): rclpy takes it as message data without a copy
    assert isinstance(fields.data, array.array) and len(fields.data) == H * W * 16
    back = np.frombuffer(fields.data, pc.XYZRGB_DTYPE).reshape(H, W)
    np.testing.assert_array_equal(back["z"], np.where(frame.valid, frame.depth, np.nan))
    xyz = pc.organized_points(frame.depth, frame.K)
    assert (xyz.dtype.itemsize, xyz.nbytes, len(pc.XYZ_FIELDS)) == (12, H * W * 12, 3)


def test_reused_cloud_buffer_gives_the_fresh_cloud_and_follows_the_size():
    first, second = load_capture(EXAMPLES / "0"), load_capture(EXAMPLES / "3")
    options = OutputOptions(cloud_decimation=2, cloud_max_range_m=5.0)
    reusing = OutputBuilder(options, reuse_buffers=True)
    a = reusing.cloud(first.depth, first.rgb, first.K, positive_or_nan=False)
    b = reusing.cloud(second.depth, second.rgb, second.K, positive_or_nan=False)
    assert b.data is a.data  # one buffer between frames, as the node uses it
    expected = cloud_fields(second, cloud_decimation=2, cloud_max_range_m=5.0)
    assert bytes(b.data) == bytes(expected.data)
    assert bytes(b.data) == pc.organized_points(second.depth, second.K, second.rgb, stride=2,
                                                max_depth=5.0).tobytes()
    small = reusing.cloud(second.depth[:100], second.rgb[:100], second.K, positive_or_nan=False)
    assert small.data is not a.data and small.height == 50  # a size change reallocates


def test_ray_grids_are_cached_per_size_and_K(K):
    grids = pc.ray_grid(H, W, K)
    assert pc.ray_grid(H, W, K.copy())[0] is grids[0]
    other = K.copy()
    other[0, 2] += 1
    assert pc.ray_grid(H, W, other)[0] is not grids[0]
    assert not grids[0].flags.writeable


def test_bad_inputs_raise(K):
    depth = np.ones((H, W), np.float32)
    with pytest.raises(ShapeMismatchError):
        pc.organized_points(depth, K, np.zeros((H, W - 1, 3), np.uint8))
    with pytest.raises(ShapeMismatchError):
        pc.organized_points(np.ones((H, W), np.uint16), K)
    with pytest.raises(ShapeMismatchError):
        pc.organized_points(depth, K, out=np.empty((H, W), pc.XYZRGB_DTYPE))
    with pytest.raises(ValueError):
        pc.organized_points(depth, K, stride=0)
    for cap in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError):
            pc.organized_points(depth, K, max_depth=cap)
    with pytest.raises(IntrinsicsError):
        pc.organized_points(depth, np.eye(2))


def test_fields_fill_a_real_pointcloud2_message(K):
    """The bytes go into rclpy's PointCloud2 and come back as the same points."""
    msgs = pytest.importorskip("sensor_msgs.msg", reason="ROS 2 sensor_msgs not installed")
    frame = load_capture(EXAMPLES / "1")
    fields = cloud_fields(frame, cloud_decimation=2)
    msg = msgs.PointCloud2(
        height=fields.height, width=fields.width, is_bigendian=fields.is_bigendian,
        point_step=fields.point_step, row_step=fields.row_step, is_dense=fields.is_dense,
        fields=[msgs.PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count)
                for f in fields.fields])
    msg.data = fields.data
    assert msgs.PointField.FLOAT32 == pc.FLOAT32
    back = np.frombuffer(msg.data, pc.XYZRGB_DTYPE).reshape(msg.height, msg.width)
    assert back.tobytes() == bytes(fields.data)
