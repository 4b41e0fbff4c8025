"""`lingbot-depth bag process|eval|viz|make-demo`: offline rosbag2 tools (no ROS install). Node
parameters come from the node's own params file (--params), overridden by flags; without
them, input topics are found by looking at the bag."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from .argtypes import (add_engines_arg, add_model_file_args, count, data_file, fps, model_file_options, output_file,
                       output_path, repeat, seed)

_DISTROS = ("auto", "humble", "jazzy", "kilted")
_TOPIC_PARAMS = {"color": "color_topic", "depth": "depth_topic", "info": "camera_info_topic"}


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=Path, metavar="IN",
                        help="rosbag2 directory, .mcap or .db3 file (sqlite3 or MCAP)")
    parser.add_argument("--params", type=data_file,
                        help="node parameter file (ROS 2 params YAML, e.g. config/realsense_d435i.yaml)")
    parser.add_argument("-p", "--param", action="append", default=[], metavar="NAME:=VALUE",
                        help="override one node parameter, as `ros2 run ... -p` (repeatable), "
                             "e.g. -p publish_cloud:=false -p slop:=0.03")
    parser.add_argument("--color-topic", help="colour topic (default: params, else auto-detect)")
    parser.add_argument("--depth-topic", help="depth topic, registered to colour (default: params, else auto)")
    parser.add_argument("--camera-info-topic", "--info-topic", dest="info_topic",
                        help="colour camera info topic, as the node's camera_info_topic "
                             "(default: params, else next to colour)")
    parser.add_argument("--distro", choices=_DISTROS, default="auto",
                        help="ROS 2 message definitions for types the bag does not define itself "
                             "(default: the bag's recorded distro, else humble for bags without "
                             "definitions)")
    parser.add_argument("--limit", type=count, help="stop after this many colour/depth pairs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_engine_args(parser: argparse.ArgumentParser, plural: bool = False) -> None:
    from ..engines.registry import ENGINE_NAMES

    if plural:
        add_engines_arg(parser, default=["guided"])
    else:
        parser.add_argument("--engine", choices=ENGINE_NAMES,
                            help="completion engine (default: the params file's, else guided)")
    add_model_file_args(parser)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "bag", help="process, evaluate or visualise rosbag2 recordings offline",
        description="Offline rosbag2 tools: the node's exact pipeline on recorded bags.")
    sub = parser.add_subparsers(dest="bag_command", metavar="BAG_COMMAND")
    sub.required = True
    _register_process(sub)
    _register_eval(sub)
    _register_viz(sub)
    _register_make_demo(sub)


def _register_process(sub) -> None:
    p = sub.add_parser(
        "process", help="complete every frame of a bag into a new bag",
        description="Pair colour and depth with the node's pairing code, complete depth and write "
                    "a bag holding the input topics plus /depth_completed, "
                    "/depth_completed/camera_info, /depth_completed/points, "
                    "/depth_completed/source_mask and /depth_completed/rgbd "
                    "(lingbot_depth_ros/msg/CompletedRGBD), as the node publishes them.")
    _add_input_args(p)
    p.add_argument("output", type=output_path, metavar="OUT",
                   help="output bag: a directory, or a single file ending in .mcap or .db3")
    _add_engine_args(p)
    p.add_argument("--storage", choices=("mcap", "sqlite3"),
                   help="output storage (default: from OUT's suffix, else the input's)")
    p.add_argument("--summary-json", type=output_file, help="also write the run summary as JSON")
    p.set_defaults(func=run_process)


def _register_eval(sub) -> None:
    from ..core.protocol import LEVEL_NAMES

    p = sub.add_parser(
        "eval", help="block-wise protocol and temporal stability on every frame of a bag",
        description="Score engines with the paper's block-wise protocol on every paired frame "
                    "(ground truth: the sensor's valid depth) and measure temporal stability "
                    "(mean absolute frame-to-frame change of filled pixels; static camera).")
    _add_input_args(p)
    _add_engine_args(p, plural=True)
    p.add_argument("--protocol", choices=("blocks",), default="blocks", help="(default: blocks)")
    p.add_argument("--level", choices=LEVEL_NAMES, default="medium",
                   help="corruption level (default: medium)")
    p.add_argument("--seed", type=seed, default=0, help="corruption seed (default: 0)")
    p.add_argument("--no-temporal", action="store_true",
                   help="skip temporal stability (halves the engine work)")
    p.add_argument("--json", type=output_file, required=True, metavar="OUT", help="write the report here")
    p.set_defaults(func=run_eval)


def _register_viz(sub) -> None:
    p = sub.add_parser(
        "viz", help="side-by-side video or PNGs: colour | raw | completed | source mask",
        description="Render colour | raw depth | completed depth | source mask per frame, with one "
                    "depth colour scale for the whole clip. Uses the bag's own /depth_completed "
                    "output (from `bag process`) unless --engine is given.")
    _add_input_args(p)
    p.add_argument("output", type=output_path, metavar="OUT", help="OUT.mp4 (mp4v) or a folder for PNGs")
    _add_engine_args(p)
    p.add_argument("--fps", type=fps, default=15.0, help="video rate (default: 15)")
    p.set_defaults(func=run_viz)


def _register_make_demo(sub) -> None:
    p = sub.add_parser(
        "make-demo", help="write a RealSense-like demo bag from capture folders",
        description="Write a bag from capture folders (rgb.png|jpg, raw_depth.png, intrinsics.txt) "
                    "with realsense2_camera topic names, encodings, frame ids and camera info.")
    p.add_argument("captures", type=data_file, metavar="DIR", help="a capture folder or a folder of them")
    p.add_argument("output", type=output_path, metavar="OUT",
                   help="OUT.mcap / OUT.db3 (single file) or a bag directory")
    p.add_argument("--fps", type=fps, default=30.0, help="stamp rate (default: 30)")
    p.add_argument("--repeat", type=repeat, default=1, help="loops over the captures (default: 1)")
    p.add_argument("--storage", choices=("mcap", "sqlite3"),
                   help="storage (default: from OUT's suffix, else mcap)")
    p.add_argument("--camera", choices=("realsense",), default="realsense", help="(default: realsense)")
    p.add_argument("--transport", choices=("raw", "compressed"), default="raw",
                   help="raw Image, or image_transport compressed colour + compressedDepth depth")
    p.set_defaults(func=run_make_demo)


# -- shared set-up ------------------------------------------------------------------------
def load_config(args: argparse.Namespace, rig: bool = False):
    """(NodeConfig, topic overrides for select_topics) from --params and the topic flags;
    rig: (NodeConfig, topic overrides, the rig's cameras: core/rig.py), else a rig is an
    error (one camera at a time)."""
    from ..core.errors import LingbotDepthError
    from ..core.config import NODE_NAME, NodeConfig, load_params_file, node_values
    from ..core.rig import rig_from_values

    values = {}
    try:
        if args.params is not None:
            values = load_params_file(args.params, require_section=True)
        values.update(_parse_overrides(args.param))
        # What the node accepts, the tools accept: ROS's own parameters (use_sim_time,
        # qos_overrides.*) silently, any other unknown name with the node's warning.
        values, unknown = node_values(values)
        for name in unknown:
            logging.getLogger(__name__).warning(
                "parameter '%s' is not a parameter of %s; ignored", name, NODE_NAME)
        cameras = rig_from_values(values)
        config = NodeConfig.from_values({k: v for k, v in values.items() if "." not in k})
    except ValueError as exc:
        raise LingbotDepthError(f"node parameters: {exc}") from exc
    if config.cameras and not rig:
        raise LingbotDepthError(f"node parameters: a rig ({', '.join(config.cameras)}); this "
                                "command takes one camera: a parameter file without cameras")
    topics = {key: values[name] for key, name in _TOPIC_PARAMS.items() if name in values}
    for key in _TOPIC_PARAMS:
        flag = getattr(args, f"{key}_topic")
        if flag:
            topics[key] = flag
    if rig and config.cameras:
        flags = [f"--{key}-topic" for key in _TOPIC_PARAMS if getattr(args, f"{key}_topic")]
        if flags:
            raise LingbotDepthError(f"{', '.join(flags)}: a rig's cameras take their topics from "
                                    "the parameter file")
        topics = {}
    return (config, topics, cameras) if rig else (config, topics)


def _parse_overrides(items: list[str]) -> dict:
    """['slop:=0.03', ...] -> {'slop': 0.03}; values are YAML, typed as in a params file."""
    import yaml

    values = {}
    for item in items:
        name, sep, text = item.partition(":=")
        if not sep or not name:
            raise ValueError(f"-p expects NAME:=VALUE, got '{item}'")
        try:
            values[name.strip()] = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise ValueError(f"-p {item}: value is not YAML: {exc}") from exc
    return values


def make_engine(name: str, config, args: argparse.Namespace):
    """The engine and its model id, with the node's options; load failures are errors here
    (offline there is no reason to fall back silently)."""
    from ..engines.registry import load_engine

    return load_engine(config, name, **model_file_options(args))


# -- commands -----------------------------------------------------------------------------
def run_process(args: argparse.Namespace) -> int:
    from ..bag.process import process_bag
    from ..core.errors import LingbotDepthError
    from ..core.io import write_json
    from ..core.threads import set_math_threads

    config, topics, cameras = load_config(args, rig=True)
    _check_storage(args.output, args.storage)
    set_math_threads(config.math_threads)  # as the node does
    engine, model = make_engine(args.engine or config.engine, config, args)
    with engine:
        summary = process_bag(args.input, args.output, engine, config, storage=args.storage,
                              distro=args.distro, model_id=model, topics=topics,
                              limit=args.limit, show_progress=not args.no_progress,
                              cameras=cameras)
    print("\n".join(summary.lines()))
    if args.summary_json:
        data = dict(vars(summary), frames_per_s=summary.fps)
        data["topics"] = vars(summary.topics) if summary.topics else None
        write_json(args.summary_json, data)
    if summary.interrupted:  # 128 + the signal's number, as a shell reports it
        return 143 if summary.stop_signal == "SIGTERM" else 130
    if summary.processed == 0:
        raise LingbotDepthError(f"no frame of {args.input} was completed (see the drops above)")
    if summary.engine_failure:  # as the node: the engine stopped for good (fallback none)
        print(f"lingbot-depth bag process: stopped: {summary.engine_failure}", file=sys.stderr)
        return 1
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from ..bag.evaluate import evaluate_bag, format_report
    from ..core.errors import LingbotDepthError
    from ..core.io import write_json

    config, topics = load_config(args)
    with contextlib.ExitStack() as opened:  # every engine made so far closes, whatever happens
        engines = {name: opened.enter_context(make_engine(name, config, args)[0])
                   for name in dict.fromkeys(args.engines)}
        report = evaluate_bag(args.input, engines, config, protocol=args.protocol,
                              level=args.level, seed=args.seed, temporal=not args.no_temporal,
                              topics=topics, distro=args.distro, limit=args.limit,
                              show_progress=not args.no_progress)
    if report["frames_scored"] == 0:
        dropped = ", ".join(f"{k} {v}" for k, v in report["dropped"].items()) or "none"
        raise LingbotDepthError(f"no frame of {args.input} could be scored ({report['pairs']} "
                                f"colour/depth pairs, dropped images: {dropped}); "
                                f"{args.json} not written")
    print("\n".join(format_report(report)))
    write_json(args.json, report)
    return 0


def run_viz(args: argparse.Namespace) -> int:
    from ..bag.viz import render_bag

    config, topics = load_config(args)
    with contextlib.ExitStack() as opened:
        engine = opened.enter_context(make_engine(args.engine, config, args)[0]) if args.engine else None
        result = render_bag(args.input, args.output, config, engine, fps=args.fps, topics=topics,
                            distro=args.distro, limit=args.limit,
                            show_progress=not args.no_progress)
    print(f"wrote {result['frames']} frames to {result['out']} (depth scale "
          f"{result['range_m'][0]:.2f}-{result['range_m'][1]:.2f} m, {result['source']})")
    return 0


def run_make_demo(args: argparse.Namespace) -> int:
    from ..bag.demo import write_demo_bag

    _check_storage(args.output, args.storage)
    info = write_demo_bag(args.captures, args.output, fps=args.fps, repeat=args.repeat,
                          storage=args.storage, camera=args.camera, transport=args.transport)
    print(f"wrote {info['frames']} frames ({info['storage']}) to {info['path']}: "
          + ", ".join(info["topics"]))
    return 0


def _check_storage(output: Path, storage: str | None) -> None:
    """OUT.mcap with --storage sqlite3, an OUT that exists, and the like: before any work
    (the bag writer checks the same again when it opens)."""
    from ..bag.writer import storage_for
    from ..core.errors import LingbotDepthError

    try:
        storage_for(output, storage)
    except ValueError as exc:
        raise LingbotDepthError(str(exc)) from exc
    if output.exists():
        raise LingbotDepthError(f"output {output} exists already; remove it or choose another name")

