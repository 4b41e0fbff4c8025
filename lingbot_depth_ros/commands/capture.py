"""`lingbot-depth capture`: a quick look through a RealSense camera (or a recording), no ROS:
one folder per frame with the capture (examples layout) and its completion files."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from .argtypes import (MAX_COUNT, MAX_FPS, add_depth_args, add_engine_arg, add_model_file_args, bounded_int,
                       count, depth_range, model_file_options, non_negative_float, output_dir, side_px)

#: frames skipped on a live camera while auto-exposure settles
_LIVE_SKIP = 15


def register(subparsers) -> None:
    from ..sources.realsense import FILTER_NAMES

    parser = subparsers.add_parser(
        "capture", help="capture and complete frames from a RealSense camera (no ROS)",
        description="Open a RealSense camera with pyrealsense2 (or play a .bag/.db3 recording),"
                    " align depth to colour, complete --frames frames and write each into "
                    "--out/frame_NNNN/: rgb.png, raw_depth.png (mm), intrinsics.txt and the "
                    "files of `lingbot-depth complete` (preview.png, completed_depth.png, ...).")
    parser.add_argument("--serial", default="", help="camera serial number (default: first found)")
    parser.add_argument("--width", type=side_px, default=640)
    parser.add_argument("--height", type=side_px, default=480)
    parser.add_argument("--fps", type=bounded_int(1, int(MAX_FPS), "a rate in Hz"), default=30)
    parser.add_argument("--from-file", type=Path, metavar="FILE",
                        help="play a RealSense recording (.bag, .db3) instead of a camera")
    parser.add_argument("--filters", default="",
                        help="comma-separated librealsense depth filters "
                             f"({', '.join(FILTER_NAMES)})")
    parser.add_argument("--frames", type=count, default=1, help="frames to complete")
    parser.add_argument("--skip", type=bounded_int(0, MAX_COUNT, "a frame count"), default=None,
                        help=f"frames to discard first (default: {_LIVE_SKIP} live, 0 from a file)")
    add_engine_arg(parser)
    add_model_file_args(parser)
    add_depth_args(parser, scale=False)
    parser.add_argument("--timeout", type=non_negative_float, default=5.0,
                        help="give up when no frame arrives for this many seconds")
    parser.add_argument("--out", type=output_dir, default=Path("lingbot_capture"),
                        help="output folder (default: %(default)s)")
    parser.set_defaults(func=run)


def write_capture(folder: Path, capture) -> None:
    """The capture in the examples layout: rgb.png, raw_depth.png (mm), intrinsics.txt;
    all three appear, or none (the commit path)."""
    import numpy as np

    from ..core.depth import metres_to_16uc1
    from ..core.io import OutputCommit, write_png

    raw_m = capture.depth_raw.astype(np.float32) * np.float32(capture.depth_scale)
    intrinsics = "\n".join(" ".join(f"{v:.6f}" for v in row) for row in capture.frame.K) + "\n"
    with OutputCommit() as commit:
        write_png(commit.stage(folder / "rgb.png"), capture.frame.rgb)
        write_png(commit.stage(folder / "raw_depth.png"), metres_to_16uc1(raw_m))
        commit.stage(folder / "intrinsics.txt").write_text(intrinsics)


def settings_from_args(args: argparse.Namespace):
    from ..core.errors import LingbotDepthError
    from ..sources.realsense import RealSenseSettings

    valid_range = depth_range(args)
    filters = tuple(f.strip() for f in args.filters.split(",") if f.strip())
    try:
        return RealSenseSettings(
            serial=args.serial, width=args.width, height=args.height, fps=args.fps,
            filters=filters, recording=str(args.from_file or ""), real_time=False,
            frame_timeout_s=max(args.timeout, 0.1), wait_for_device=False,
            valid_range=valid_range)
    except ValueError as exc:
        raise LingbotDepthError(str(exc)) from exc


def run(args: argparse.Namespace) -> int:
    from ..core.errors import LingbotDepthError
    from ..core.io import write_completion
    from ..engines import create_engine
    from ..sources.realsense import RealSenseSource, SourceState

    settings = settings_from_args(args)
    skip = args.skip if args.skip is not None else (0 if args.from_file else _LIVE_SKIP)

    def give_up_when_lost(status) -> None:  # a quick look does not wait for a replug
        if status.state == SourceState.DISCONNECTED:
            source.stop()

    source = RealSenseSource(settings, on_status=give_up_when_lost)
    engine = None
    written = 0
    with contextlib.ExitStack() as opened:
        for seen, capture in enumerate(source.captures()):
            if engine is None:  # only once the camera works: neural engines load slowly
                status = source.status
                print(f"{status.name} {status.serial}: {capture.frame.width}x"
                      f"{capture.frame.height}, depth units {capture.depth_scale:g} m")
                engine = opened.enter_context(create_engine(args.engine, **model_file_options(args)))
            if seen < skip:
                continue
            result = engine.complete(capture.frame)
            folder = args.out / f"frame_{written:04d}"
            write_completion(folder, capture.frame, result)
            write_capture(folder, capture)
            print(f"frame {capture.frame_number}: measured {100 * capture.frame.valid.mean():.1f}%"
                  f", filled {100 * result.filled_fraction:.1f}% by {result.engine} in "
                  f"{result.total_ms:.1f} ms -> {folder}")
            written += 1
            if written == args.frames:
                break
    if written < args.frames:
        status = source.status
        # Say where the missing frames went: framesets the source dropped, by reason.
        drops = ", ".join(f"{k}={v}" for k, v in sorted(status.drops.items()))
        raise LingbotDepthError(f"got {written} of {args.frames} frames ({status.state.value}"
                                f"{': ' + status.detail if status.detail else ''}"
                                f"{'; dropped ' + drops if drops else ''})")
    return 0
