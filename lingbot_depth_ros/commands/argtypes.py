"""The one argument-validation path of the subcommands: `type=` checkers bound every number and
check output paths before any work, and the parser prints one line (exit 2), never the usage
block. Also the model-file and depth-range options several commands take."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

#: bounds shared by the commands (why each: see docs/bad-input.md)
MAX_SIDE_PX = 8192          # a frame side; 8K video is 7680 wide
MAX_FPS = 1000.0            # a camera or video rate
MIN_FPS = 0.01
MAX_REPEAT = 100_000        # loops over captures in a generated bag
MAX_SEED = 2**32 - 1        # numpy's seed range
MAX_COUNT = 1_000_000       # trials, frames and the like


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def bounded_int(low: int, high: int, what: str = "an integer"):
    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what} in {low}..{high}, got {text}")
        return value
    check.__name__ = "integer"  # argparse names the type in "invalid <name> value"
    return check


def bounded_float(low: float, high: float, what: str = "a number", low_open: bool = False):
    def check(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'") from None
        above = value > low if low_open else value >= low
        if not (math.isfinite(value) and above and value <= high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"must be {what} in {interval}, got {text}")
        return value
    check.__name__ = "number"
    return check


positive_int = bounded_int(1, sys.maxsize, "a positive integer")
count = bounded_int(1, MAX_COUNT, "a positive count")
seed = bounded_int(0, MAX_SEED, "a seed")
_side_px = bounded_int(16, MAX_SIDE_PX, "a frame side in pixels")
#: colour in (3) + depth in (4) + depth and mask out (4 + 4) bytes per pixel
_BYTES_PER_PIXEL = 15


def side_px(text: str) -> int:
    """A frame height or width; the error for a huge one says what that would cost."""
    try:
        return _side_px(text)
    except argparse.ArgumentTypeError as exc:
        value = int(text) if text.strip().lstrip("+-").isdigit() else 0
        if value <= MAX_SIDE_PX:
            raise
        gb = value * value * _BYTES_PER_PIXEL / 1e9
        raise argparse.ArgumentTypeError(
            f"{exc}: a {value}x{value} frame would take {gb:,.1f} GB of colour, depth and "
            f"output buffers") from None
fps = bounded_float(MIN_FPS, MAX_FPS, "a rate in Hz")
repeat = bounded_int(1, MAX_REPEAT, "a repeat count")
non_negative_float = bounded_float(0.0, math.inf, "a finite number >= 0")
depth_scale = bounded_float(1e-9, 1e3, "metres per depth unit", low_open=True)
depth_m = bounded_float(0.0, 1e4, "a depth in metres")


def _path_text(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; give a path")
    return Path(text)


#: folders the package installs to its share folder (setup.py data_files, CMakeLists.txt)
SHARED_FOLDERS = ("examples", "config")


def data_file(text: str) -> Path:
    """An input path as given; one under examples/ or config/ that is not here relative to
    the current folder is the package's shipped copy (a colcon or pip install's share
    folder), so the documented `examples/3/rgb.jpg` works outside a checkout too."""
    path = _path_text(text)
    if path.exists() or path.is_absolute() or not path.parts or path.parts[0] not in SHARED_FOLDERS:
        return path
    from ..paths import data_path

    shipped = data_path(path.as_posix())
    return shipped if shipped.exists() else path


def output_file(text: str) -> Path:
    """A file to be written: not an existing folder, and its parent is not a file."""
    path = _path_text(text)
    if path.is_dir() or text.endswith(("/", "\\")):
        raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
    _check_parent(path, text)
    return path


def output_dir(text: str) -> Path:
    """A folder to be written into (created): not an existing file."""
    path = _path_text(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a file; give a folder")
    _check_parent(path, text)
    return path


def output_path(text: str) -> Path:
    """A file or a folder, as the command decides from the name (bags, videos)."""
    path = _path_text(text)
    _check_parent(path, text)
    return path


def _check_parent(path: Path, text: str) -> None:
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise argparse.ArgumentTypeError(f"{parent} is a file, not a folder")
            return


def add_model_file_args(parser: argparse.ArgumentParser) -> None:
    """--checkpoint / --onnx / --engine-file, the neural engines' model files."""
    parser.add_argument("--checkpoint", type=Path, help="model checkpoint (torch, auto)")
    parser.add_argument("--onnx", type=Path, help="ONNX model (onnxruntime, tensorrt, auto)")
    parser.add_argument("--engine-file", type=Path, help="TensorRT engine (tensorrt, auto)")


def add_depth_args(parser: argparse.ArgumentParser, scale: bool = True) -> None:
    """--depth-scale (raw depth only) and --min-depth / --max-depth, the valid range."""
    from ..core.depth import DEFAULT_DEPTH_SCALE, DepthRange

    if scale:
        parser.add_argument("--depth-scale", type=depth_scale, default=DEFAULT_DEPTH_SCALE,
                            help="metres per depth unit (default: %(default)s, millimetres)")
    parser.add_argument("--min-depth", type=depth_m, default=DepthRange().min_m,
                        help="readings below this many metres are no data (default: %(default)s)")
    parser.add_argument("--max-depth", type=depth_m, default=DepthRange().max_m,
                        help="readings beyond this many metres are no data (default: %(default)s)")


def engine_list(text: str) -> list[str]:
    """'guided,nearest' -> ['guided', 'nearest'], each a known engine."""
    from ..engines.registry import ENGINE_NAMES

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in ENGINE_NAMES]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown engine(s) {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(ENGINE_NAMES)}")
    return names


class _EngineNames(argparse.Action):
    """Flattens `--engines a,b c` into ['a', 'b', 'c'] (first occurrence kept)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, list(dict.fromkeys(n for group in values for n in group)))


def add_engines_arg(parser: argparse.ArgumentParser, default: list[str]) -> None:
    """--engines, comma- or space-separated (`eval` and `bag eval` take both forms)."""
    parser.add_argument("--engines", nargs="+", type=engine_list, action=_EngineNames,
                        default=default, metavar="ENGINE",
                        help=f"engines to compare, separated by spaces or commas "
                             f"(default: {' '.join(default)})")


def add_engine_arg(parser: argparse.ArgumentParser) -> None:
    """--engine, defaulting to the embedded classical engine."""
    from ..engines.registry import ENGINE_NAMES

    parser.add_argument("--engine", default="guided", choices=ENGINE_NAMES,
                        help="completion engine (default: guided)")


def depth_range(args: argparse.Namespace):
    """--min-depth / --max-depth as a DepthRange (LingbotDepthError unless min < max)."""
    from ..core.depth import DepthRange
    from ..core.errors import LingbotDepthError

    if not args.min_depth < args.max_depth:
        raise LingbotDepthError(f"--min-depth {args.min_depth} must be below --max-depth {args.max_depth}")
    return DepthRange(args.min_depth, args.max_depth)


def model_file_options(args: argparse.Namespace) -> dict[str, str]:
    """The model files that were given, under the engines' keyword names."""
    given = {"checkpoint": getattr(args, "checkpoint", None), "onnx": getattr(args, "onnx", None),
             "engine_file": getattr(args, "engine_file", None)}
    return {key: str(value) for key, value in given.items() if value is not None}
