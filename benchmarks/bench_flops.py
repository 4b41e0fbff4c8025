"""FLOPs of the ViT-L LingBot-Depth network per frame at each resolution level, and the
latency floor they put on a GPU (default: an H100 at about 800 TFLOP/s dense bf16).

Analytic (benchmarks/flops.py), so it needs no GPU: this is the yardstick the
TensorRT engine's measured latency is compared against when a GPU is available.

    python benchmarks/bench_flops.py [--height 480 --width 640 --peak-tflops 800]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lingbot_depth_ros.model import tokens_for_level  # noqa: E402

from flops import count_flops  # noqa: E402

LEVELS = [5, 11, 17, 23]  # DINOv2 ViT-L blocks whose outputs feed the decoder
DECODER_DIMS = [1024, 256, 128, 64, 32]
UPSAMPLERS = ["conv_transpose", "conv_transpose", "conv_transpose", "bilinear"]


def _head(dim_out: int) -> dict:
    return {"dim_in": DECODER_DIMS, "dim_out": [None, None, None, None, dim_out],
            "dim_res_blocks": DECODER_DIMS, "num_res_blocks": [0, 1, 1, 1, 0],
            "res_block_in_norm": "none", "res_block_hidden_norm": "none",
            "resamplers": UPSAMPLERS}


def vitl_config() -> dict:
    """The published ViT-L layout: DINOv2 ViT-L/14 encoder with four tapped layers projected
    to 1024 channels; a five-level neck (1024 -> 32 channels, 2x upsampling per level, UV
    planes concatenated at every level) and depth and mask heads of the same shape."""
    return {
        "encoder": {"backbone": "dinov2_vitl14", "intermediate_layers": LEVELS,
                    "dim_out": 1024, "img_depth_fuse_mode": "cat_token",
                    "depth_emb_mode": "conv_1c"},
        "neck": {"dim_in": [1024 + 2, 2, 2, 2, 2], "dim_out": [None] * 5,
                 "dim_res_blocks": DECODER_DIMS, "num_res_blocks": [0, 2, 2, 2, 0],
                 "res_block_in_norm": "none", "res_block_hidden_norm": "none",
                 "resamplers": UPSAMPLERS},
        "depth_head": _head(1),
        "mask_head": _head(1),
        "remap_depth_in": "log",
        "remap_depth_out": "exp",
        "num_tokens_range": [1200, 3600],
    }


def table(height: int, width: int, peak_tflops: float) -> list[dict]:
    config = vitl_config()
    rows = []
    for level in range(10):
        static = count_flops(config, height, width, resolution_level=level)
        mono = count_flops(config, height, width, resolution_level=level, mode="monocular")
        floor_ms = static.total / (peak_tflops * 1e12) * 1e3
        rows.append({
            "level": level, "budget": tokens_for_level(level), "rows": static.rows,
            "cols": static.cols, "tokens": static.tokens, "sequence": static.sequence,
            "gflops": static.total / 1e9, "gflops_monocular": mono.total / 1e9,
            "floor_ms": floor_ms, "max_fps": 1e3 / floor_ms,
        })
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--peak-tflops", type=float, default=800.0,
                        help="GPU dense bf16 throughput (default: H100, about 800)")
    parser.add_argument("--json", type=Path, help="also write the table here")
    args = parser.parse_args(argv)

    rows = table(args.height, args.width, args.peak_tflops)
    print(f"ViT-L LingBot-Depth, {args.width}x{args.height} frame, static-shape graph "
          f"(all depth tokens kept); floor at {args.peak_tflops:g} TFLOP/s")
    print("| level | tokens (rows x cols) | sequence | GFLOPs | GFLOPs monocular "
          "| floor ms | max fps |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['level']} | {r['tokens']} ({r['rows']} x {r['cols']}) | {r['sequence']} "
              f"| {r['gflops']:.1f} | {r['gflops_monocular']:.1f} | {r['floor_ms']:.3f} "
              f"| {r['max_fps']:.0f} |")
    top = count_flops(vitl_config(), args.height, args.width, resolution_level=9)
    print(f"\nlevel 9 by part ({top.total / 1e9:.1f} GFLOPs):")
    for part, flops in sorted(top.parts.items(), key=lambda kv: -kv[1]):
        print(f"  {part:20s} {flops / 1e9:9.2f} GFLOPs  {100 * flops / top.total:5.1f} %")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
