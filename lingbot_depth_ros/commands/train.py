"""`lingbot-depth train`: self-supervised masked-depth fine-tuning on your own recordings."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from .argtypes import data_file, output_dir, positive_int


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune the model on capture folders / rosbag2 files (masked depth modelling)",
        description="Fine-tune LingBot-Depth without labels: the sensor's own holes plus random "
                    "patches are masked and the network learns to reconstruct the measured depth. "
                    "Everything is set in one YAML file (see config/train_example.yaml). Multi-GPU: "
                    "torchrun --nproc_per_node N -m lingbot_depth_ros.cli train --config F.yaml. "
                    "Writes checkpoints (official format), train_log.csv, eval_log.csv, "
                    "TensorBoard events (if installed) and report/report.{json,md} into out_dir.")
    parser.add_argument("--config", required=True, type=data_file, help="training YAML file")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in out_dir from its last trainer state")
    parser.add_argument("--steps", type=positive_int,
                        help="override the config's total steps (e.g. to extend a resumed run)")
    parser.add_argument("--out-dir", type=output_dir, help="override the config's out_dir")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..train.config import load_config
    from ..train.loop import train

    cfg = load_config(args.config)
    if args.steps is not None:
        cfg.steps = args.steps
    if args.out_dir is not None:
        cfg.out_dir = str(args.out_dir.resolve())
    outcome = train(cfg, resume=args.resume)
    if outcome.report is not None:
        summary = outcome.report["summary"]
        print(json.dumps({"steps": outcome.step, "final_checkpoint": str(outcome.final_checkpoint),
                          "heldout_mean_rmse_before": summary["before"]["mean_rmse"],
                          "heldout_mean_rmse_after": summary["after"]["mean_rmse"],
                          "report": str(Path(cfg.out_dir) / "report" / "report.md")}, indent=1))
    return 0
