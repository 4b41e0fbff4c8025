"""The `lingbot-depth` command line. Each subcommand lives in its own module under
``lingbot_depth_ros.commands`` and exposes ``register(subparsers)``; the module is imported
only to build the parser, and heavy dependencies import inside the command's run function.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from .core.allocator import tune_for_frame_buffers
from .core.errors import LingbotDepthError

#: subcommand modules, in --help order
COMMAND_MODULES = (
    "complete",     # one capture -> completed depth, mask, PLY, preview
    "eval",         # block-wise protocol over capture folders
    "model_cmds",   # export-onnx, build-engine, download
    "bag",          # bag process | eval | viz | make-demo
    "train",        # fine-tuning
    "capture",      # direct RealSense capture
    "demo",         # the README's main job
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lingbot-depth",
        description="Complete RGB-D sensor depth with LingBot-Depth or a classical engine.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f".commands.{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.commands.{name}":
                continue  # command not built in this version
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    tune_for_frame_buffers()  # every command pushes frame-sized buffers through
    try:
        return int(args.func(args) or 0)
    except LingbotDepthError as exc:
        print(f"lingbot-depth {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lingbot-depth {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
