"""Files of a completed frame: depth (16-bit PNG mm, .npy m), source mask, previews, PLY."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import cv2
import numpy as np

from .depth import metres_to_16uc1
from .errors import LingbotDepthError, error_class, one_line_reason
from .frame import CompletionResult, RGBDFrame, SourceMask
from .pointcloud import finite_points, organized_points, unpack_rgb

#: file names written by `write_completion`, by role
OUTPUT_FILES = {
    "depth_png": "completed_depth.png",      # uint16 millimetres, 0 = none
    "depth_npy": "completed_depth.npy",      # float32 metres, NaN = none
    "source_mask": "source_mask.png",        # uint8 SourceMask values 0/1/2
    "source_preview": "source_mask_color.png",  # the mask in colour, for eyes
    "preview": "preview.png",                # rgb | raw | completed, shared turbo range
    "points": "points.ply",                  # binary PLY of valid points with colour
}

#: RGB colour of each SourceMask value in the colour-coded mask
SOURCE_COLORS = {
    SourceMask.INVALID: (0, 0, 0),
    SourceMask.MEASURED: (70, 130, 220),
    SourceMask.FILLED: (255, 160, 20),
}
_NO_DATA_RGB = (0, 0, 0)


OutputWriteError = error_class("OutputWriteError", "output_write", OSError,
                               "An output file or folder cannot be written.")


class OutputCommit:
    """The one output-commit path: files are written as ``<name>.partial`` and renamed only
    when all were written, so a failed run leaves nothing finished-looking behind.
    ``with OutputCommit() as commit: write(commit.stage(path))``; an OSError is one line."""

    def __init__(self) -> None:
        #: (partial, final, "file" | "beside" | "into": see stage_folder)
        self._staged: list[tuple[Path, Path, str]] = []
        self._made_dirs: list[Path] = []

    def stage(self, final: str | Path) -> Path:
        """The path to write `final`'s content to (its folder is created)."""
        final = Path(final)
        if final.is_dir():
            raise OutputWriteError(f"cannot write {final}: it is a folder")
        self.make_dir(final.parent)
        partial = final.with_name(final.name + ".partial")
        remove_path(partial)  # left by a run that was killed
        self._staged.append((partial, final, "file"))
        return partial

    def stage_folder(self, final: str | Path, into: bool = False) -> Path:
        """A folder ``<final>.partial/`` to write into. Its files keep their final names:
        on commit they move next to `final` (a file with side files that refer to it by
        name; `final` itself last), or with `into` into the folder `final` (created)."""
        partial = self.stage(final)
        partial.mkdir()
        self._staged[-1] = (partial, Path(final), "into" if into else "beside")
        return partial

    def make_dir(self, folder: str | Path) -> Path:
        """Create `folder` (and parents); folders made here go again if the run fails."""
        folder = Path(folder)
        missing = [p for p in (folder, *folder.parents) if not p.exists()]
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputWriteError(
                f"cannot create output folder {folder}: {one_line_reason(exc)}") from exc
        self._made_dirs.extend(missing)
        return folder

    def commit(self) -> None:
        for partial, final, kind in self._staged:
            if kind == "file":
                os.replace(partial, final)
                continue
            folder = final if kind == "into" else final.parent
            folder.mkdir(parents=True, exist_ok=True)
            for file in sorted(partial.iterdir(), key=lambda p: p.name == final.name):
                os.replace(file, folder / file.name)
            partial.rmdir()
        self._staged.clear()

    def abort(self) -> None:
        for partial, _, _ in self._staged:
            remove_path(partial)
        self._staged.clear()
        for folder in self._made_dirs:  # deepest first; only while empty
            try:
                folder.rmdir()
            except OSError:
                break

    def __enter__(self) -> "OutputCommit":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self.commit()
                return
            except OSError as commit_exc:
                exc = commit_exc
        self.abort()
        if isinstance(exc, OSError) and not isinstance(exc, LingbotDepthError):
            where = getattr(exc, "filename", None) or "the output"
            raise OutputWriteError(f"cannot write {where}: {one_line_reason(exc)}") from exc


def remove_path(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()


def write_json(path: str | Path, data) -> Path:
    """`data` as strict JSON, through the commit path: NaN/inf (a metric with no pixels to
    score) -> null, containers recursively, other objects as text."""
    def safe(value):
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, dict):
            return {str(k): safe(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [safe(v) for v in value]
        if value is None or isinstance(value, (str, int, bool)):
            return value
        return str(value)
    with OutputCommit() as commit:
        commit.stage(path).write_text(json.dumps(safe(data), indent=2) + "\n")
    return Path(path)


def robust_range(*depths: np.ndarray) -> tuple[float, float]:
    """A display range (metres) shared by several depth maps: the 1st and 99th percentiles of
    their finite values, so a few spikes do not wash out the colours. (0, 1) when nothing is."""
    values = np.concatenate([d[np.isfinite(d)].ravel() for d in depths])
    if values.size == 0:
        return 0.0, 1.0
    low, high = np.percentile(values, [1.0, 99.0])
    if not high > low:
        high = low + 1e-3
    return float(low), float(high)


def colorize_depth(depth: np.ndarray, low: float, high: float) -> np.ndarray:
    """Depth (m) -> uint8 (H, W, 3) RGB with the turbo colormap over [low, high]; no data black."""
    scaled = (np.clip(depth, low, high) - low) * (255.0 / (high - low))
    finite = np.isfinite(scaled)
    indices = np.where(finite, scaled, 0).astype(np.uint8)
    rgb = cv2.cvtColor(cv2.applyColorMap(indices, cv2.COLORMAP_TURBO), cv2.COLOR_BGR2RGB)
    rgb[~finite] = _NO_DATA_RGB
    return rgb


def colorize_source(source: np.ndarray) -> np.ndarray:
    """SourceMask values -> uint8 (H, W, 3) RGB using SOURCE_COLORS."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for value, colour in SOURCE_COLORS.items():
        palette[int(value)] = colour
    return palette[source]


def label(panel: np.ndarray, text: str) -> np.ndarray:
    """Write `text` top-left, white with a dark outline so it reads on any colour."""
    scale = max(0.4, panel.shape[1] / 900)
    origin = (8, int(24 * scale) + 6)
    for colour, thickness in (((0, 0, 0), 3), ((255, 255, 255), 1)):
        cv2.putText(panel, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness,
                    cv2.LINE_AA)
    return panel


def side_by_side(rgb: np.ndarray, raw_depth: np.ndarray, completed: np.ndarray) -> np.ndarray:
    """One RGB image: colour | raw depth | completed depth, both depths on one turbo range."""
    low, high = robust_range(raw_depth, completed)
    span = f"{low:.2f}-{high:.2f} m"
    panels = (
        label(np.array(rgb, dtype=np.uint8), "rgb"),
        label(colorize_depth(raw_depth, low, high), f"raw depth {span}"),
        label(colorize_depth(completed, low, high), f"completed {span}"),
    )
    return np.hstack(panels)


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """Write uint8/uint16 (H, W) or uint8 (H, W, 3) RGB as PNG; raise OutputWriteError.
    The encoding is PNG whatever the name ends in (staged files end in .partial)."""
    path = Path(path)
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)  # cv2 writes BGR
    try:
        encoded, data = cv2.imencode(".png", image)
    except cv2.error as exc:
        raise OutputWriteError(f"cannot write {path}: {exc}") from exc
    if not encoded:
        raise OutputWriteError(f"cannot write {path}: PNG encoding failed")
    try:
        path.write_bytes(data.tobytes())
    except OSError as exc:
        raise OutputWriteError(f"cannot write {path}: {one_line_reason(exc)}") from exc
    return path


_PLY_VERTEX = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"),
                        ("red", "u1"), ("green", "u1"), ("blue", "u1")])


def write_cloud_ply(path: Path, depth_m: np.ndarray, K: np.ndarray, rgb: np.ndarray) -> None:
    """Binary little-endian PLY of the valid points of `depth_m` unprojected with K, coloured."""
    points = finite_points(organized_points(depth_m, K, rgb))
    vertices = np.empty(points.size, dtype=_PLY_VERTEX)
    for name in "xyz":
        vertices[name] = points[name]
    vertices["red"], vertices["green"], vertices["blue"] = unpack_rgb(points["rgb"]).T
    header = (f"ply\nformat binary_little_endian 1.0\nelement vertex {points.size}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertices.tobytes())


def write_completion(out_dir: str | Path, frame: RGBDFrame,
                     result: CompletionResult) -> dict[str, Path]:
    """Write every file of OUTPUT_FILES for one completed frame into `out_dir` (created);
    all of them appear, or (on an error) none."""
    out_dir = Path(out_dir)
    paths = {role: out_dir / name for role, name in OUTPUT_FILES.items()}
    with OutputCommit() as commit:
        commit.make_dir(out_dir)
        staged = {role: commit.stage(path) for role, path in paths.items()}
        write_png(staged["depth_png"], metres_to_16uc1(result.depth))
        with open(staged["depth_npy"], "wb") as f:  # a file object: np.save adds no .npy to a staged name
            np.save(f, np.asarray(result.depth, dtype=np.float32))
        write_png(staged["source_mask"], result.source)
        write_png(staged["source_preview"], colorize_source(result.source))
        write_png(staged["preview"], side_by_side(frame.rgb, frame.depth, result.depth))
        write_cloud_ply(staged["points"], result.depth, frame.K, frame.rgb)
    return paths
