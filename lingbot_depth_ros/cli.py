"""The `lingbot-depth` command line: each subcommand module under ``commands`` exposes
``register(subparsers)``; heavy dependencies import inside the command's run function."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys

from .commands.argtypes import OneLineParser
from .core.allocator import tune_for_frame_buffers
from .core.errors import LingbotDepthError, one_line_reason

#: exit codes (docs/bad-input.md): 2 bad input or a failed write, 130 stopped by Ctrl-C and
#: 143 by SIGTERM, each after the same clean stop (summary printed, outputs closed)
EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 130, 143

#: subcommand modules, in --help order
COMMAND_MODULES = (
    "complete",     # one capture -> completed depth, mask, PLY, preview
    "eval",         # block-wise protocol over capture folders
    "model_cmds",   # export-onnx, build-engine, download
    "bag",          # bag process | eval | viz | make-demo
    "train",        # fine-tuning
    "capture",      # direct RealSense capture
    "simulate",     # synthetic frames with a stereo camera's holes
    "demo",         # the README's main job
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="lingbot-depth",
        description="Complete RGB-D sensor depth with LingBot-Depth or a classical engine.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f".commands.{name}", __package__).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    tune_for_frame_buffers()  # every command pushes frame-sized buffers through
    terms: list[int] = []
    previous_term = _term_as_interrupt(terms)
    try:
        code = int(args.func(args) or 0)
    except (LingbotDepthError, OSError) as exc:  # bad input, or an output that cannot be written
        print(f"lingbot-depth {args.command}: error: {one_line_reason(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"lingbot-depth {args.command}: interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
    # a command that a signal stopped cleanly: the shell's code for that signal
    return EXIT_TERMINATED if code == EXIT_INTERRUPTED and terms else code


def _term_as_interrupt(terms: list[int]):
    """The one signal path: SIGTERM does what Ctrl-C does in whatever command runs (a bag
    being processed is closed readable with its summary; elsewhere KeyboardInterrupt).
    Records each SIGTERM in `terms`. Returns the previous handler, None where signals
    cannot be set (not the main thread)."""
    def on_term(signum, frame):
        terms.append(signum)
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)
        else:
            raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, on_term)
    except ValueError:
        return None


if __name__ == "__main__":
    sys.exit(main())
