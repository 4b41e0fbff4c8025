"""Argument pieces shared by the subcommands: `type=` checkers (a bad number is a usage
error, exit 2 with the option named, never a traceback further in) and the model-file
options every engine-running command takes."""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def add_model_file_args(parser: argparse.ArgumentParser) -> None:
    """--checkpoint / --onnx / --engine-file, the neural engines' model files."""
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (torch, auto)")
    parser.add_argument("--onnx", type=Path, help="ONNX model (onnxruntime, tensorrt, auto)")
    parser.add_argument("--engine-file", type=Path, help="TensorRT engine (tensorrt, auto)")


def model_file_options(args: argparse.Namespace) -> dict[str, str]:
    """The model files that were given, under the engines' keyword names."""
    given = {"checkpoint": getattr(args, "checkpoint", None), "onnx": getattr(args, "onnx", None),
             "engine_file": getattr(args, "engine_file", None)}
    return {key: str(value) for key, value in given.items() if value is not None}
