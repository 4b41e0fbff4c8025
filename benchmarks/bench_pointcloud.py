"""Packing a 640x480 XYZRGB organized cloud for PointCloud2, against naive baselines
measured in the same run (target: under 5 ms median on the 2-core CI machine).

    python benchmarks/bench_pointcloud.py [--capture examples/0] [--reps 200] [--json F]

Every contender produces the same cloud (checked), so the table compares equal work:
- per-pixel Python: a loop with struct.pack_into, what a straightforward port does;
- naive numpy: meshgrid and float64 maths every frame, uint32 colour shifts, np.stack;
- organized_points -> bytes: cached ray grids, float32 in place, one cv2.merge, tobytes();
- OutputBuilder.cloud, reused buffer: the one cloud builder as the node and `bag process`
  run it (unprojected straight into one array.array kept between frames); also with a fresh
  buffer per frame and the last 10 results kept alive, as a publisher queue would;
- rclpy rows: building a real sensor_msgs/PointCloud2 from the builder's array.array, from
  bytes, and (the pitfall) from a numpy array, which rclpy's setter walks element by element;
  the message built and serialized (what publishing it adds), against joining the CDR parts
  the bag writer uses. --tune-malloc applies the node's malloc thresholds first.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import struct
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lingbot_depth_ros.core import pointcloud as pc  # noqa: E402
from lingbot_depth_ros.core.captures import load_capture  # noqa: E402
from lingbot_depth_ros.core.outputs import OutputBuilder, OutputOptions  # noqa: E402


def median_ms(fn, reps: int) -> tuple[float, float]:
    """Median wall and on-CPU milliseconds; CPU time stays honest when other processes
    share the 2 cores (wall time then includes waiting to be scheduled)."""
    fn()  # warm caches and allocator
    wall, cpu = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.thread_time()
        fn()
        cpu.append((time.thread_time() - c0) * 1e3)
        wall.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(wall), statistics.median(cpu)


def per_pixel_python(depth: np.ndarray, K: np.ndarray, rgb: np.ndarray) -> bytes:
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    height, width = depth.shape
    out = bytearray(height * width * 16)
    rows, colours = depth.tolist(), rgb.tolist()
    nan = float("nan")
    for v in range(height):
        for u in range(width):
            z = rows[v][u]
            if not (z > 0 and z < float("inf")):
                z = nan
            r, g, b = colours[v][u]
            struct.pack_into("<fffI", out, (v * width + u) * 16, (u - cx) * z / fx,
                             (v - cy) * z / fy, z, (r << 16) | (g << 8) | b)
    return bytes(out)


def naive_numpy(depth: np.ndarray, K: np.ndarray, rgb: np.ndarray) -> bytes:
    height, width = depth.shape
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    z = np.where((depth > 0) & np.isfinite(depth), depth, np.nan)
    x = (u - K[0, 2]) * z / K[0, 0]
    y = (v - K[1, 2]) * z / K[1, 1]
    c = rgb.astype(np.uint32)
    packed = ((c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]).view(np.float32)
    xyz = np.stack([x, y, z], axis=-1).astype(np.float32)
    return np.concatenate([xyz, packed[..., None]], axis=-1).tobytes()


def check_same_cloud(name: str, data: bytes, reference: bytes) -> None:
    """Same points up to float rounding (baselines compute in float64), same colours."""
    got, want = (np.frombuffer(b, pc.XYZRGB_DTYPE) for b in (data, reference))
    if not np.array_equal(got["rgb"].view(np.uint32), want["rgb"].view(np.uint32)):
        raise AssertionError(f"{name}: colours differ from OutputBuilder.cloud")
    for axis in "xyz":
        np.testing.assert_allclose(got[axis], want[axis], rtol=1e-6, atol=1e-7,
                                   err_msg=f"{name}: {axis} differs from OutputBuilder.cloud")


def rclpy_rows(fields: pc.CloudFields, reps: int) -> list[tuple[str, float]]:
    try:
        from sensor_msgs.msg import PointCloud2, PointField
    except ImportError:
        return []

    def build(data):
        msg = PointCloud2(height=fields.height, width=fields.width, point_step=fields.point_step,
                          row_step=fields.row_step, is_dense=fields.is_dense,
                          fields=[PointField(name=f.name, offset=f.offset, datatype=f.datatype,
                                             count=f.count) for f in fields.fields])
        msg.data = data
        return msg

    from rclpy.serialization import serialize_message

    from lingbot_depth_ros.core import serialized

    as_bytes = bytes(fields.data)
    as_array = np.frombuffer(fields.data, np.uint8)
    # What publishing costs beyond building: rclpy converts the message to C and rcl
    # serializes it (serialize_message does both), against joining the CDR the bag writes.
    return [("rclpy PointCloud2(data=array.array)", median_ms(lambda: build(fields.data), reps)),
            ("rclpy PointCloud2(data=bytes)", median_ms(lambda: build(as_bytes), reps)),
            ("rclpy PointCloud2(data=ndarray)", median_ms(lambda: build(as_array), 3)),
            ("array.array message, built + serialize_message",
             median_ms(lambda: serialize_message(build(fields.data)), reps)),
            ("core.serialized.cloud_parts joined (bag writer's CDR)",
             median_ms(lambda: b"".join(serialized.cloud_parts(0, "f", fields)), reps))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capture", type=Path,
                        default=Path(__file__).resolve().parents[1] / "examples" / "0")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the table as JSON here")
    parser.add_argument("--tune-malloc", action="store_true",
                        help="apply the node's malloc thresholds first (core/allocator.py), as its process has")
    args = parser.parse_args()
    if args.tune_malloc:
        from lingbot_depth_ros.core.allocator import tune_for_frame_buffers

        tune_for_frame_buffers(single_arena=True)

    frame = load_capture(args.capture)
    depth, K, rgb = frame.depth, frame.K, frame.rgb
    # what an engine hands the builder: positive depth or NaN (the node's positive_or_nan)
    completed = np.where(frame.valid, depth, np.nan).astype(np.float32)
    node_builder = OutputBuilder(OutputOptions(), reuse_buffers=True)
    fresh_builder = OutputBuilder(OutputOptions())
    decimating = OutputBuilder(OutputOptions(cloud_decimation=2, cloud_max_range_m=3.0),
                               reuse_buffers=True)

    def node_cloud(builder=node_builder):
        return builder.cloud(completed, rgb, K, positive_or_nan=True)

    reference = bytes(node_cloud().data)
    check_same_cloud("organized_points", pc.organized_points(depth, K, rgb).tobytes(), reference)
    check_same_cloud("naive numpy", naive_numpy(depth, K, rgb), reference)
    check_same_cloud("per-pixel Python", per_pixel_python(depth, K, rgb), reference)
    kept = collections.deque(maxlen=10)

    rows = [
        ("per-pixel Python (struct)", median_ms(lambda: per_pixel_python(depth, K, rgb), 3)),
        ("naive numpy", median_ms(lambda: naive_numpy(depth, K, rgb), args.reps)),
        ("organized_points XYZRGB -> bytes",
         median_ms(lambda: pc.organized_points(depth, K, rgb).tobytes(), args.reps)),
        ("organized_points XYZ -> bytes",
         median_ms(lambda: pc.organized_points(depth, K).tobytes(), args.reps)),
        ("OutputBuilder.cloud XYZRGB, reused buffer (node)", median_ms(node_cloud, args.reps)),
        # A publisher queue holds recent clouds, so each frame's data lands in fresh pages.
        ("OutputBuilder.cloud XYZRGB, fresh buffer, last 10 kept",
         median_ms(lambda: kept.append(node_cloud(fresh_builder)), args.reps)),
        ("OutputBuilder.cloud XYZRGB stride 2, cap 3 m",
         median_ms(lambda: node_cloud(decimating), args.reps)),
    ]
    message_rows = rclpy_rows(node_cloud(), args.reps)

    baseline = dict(rows)["naive numpy"][0]
    python = dict(rows)["per-pixel Python (struct)"][0]
    print(f"{frame.width}x{frame.height} cloud from {args.capture}, median of {args.reps} "
          f"(per-pixel Python and ndarray setter: 3), load average {os.getloadavg()[0]:.1f}\n")
    print("| packing to bytes | wall ms | CPU ms | vs naive numpy | vs per-pixel Python |")
    print("|---|---:|---:|---:|---:|")
    for name, (wall, cpu) in rows:
        print(f"| {name} | {wall:.2f} | {cpu:.2f} | {baseline / wall:.1f}x | "
              f"{python / wall:.0f}x |")
    if message_rows:
        print("\n| building the message from a packed cloud | wall ms | CPU ms |\n|---|---:|---:|")
        for name, (wall, cpu) in message_rows:
            print(f"| {name} | {wall:.2f} | {cpu:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(dict(rows + message_rows), indent=2))


if __name__ == "__main__":
    main()
