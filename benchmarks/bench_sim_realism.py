"""Realism of the simulator's holes: its hole statistics beside those of real captures of
the same camera family (examples/ and ../shared/data/rgbd_examples/: four 640x480 captures
from the LingBot-Depth reference repository, Apache-2.0, see examples/README.md; their
intrinsics, fx 460 px at 640 (a 69.6 deg field of view), are those of a RealSense D4xx colour
camera, which is what the D435 model registers to).

Statistics of a depth image (0 / NaN = hole), all on its own measured depth, no ground truth:
- hole fraction: holes / pixels;
- edge share: the share of hole pixels in row runs whose valid neighbours on the left and the
  right differ by more than EDGE_STEP (a hole at a depth edge: occlusion-like);
- side: of those edge runs, the share (in pixels) whose far side is on the LEFT, i.e. holes left
  of a nearer object, the side a left-referenced stereo camera with its second imager on the
  right predicts;
- hole sizes: the share of hole pixels in connected holes of 1-9, 10-99, 100-999, 1000-9999
  and >= 10000 pixels.

    python benchmarks/bench_sim_realism.py [--frames 8] [--camera d435] [--sim DIR]
        [--picture docs/sim_example.png]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

EDGE_STEP = 0.10
SIZE_BINS = (1, 10, 100, 1000, 10000)


def hole_stats(depth: np.ndarray) -> dict:
    """The statistics above for one depth image in metres (NaN or <= 0 = hole)."""
    valid = np.isfinite(depth) & (depth > 0)
    holes = ~valid
    stats = {"hole_fraction": float(holes.mean())}
    edge_px = left_px = 0
    for row in range(depth.shape[0]):
        h = holes[row].astype(np.int8)
        change = np.diff(np.concatenate([[0], h, [0]]))
        starts, ends = np.flatnonzero(change == 1), np.flatnonzero(change == -1)
        for s, e in zip(starts, ends):
            if s == 0 or e >= depth.shape[1]:
                continue
            left, right = depth[row, s - 1], depth[row, e]
            if abs(left - right) > EDGE_STEP * min(left, right):
                edge_px += e - s
                left_px += (e - s) if left > right else 0
    n_holes = int(holes.sum())
    stats["edge_share"] = edge_px / n_holes if n_holes else 0.0
    stats["left_side"] = left_px / edge_px if edge_px else float("nan")
    count, labels, cc, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=8)
    areas = cc[1:, cv2.CC_STAT_AREA]
    edges = list(SIZE_BINS) + [np.inf]
    stats["sizes"] = [float(areas[(areas >= lo) & (areas < hi)].sum() / max(n_holes, 1))
                      for lo, hi in zip(edges[:-1], edges[1:])]
    return stats


def real_depths() -> list[tuple[str, np.ndarray]]:
    from lingbot_depth_ros.core.captures import find_captures, read_raw_depth

    out, seen = [], set()
    for root in (ROOT / "examples", ROOT.parent / "shared" / "data" / "rgbd_examples",
                 Path("/work/shared/data/rgbd_examples")):
        if not root.is_dir():
            continue
        for folder in find_captures(root):
            raw = read_raw_depth(folder / "raw_depth.png")
            key = raw.tobytes()[:4096] + bytes(str(raw.sum()), "ascii")
            if key in seen:  # the shared folder holds the same four captures
                continue
            seen.add(key)
            depth = raw.astype(np.float32) / 1000.0
            depth[(raw == 0) | (raw >= 65000) | (raw < 50)] = np.nan  # folder 3's garbage
            out.append((f"{root.name}/{folder.name}", depth))
    return out


def sim_depths(args) -> list[tuple[str, np.ndarray, object]]:
    from lingbot_depth_ros.sim.cameras import camera_model
    from lingbot_depth_ros.sim.config import load_sim_config
    from lingbot_depth_ros.sim.frame import simulate_frame

    if args.sim:
        from lingbot_depth_ros.core.captures import find_captures, read_raw_depth
        return [(f"sim/{f.name}", np.where(d > 0, d / 1000.0, np.nan), None)
                for f in find_captures(args.sim)
                for d in [read_raw_depth(f / "raw_depth.png").astype(np.float32)]]
    config = load_sim_config()
    camera = camera_model(args.camera)
    frames = []
    for seed in range(args.seed, args.seed + args.frames):
        frame = simulate_frame(seed, camera, config)
        frames.append((f"sim/{seed}", frame.depth, frame))
    return frames


def summarise(rows: list[dict]) -> dict:
    keys = ("hole_fraction", "edge_share", "left_side")
    out = {k: float(np.nanmean([r[k] for r in rows])) for k in keys}
    out["sizes"] = list(np.mean([r["sizes"] for r in rows], axis=0))
    return out


def print_table(real: dict, sim: dict, n_real: int, n_sim: int, camera: str) -> None:
    names = ["1-9", "10-99", "100-999", "1e3-1e4", ">=1e4"]
    print(f"{'statistic':34s} {'real (' + str(n_real) + ')':>12s} {'sim ' + camera + ' (' + str(n_sim) + ')':>16s}"
          f" {'|diff|':>8s}")
    for key, label in (("hole_fraction", "hole fraction"), ("edge_share", "hole px at a depth edge"),
                       ("left_side", "edge holes left of the near side")):
        print(f"{label:34s} {real[key]:12.3f} {sim[key]:16.3f} {abs(real[key] - sim[key]):8.3f}")
    for i, name in enumerate(names):
        r, s = real["sizes"][i], sim["sizes"][i]
        print(f"{'hole px in holes of ' + name + ' px':34s} {r:12.3f} {s:16.3f} {abs(r - s):8.3f}")


def write_picture(frame, path: Path, width: int = 240) -> None:
    """colour | left IR | simulated depth | ground truth, each `width` wide."""
    height = width * frame.rgb.shape[0] // frame.rgb.shape[1]
    top = float(np.nanpercentile(frame.depth_gt, 98))

    def colour_depth(d):
        v = np.clip(np.nan_to_num(d, nan=0.0) / top, 0, 1)
        image = cv2.applyColorMap((255 * (1 - v)).astype(np.uint8), cv2.COLORMAP_TURBO)
        image[~np.isfinite(d)] = 0
        return image

    panels = [cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR), cv2.cvtColor(frame.ir_left, cv2.COLOR_GRAY2BGR),
              colour_depth(frame.depth), colour_depth(frame.depth_gt)]
    picture = np.hstack([cv2.resize(p, (width, height), interpolation=cv2.INTER_AREA) for p in panels])
    for i, text in enumerate(("colour", "left IR", "simulated depth", "ground truth")):
        cv2.putText(picture, text, (i * width + 6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1,
                    cv2.LINE_AA)
    cv2.imwrite(str(path), picture, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--camera", default="d435")
    parser.add_argument("--sim", type=Path, help="read simulated frames from a simulate output folder")
    parser.add_argument("--picture", type=Path, help="write colour | IR | depth | truth of the first frame")
    parser.add_argument("--picture-seed", type=int, help="render this seed for the picture instead")
    args = parser.parse_args()
    real = real_depths()
    sims = sim_depths(args)
    real_rows = [hole_stats(d) for _, d in real]
    sim_rows = [hole_stats(d) for _, d, _ in sims]
    for (name, _), row in zip(real, real_rows):
        print(f"{name:28s} holes {row['hole_fraction']:.3f} edge {row['edge_share']:.2f} "
              f"left {row['left_side']:.2f}")
    for (name, _, _), row in zip(sims, sim_rows):
        print(f"{name:28s} holes {row['hole_fraction']:.3f} edge {row['edge_share']:.2f} "
              f"left {row['left_side']:.2f}")
    print()
    print_table(summarise(real_rows), summarise(sim_rows), len(real_rows), len(sim_rows), args.camera)
    if args.picture:
        frame = sims[0][2]
        if args.picture_seed is not None or frame is None:
            from lingbot_depth_ros.sim.cameras import camera_model
            from lingbot_depth_ros.sim.config import load_sim_config
            from lingbot_depth_ros.sim.frame import simulate_frame
            frame = simulate_frame(args.picture_seed or 0, camera_model(args.camera), load_sim_config())
        write_picture(frame, args.picture)
        print(f"picture: {args.picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
