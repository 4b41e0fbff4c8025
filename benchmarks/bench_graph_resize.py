"""What a static-shape graph of another size costs on the host: the frame resized into the
graph's size and the prediction back (engines/neural_common), against the same-size
conversion measured in the same run.

    python benchmarks/bench_graph_resize.py [--capture examples/0] [--reps 200] [--json F]

Rows: same size (frame_to_model_inputs, the baseline), a 640x480 camera into a 320x240 graph
(colour by area, depth nearest) and back (nearest), and into a 1280x960 graph (colour linear)
and back. The graph's own run time is not included: it scales with the token budget, not
with the frame size.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_pointcloud import median_ms  # noqa: E402  (wall and on-CPU medians)
from lingbot_depth_ros.core.captures import load_capture  # noqa: E402
from lingbot_depth_ros.engines.neural_common import (  # noqa: E402
    frame_to_model_inputs, inputs_at_graph_size, prediction_at_frame_size)


def round_trip(frame, height: int, width: int):
    """Inputs at the graph's size, then a graph-size prediction back at the frame's size."""
    def run():
        _, depth = inputs_at_graph_size(frame, height, width)
        prediction_at_frame_size(depth[0], frame)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", type=Path,
                        default=Path(__file__).resolve().parents[1] / "examples" / "0")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    frame = load_capture(args.capture)
    rows = [("same size (baseline)", median_ms(lambda: frame_to_model_inputs(frame), args.reps))]
    for height, width in ((240, 320), (960, 1280)):
        label = f"{frame.width}x{frame.height} -> {width}x{height} -> back"
        rows.append((label, median_ms(round_trip(frame, height, width), args.reps)))
    base_wall = rows[0][1][0]
    print(f"{'host conversion':<32}{'wall ms':>9}{'CPU ms':>9}{'x base':>8}   "
          f"(median of {args.reps}, numpy {np.__version__})")
    for label, (wall, cpu) in rows:
        print(f"{label:<32}{wall:>9.2f}{cpu:>9.2f}{wall / base_wall:>8.1f}")
    if args.json:
        args.json.write_text(json.dumps([{"case": label, "wall_ms": w, "cpu_ms": c}
                                         for label, (w, c) in rows], indent=2) + "\n")


if __name__ == "__main__":
    main()
