"""`lingbot-depth complete`: complete one RGB-D capture and write depth, mask, preview, PLY."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.depth import DepthRange
from .argtypes import (add_depth_args, add_engine_arg, add_model_file_args, data_file, depth_range,
                       model_file_options, output_dir)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "complete", help="complete one RGB-D capture (depth PNG/.npy, mask, preview, PLY)",
        description="Complete the depth of one registered colour + depth pair and write "
                    "completed_depth.png (uint16 mm), completed_depth.npy (float32 m), "
                    "source_mask.png (0 invalid, 1 measured, 2 filled), source_mask_color.png, "
                    "preview.png (rgb | raw | completed) and points.ply into --out.")
    parser.add_argument("--rgb", required=True, type=data_file, help="colour image (PNG or JPEG)")
    parser.add_argument("--depth", required=True, type=data_file,
                        help="16-bit depth PNG in sensor units (0 = no data), registered to --rgb")
    parser.add_argument("--intrinsics", required=True, type=data_file,
                        help="text file with the 3x3 camera matrix K (9 numbers)")
    add_engine_arg(parser)
    add_model_file_args(parser)
    add_depth_args(parser)
    parser.add_argument("--out", required=True, type=output_dir, help="output folder (created)")
    parser.set_defaults(func=run)


def load_files(rgb_path: Path, depth_path: Path, intrinsics_path: Path,
               depth_scale: float, valid_range: DepthRange):
    """An RGBDFrame from three separate files (the capture folder loader's pieces)."""
    from ..core.captures import read_intrinsics, read_raw_depth, read_rgb
    from ..core.depth import depth_to_metres
    from ..core.frame import RGBDFrame

    rgb = read_rgb(rgb_path)
    raw = read_raw_depth(depth_path)
    K = read_intrinsics(intrinsics_path)
    depth = depth_to_metres(raw, "16UC1", depth_scale=depth_scale, valid_range=valid_range)
    return RGBDFrame(rgb=rgb, depth=depth, K=K, frame_id=Path(rgb_path).parent.name)


def run(args: argparse.Namespace) -> int:
    from ..core.frame import SourceMask
    from ..core.io import write_completion
    from ..engines import create_engine

    frame = load_files(args.rgb, args.depth, args.intrinsics, args.depth_scale, depth_range(args))
    with create_engine(args.engine, **model_file_options(args)) as engine:
        result = engine.complete(frame)
    paths = write_completion(args.out, frame, result)
    shares = {source: float((result.source == source).mean()) for source in SourceMask}
    timings = ", ".join(f"{name} {ms:.1f}" for name, ms in result.timings_ms.items())
    print(f"{frame.width}x{frame.height}: measured {100 * shares[SourceMask.MEASURED]:.1f}%, "
          f"filled {100 * shares[SourceMask.FILLED]:.1f}%, "
          f"no depth {100 * shares[SourceMask.INVALID]:.1f}%")
    print(f"engine {result.engine}: {result.total_ms:.1f} ms ({timings})")
    print(f"wrote {len(paths)} files to {args.out}: {', '.join(p.name for p in paths.values())}")
    return 0
