"""`lingbot-depth simulate`: synthetic RGB-D frames with a stereo camera's own failures."""

from __future__ import annotations

import argparse
import json
import os
import time

from .argtypes import MAX_COUNT, MAX_SEED, bounded_int, data_file, fps, output_dir, output_path, side_px

CAMERA_NAMES = ("d435", "d455", "gemini335", "zed2i")
frames = bounded_int(1, MAX_COUNT, "a frame count")
seed = bounded_int(0, MAX_SEED - MAX_COUNT, "a seed")
workers = bounded_int(1, 512, "a worker count")
spp = bounded_int(1, 4096, "samples per pixel")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="render synthetic frames with a stereo camera's holes (capture folders, bag)",
        description="Render random tabletop and room scenes (config/sim_scenes.yaml) through a "
                    "stereo depth camera model and write one capture folder per frame, in the "
                    "layout of examples/ (rgb.png, raw_depth.png, intrinsics.txt), plus "
                    "gt_depth.png, labels.png, ir_left.png, ir_right.png and meta.json. Frame "
                    "SEED is rendered from seed SEED alone; folders already written are skipped "
                    "(resume). See docs/simulation.md.")
    parser.add_argument("--out", required=True, type=output_dir, help="output folder (created)")
    parser.add_argument("--frames", type=frames, default=10, help="frames to write (default: 10)")
    parser.add_argument("--seed-start", type=seed, default=0, help="seed of the first frame (default: 0)")
    parser.add_argument("--camera", choices=CAMERA_NAMES, default="d435", help="(default: d435)")
    parser.add_argument("--config", type=data_file, help="scene distributions (default: config/sim_scenes.yaml)")
    parser.add_argument("--width", type=side_px, help="image width (default: the camera's 640)")
    parser.add_argument("--height", type=side_px, help="image height (default: the camera's 480)")
    parser.add_argument("--spp", type=spp, help="samples per pixel of every image (default: the config's)")
    parser.add_argument("--workers", type=workers, default=1,
                        help="local processes rendering frames side by side (default: 1)")
    parser.add_argument("--cluster", metavar="ADDRESS",
                        help="render on a cluster instead: ray://HOST:PORT or ray:auto (Ray), "
                             "tcp://HOST:PORT (a Dask scheduler)")
    parser.add_argument("--bag", type=output_path, metavar="BAG",
                        help="also write the frames as a rosbag2 with the camera driver's topics "
                             "(.mcap, .db3 or a folder)")
    parser.add_argument("--fps", type=fps, default=15.0, help="stamp rate of --bag (default: 15)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..bag.progress import progress_bar
    from ..core.errors import LingbotDepthError
    from ..sim import dataset
    from ..sim.cameras import camera_model
    from ..sim.config import load_sim_config

    config = load_sim_config(args.config)
    if args.spp is not None:
        config["quality"]["ir_spp"] = config["quality"]["color_spp"] = args.spp
    camera = camera_model(args.camera)
    width, height = args.width or camera.width, args.height or camera.height
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seed_start, args.seed_start + args.frames))
    todo = dataset.pending_seeds(out, seeds)
    cores = os.cpu_count() or 1
    threads = 1 if args.cluster else max(1, cores // args.workers)
    jobs = [dataset.FrameJob(s, args.camera, width, height, config, threads) for s in todo]
    if args.cluster:
        runner = dataset.cluster_runner(args.cluster)
    else:
        runner = lambda js: dataset.run_local(js, args.workers)  # noqa: E731
    start, cpu = time.perf_counter(), []
    try:
        with progress_bar(len(jobs), not args.no_progress, desc="simulating") as bar:
            for frame_seed, files in runner(jobs):
                dataset.write_frame(out, frame_seed, files)
                cpu.append(sum(json.loads(files[dataset.META_NAME])["cpu_seconds"].values()))
                bar.update(1)
    except ImportError as exc:
        raise LingbotDepthError(str(exc)) from None
    summary = {"written": len(jobs), "skipped": len(seeds) - len(todo), "out": str(out),
               "camera": args.camera, "size": f"{width}x{height}",
               "seconds": round(time.perf_counter() - start, 2),
               "cpu_seconds_per_frame": round(sum(cpu) / len(cpu), 2) if cpu else None}
    if args.bag is not None:
        from ..sim.bag_out import write_sim_bag
        summary["bag"] = write_sim_bag(out, seeds, args.bag, args.camera, args.fps)
    print(json.dumps(summary, indent=1))
    return 0
