"""`lingbot-depth eval`: score engines on the block-wise masking protocol over capture folders."""

from __future__ import annotations

import argparse
import json

from .argtypes import (MAX_SEED, add_depth_args, add_engines_arg, add_model_file_args, count,
                       data_file, depth_range, model_file_options, output_file, seed)

#: columns of the printed table: (metric, heading, format)
_TABLE = (("rmse", "RMSE m", "{:.4f}"), ("mae", "MAE m", "{:.4f}"),
          ("abs_rel", "AbsRel", "{:.4f}"), ("delta1", "d1", "{:.3f}"),
          ("coverage", "cover", "{:.3f}"))


def _option(text: str) -> tuple[str, str, object]:
    """'[ENGINE.]KEY=VALUE' -> (engine or '', key, value); VALUE is JSON if it parses."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE or ENGINE.KEY=VALUE, got '{text}'")
    engine, _, key = key.rpartition(".")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a plain string such as cuda:0 or a path
    return engine, key.replace("-", "_"), value


def register(subparsers) -> None:
    from ..core.protocol import LEVEL_NAMES

    parser = subparsers.add_parser(
        "eval", help="score engines on the block-wise masking protocol",
        description="Corrupt the depth of every capture folder in --data (rgb.png|rgb.jpg, "
                    "raw_depth.png, intrinsics.txt) by dropping random blocks and adding noise "
                    "(see core/protocol.py for each level's parameters), complete it with each "
                    "engine and score against the original depth on the dropped pixels "
                    "('masked') and on all valid pixels ('all').")
    parser.add_argument("--data", required=True, type=data_file,
                        help="a capture folder, or a folder of capture folders")
    parser.add_argument("--protocol", default="blocks", choices=("blocks",),
                        help="evaluation protocol (default: blocks)")
    parser.add_argument("--level", default="medium", choices=LEVEL_NAMES,
                        help="corruption level (default: medium)")
    add_engines_arg(parser, default=["guided", "nearest", "telea"])
    parser.add_argument("--seed", type=seed, default=0, help="first random seed (default: 0)")
    parser.add_argument("--trials", type=count, default=1,
                        help="corruptions per capture, seeds SEED..SEED+TRIALS-1 (default: 1)")
    parser.add_argument("--json", type=output_file, help="write the results as JSON to this file")
    add_model_file_args(parser)
    parser.add_argument("--engine-options", nargs="+", type=_option, default=[], action="extend",
                        metavar="[ENGINE.]KEY=VALUE",
                        help="engine constructor options, e.g. telea.radius=10 device=cpu; "
                             "without ENGINE. an option goes to every engine that accepts it")
    add_depth_args(parser)
    parser.set_defaults(func=run)


def engine_options(args: argparse.Namespace) -> dict[str, tuple[dict, dict]]:
    """(explicit, offered) constructor options per engine: ENGINE.KEY must be taken by that
    engine; model files and un-prefixed options go to every engine taking them (to none: error)."""
    from ..core.errors import EngineOptionError
    from ..engines.registry import MODEL_FILE_OPTIONS, engine_parameters, renamed_options
    from ..engines.registry import engine_options as checked_options

    shared = model_file_options(args)
    shared.update({key: value for engine, key, value in args.engine_options if not engine})
    shared = renamed_options(shared)
    used: set[str] = set(MODEL_FILE_OPTIONS)
    out: dict[str, tuple[dict, dict]] = {}
    for name in args.engines:
        used.update(shared if name == "auto" else engine_parameters(name))
        explicit = renamed_options(
            {key: value for engine, key, value in args.engine_options if engine == name})
        if name != "auto":
            checked_options(name, explicit, shared)  # names and values, before any work
        out[name] = (explicit, shared)
    stray = [f"{e}.{k}" for e, k, _ in args.engine_options if e and e not in args.engines]
    unused = sorted(k for k in shared if k not in used)
    if stray or unused:
        raise EngineOptionError(
            "engine options for no evaluated engine: " + ", ".join(stray + unused))
    return out


def run(args: argparse.Namespace) -> int:
    from ..core.captures import find_captures, load_capture
    from ..core.errors import LingbotDepthError
    from ..core.io import write_json
    from ..core.protocol import evaluate_engine, get_level, make_trials
    from ..engines import create_engine

    valid_range = depth_range(args)
    if args.seed + args.trials - 1 > MAX_SEED:
        raise LingbotDepthError(f"--seed {args.seed} + --trials {args.trials} runs past the "
                                f"largest seed {MAX_SEED}")
    options = engine_options(args)
    frames = [load_capture(p, args.depth_scale, valid_range) for p in find_captures(args.data)]
    seeds = list(range(args.seed, args.seed + args.trials))
    trials = make_trials(frames, args.level, seeds)
    report = {"engines": {}, "per_capture": {f.frame_id: {} for f in frames},
              "protocol": protocol_summary(args, get_level(args.level), frames, seeds)}
    for name in args.engines:
        explicit, offered = options[name]
        with create_engine(name, offered=offered, **explicit) as engine:
            scores = evaluate_engine(engine, trials)
        for capture, capture_scores in scores.pop("per_capture").items():
            report["per_capture"][capture][name] = capture_scores
        report["engines"][name] = scores | {"description": engine.describe()}
    print(format_table(report))
    if args.json:
        write_json(args.json, report)
        print(f"wrote {args.json}")
    return 0


def protocol_summary(args, level, frames, seeds) -> dict:
    return {"name": args.protocol, "level": level.name, "blocks": level.blocks,
            "side_px": [level.side_min, level.side_max], "sigma_m": level.sigma_m,
            "shot_m": level.shot_m, "seeds": seeds, "captures": [f.frame_id for f in frames],
            "data": str(args.data), "depth_scale": args.depth_scale,
            "valid_range_m": [args.min_depth, args.max_depth]}


def format_table(report: dict) -> str:
    """Engines x (masked metrics, all-pixel RMSE, ms/frame), then masked RMSE per capture."""
    proto = report["protocol"]
    head = (f"{'engine':<14}" + "".join(f"{h:>9}" for _, h, _ in _TABLE)
            + f"{'all RMSE':>10}{'ms/frame':>10}")
    lines = [f"protocol {proto['name']}, level {proto['level']}, seeds {proto['seeds']}, "
             f"{len(proto['captures'])} captures; metrics on dropped pixels unless 'all'",
             head, "-" * len(head)]
    for name, scores in report["engines"].items():
        cells = "".join(f"{fmt.format(scores['masked'][key]):>9}" for key, _, fmt in _TABLE)
        lines.append(f"{name:<14}{cells}{scores['all']['rmse']:>10.4f}"
                     f"{scores['ms_per_frame']:>10.1f}")
    names = list(report["engines"])
    lines += ["", "masked RMSE (m) per capture", f"{'capture':<14}" +
              "".join(f"{n:>12}" for n in names)]
    for capture, per_engine in report["per_capture"].items():
        lines.append(f"{capture:<14}" + "".join(
            f"{per_engine[n]['masked']['rmse']:>12.4f}" for n in names))
    return "\n".join(lines)
