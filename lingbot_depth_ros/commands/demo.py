"""`lingbot-depth demo`: the README's main job on the embedded default engine: a RealSense-style
bag played in real time into the real node over DDS, its outputs recorded, each input frame
accounted for, and a preview image written. With a rig file (`--params
config/rig_d435i_zed2i.yaml`) every camera of the rig plays the captures, with its driver's
topics and encodings under its namespace, into one rig node."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..paths import data_path
from .argtypes import add_engine_arg, data_file, fps, output_dir, repeat


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the node on a demo bag built from the shipped captures",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--captures", type=data_file, default=None,
                   help="folder of capture folders (default: the shipped examples/)")
    add_engine_arg(p)
    p.add_argument("--params", type=data_file, default=None,
                   help="node parameter file (default: config/realsense_d435i.yaml), or a "
                        "rig file (config/rig_*.yaml): every camera of the rig plays")
    p.add_argument("--repeat", type=repeat, default=15,
                   help="times the captures are repeated in the bag (default 15: 60 frames, 2 s)")
    p.add_argument("--fps", type=fps, default=30.0, help="camera rate of the demo bag")
    p.add_argument("--out", type=output_dir, default=Path("out/demo"), help="output folder")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from ..ros.dds_profile import use_launch_profile

    # The node runs as its own process (ros/replay.py); the player and recorder in this one
    # get the same DDS profile as the node (the launch file's), so nothing is lost between.
    use_launch_profile(os.environ, str(data_path("config/fastdds_large_data.xml")))
    from ..bag.demo import write_demo_bag
    from ..core.io import remove_path
    from ..ros.replay import replay

    captures = args.captures or data_path("examples")
    params = args.params or data_path("config/realsense_d435i.yaml")
    overrides = {"engine": args.engine, "qos": "reliable", "queue_depth": 30}
    cameras = _check_node_params(params, overrides)  # before anything is written
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    for old in ("input", "output"):
        remove_path(out / old)
    if cameras[0].name:  # a rig: every camera plays, under its namespace
        from ..bag.rig_demo import write_rig_demo_bag
        made = write_rig_demo_bag(captures, out / "input", cameras, fps=args.fps,
                                  repeat=args.repeat, storage="mcap")
        print(f"demo bag: {made['frames']} frames at {args.fps:g} Hz from each of "
              f"{len(cameras)} cameras ({', '.join(made['cameras'])}) -> {out / 'input'}")
    else:
        made = write_demo_bag(captures, out / "input", fps=args.fps, repeat=args.repeat, storage="mcap")
        print(f"demo bag: {made['frames']} frames at {args.fps:g} Hz -> {out / 'input'}")
    # Reliable input: the node then sees every image the bag holds, and the only way to lose
    # a frame is for the node to be slower than the camera.
    summary = replay(out / "input", out / "output", params_file=params, overrides=overrides)
    _print_summary(summary, made["frames"] * len(cameras))
    for name, part in summary.cameras.items():
        print(f"camera {name}:")
        _print_summary(part, made["frames"], recorded=False)
    preview = _write_preview(out / "output", out / "preview.png")
    print(f"outputs: {out / 'output'} (MCAP)" + (f", preview: {preview}" if preview else ""))
    return _verdict(summary, made["frames"], args.fps)


def _verdict(summary, frames: int, fps: float) -> int:
    """0 when every camera's images add up and every pair it sent was published."""
    parts = summary.cameras or {"": summary}
    who = {name: f"camera {name}: " if name else "" for name in parts}
    for name, part in parts.items():
        accounted = 2 * part.published + sum(part.dropped.values()) + part.queued
        if accounted != part.received:
            print(f"demo FAILED: {who[name]}the node received {part.received} images and accounted "
                  f"for {accounted}")
            return 1
    # The demo's target: every pair each camera sent, completed at the camera's rate.
    for name, part in parts.items():
        if part.published < frames:
            dropped = ", ".join(f"{k} {v}" for k, v in sorted(part.dropped.items())) or "none"
            print(f"demo FAILED: {who[name]}{part.published} of {frames} pairs published at {fps:g} Hz "
                  f"(target: all of them); dropped images: {dropped}. The node did not keep up "
                  "with the camera on this machine: try --fps 15, or see docs/benchmarks.md")
            return 1
    each = f" from each of {len(parts)} cameras" if summary.cameras else ""
    print(f"demo passed: {summary.published} of {frames * len(parts)} pairs published at "
          f"{fps:g} Hz{each}")
    return 0


def _check_node_params(params: Path, overrides: dict):
    """The cameras of the params file and overrides as the node will read them (one camera
    named "" without `cameras`): LingbotDepthError if the node would refuse them."""
    from ..core.errors import LingbotDepthError
    from ..core.config import load_params_file, node_values
    from ..core.rig import rig_from_values

    try:
        values = load_params_file(params, require_section=True)
        # unknown names: the node itself warns about them and goes on
        return rig_from_values(node_values({**values, **overrides})[0])
    except ValueError as exc:
        raise LingbotDepthError(f"node parameters: {exc}") from exc


def _print_summary(s, frames: int, recorded: bool = True) -> None:
    rows = [("engine", s.engine), ("input frames (colour+depth pairs)", frames),
            ("images received by the node", f"{s.received} of {2 * frames}"),
            ("published", s.published),
            ("dropped images", ", ".join(f"{k}={v}" for k, v in sorted(s.dropped.items())) or "0"),
            ("still queued", s.queued), ("output rate", f"{s.rate_hz:.1f} Hz"),
            ("latency p50 / p95" + (" (worst camera)" if s.cameras else ""),
             f"{s.latency_p50_ms:.1f} / {s.latency_p95_ms:.1f} ms"),
            ("engine p50", f"{s.engine_p50_ms:.1f} ms")]
    if recorded:
        rows += [(f"recorded {topic}", n) for topic, n in s.recorded.items()]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def _write_preview(output_bag: Path, path: Path) -> Path | None:
    """Preview of the last completed frame: colour | measured depth | completed depth."""
    import numpy as np
    from rosbags.rosbag2 import Reader

    from ..bag.reader import build_typestore
    from ..core.codec import decode_fields, to_rgb8
    from ..core.frame import SourceMask
    from ..core.io import OutputCommit, side_by_side, write_png

    store = build_typestore("kilted")
    last = None
    with Reader(output_bag) as reader:
        conns = [c for c in reader.connections if c.topic.endswith("/depth_completed/rgbd")]
        for conn, _, raw in reader.messages(connections=conns):
            last = store.deserialize_cdr(raw, conn.msgtype)
    if last is None:
        return None

    depth, source = decode_fields(last.depth), decode_fields(last.source_mask)
    # Measured pixels pass through unchanged, so the mask recovers the sensor's own depth.
    measured = np.where(source == SourceMask.MEASURED, depth, np.float32(np.nan))
    rgb = to_rgb8(decode_fields(last.rgb), last.rgb.encoding)
    with OutputCommit() as commit:
        write_png(commit.stage(path), side_by_side(rgb, measured, depth))
    return path
