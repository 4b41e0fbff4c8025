"""Capture-to-publish overhead of the RealSense source per 640x480 frame (target < 3 ms).

A librealsense software device streams example 0 in three set-ups: `registered` (depth
already in the colour camera's intrinsics, as on a D405: no alignment needed), `d435` (a
D435-like depth imager with its own wider intrinsics 15 mm beside the colour camera, depth
aligned to colour: rs.align does the reprojection work it does on a real camera) and
`d435 align_to=depth` (the same camera, colour aligned to depth instead). Each frame's
clock starts when the syncer hands over the frameset and stops when the RGBDFrame and the
message fields (rgb8, 16UC1 mm, camera info) are ready; the rclpy message objects are a
separate row. The baseline, measured on the same framesets in the same run, is the least
any reader pays: copying the two unaligned images out of librealsense's buffers.

    python benchmarks/bench_realsense.py [--frames 300] [--filters spatial,temporal]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))  # software_camera

from lingbot_depth_ros.core.captures import (  # noqa: E402
    read_intrinsics, read_raw_depth, read_rgb, rgb_path)
from lingbot_depth_ros.sources.realsense import FrameConverter, RealSenseSettings  # noqa: E402
from lingbot_depth_ros.sources.realsense_streams import import_pyrealsense2  # noqa: E402

from software_camera import DeviceStream, SoftwareCamera, SoftwareCameraSpec  # noqa: E402

TARGET_MS = 3.0
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "0"
#: a D435's depth imager at 640x480 (its colour camera's K comes from the example)
DEPTH_K = np.array([[385.0, 0.0, 320.5], [0.0, 385.0, 238.7], [0.0, 0.0, 1.0]])


def baseline(frames) -> None:
    np.array(frames.get_depth_frame().get_data(), copy=True)
    np.array(frames.get_color_frame().get_data(), copy=True)


def ros_messages(fields) -> None:
    from lingbot_depth_ros.ros.messages import camera_info_msg, image_msg, make_header

    header = make_header(0, "camera_color_optical_frame")
    color, depth, info = fields
    image_msg(color, header), image_msg(depth, header), camera_info_msg(info, header)


def have_rclpy() -> bool:
    try:
        import lingbot_depth_ros.ros.messages  # noqa: F401
    except ImportError:
        return False
    return True


_D435 = {"depth_K": DEPTH_K, "translation": (0.015, 0.0, 0.0)}
#: name -> (software camera geometry, align_to)
SETUPS = {
    "registered": ({}, "color"),
    "d435": (_D435, "color"),
    "d435 align_to=depth": (_D435, "depth"),
}


def measure(setup: str, frames_wanted: int, filters: tuple[str, ...]) -> dict[str, list[float]]:
    rs = import_pyrealsense2()
    geometry, align_to = SETUPS[setup]
    rgb, raw = read_rgb(rgb_path(EXAMPLE)), read_raw_depth(EXAMPLE / "raw_depth.png")
    spec = SoftwareCameraSpec(color_K=read_intrinsics(EXAMPLE / "intrinsics.txt"),
                              color_size=(640, 480), **geometry)
    camera = SoftwareCamera(spec)
    stream = DeviceStream(camera.device, queue_size=2)
    settings = RealSenseSettings(filters=filters, align_to=align_to)
    converter = FrameConverter(rs, stream.start(), settings)
    with_ros = have_rclpy()
    times: dict[str, list[float]] = {"baseline": [], "align": [], "source": [], "ros": []}
    align = rs.align(rs.stream.color if align_to == "color" else rs.stream.depth)
    warmup, n = 20, 0
    try:
        while len(times["source"]) < frames_wanted:
            camera.push(rgb, raw)
            frames = stream.poll(1.0)
            if frames is None or frames.size() < 2:
                continue  # the syncer's first frames come unpaired
            n += 1
            # Alternate the order so neither side always finds the buffers in cache.
            order = ("baseline", "source") if n % 2 else ("source", "baseline")
            for name in order:
                t0 = time.perf_counter()
                if name == "baseline":
                    baseline(frames)
                else:
                    fields = converter.convert(frames).message_fields()
                elapsed = (time.perf_counter() - t0) * 1e3
                if n > warmup:
                    times[name].append(elapsed)
            t0 = time.perf_counter()
            if converter.aligns:
                align.process(frames)
            t1 = time.perf_counter()
            if with_ros:
                ros_messages(fields)
            t2 = time.perf_counter()
            if n > warmup:
                if converter.aligns:
                    times["align"].append((t1 - t0) * 1e3)
                if with_ros:
                    times["ros"].append((t2 - t1) * 1e3)
    finally:
        stream.stop()
    return times


ROWS = (
    ("baseline", "baseline: copy depth + colour out of librealsense (no align)"),
    ("align", "rs.align alone (inside the source row; skipped when already registered)"),
    ("source", "source: align + copies + metres + RGBDFrame + message fields"),
    ("ros", "rclpy Image x2 + CameraInfo from the fields"),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--filters", default="", help="comma-separated librealsense filters")
    args = parser.parse_args()
    filters = tuple(f for f in args.filters.split(",") if f)
    medians: dict[str, dict[str, float]] = {}
    p90s: dict[str, dict[str, float]] = {}
    for setup in SETUPS:
        times = measure(setup, args.frames, filters)
        medians[setup] = {k: round(float(np.median(v)), 3) for k, v in times.items() if v}
        p90s[setup] = {k: float(np.percentile(v, 90)) for k, v in times.items() if v}
    print(f"RealSense source overhead per 640x480 frame, {args.frames} frames per set-up, "
          f"filters: {', '.join(filters) or 'none'}; ms, median (p90)\n")
    print("| stage | " + " | ".join(SETUPS) + " |\n|---|" + "---:|" * len(SETUPS))
    for key, label in ROWS:
        cells = [f"{medians[g][key]:.2f} ({p90s[g][key]:.2f})" if key in medians[g] else "-"
                 for g in SETUPS]
        print(f"| {label} | " + " | ".join(cells) + " |")
    verdicts = {}
    for setup, result in medians.items():
        total = result["source"] + result.get("ros", 0.0)
        verdicts[setup] = total < TARGET_MS
        align = result.get("align", 0.0)
        print(f"\n{setup}: source {result['source']:.2f} ms (rs.align {align:.2f} ms, the "
              f"rest {result['source'] - align:.2f} ms); with rclpy messages {total:.2f} ms; "
              f"target < {TARGET_MS} ms {'met' if verdicts[setup] else 'NOT met'}")
    load = os.getloadavg()[0]
    print(f"\n1-minute load average {load:.1f} on {os.cpu_count()} CPUs (timings on a busy "
          "machine are slower and wider)")
    print(json.dumps({"bench": "realsense", "filters": list(filters), "median_ms": medians,
                      "target_ms": TARGET_MS, "met": verdicts, "load_avg": round(load, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
