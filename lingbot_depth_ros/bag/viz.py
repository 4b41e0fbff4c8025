"""`lingbot-depth bag viz`: colour | raw depth | completed depth | source mask per frame, as
an mp4 or PNGs, with one colour scale for the clip; completed depth comes from the bag's own
`bag process` output (matched by stamp), else from the chosen engine."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from ..core.codec import ImageFields, decode_fields
from ..core.depth import DepthRange, depth_to_metres
from ..core.io import (OutputCommit, OutputWriteError, colorize_depth, colorize_source, label,
                       robust_range, write_png)
from ..core.pairing import DropCounter
from ..core.stamped import stamp_ns
from ..engines.base import Engine
from ..core.config import NodeConfig
from .frames import FrameAssembler, PairStats, iter_frames
from .output_topics import DEPTH, SOURCE_MASK
from .progress import progress_bar
from .reader import BagReader, TopicError
from .topics import select_topics

log = logging.getLogger(__name__)
#: frames sampled (evenly over the clip) to fix the shared colour scale
_RANGE_SAMPLES = 60
#: FFmpeg's AV_LOG_QUIET (OpenCV passes it on when it opens its FFmpeg backend)
_FFMPEG_LOG_QUIET = "-8"
#: recorded output depth is shown as written: no range filtering
_UNBOUNDED = DepthRange(min_m=0.0, max_m=1e6)


def compose(rgb: np.ndarray, raw: np.ndarray, completed: np.ndarray, source: np.ndarray,
            low: float, high: float) -> np.ndarray:
    """One RGB row of four panels on the clip's depth range [low, high]."""
    span = f"{low:.2f}-{high:.2f} m"
    return np.hstack((
        label(np.array(rgb, dtype=np.uint8), "colour"),
        label(colorize_depth(raw, low, high), f"raw depth {span}"),
        label(colorize_depth(completed, low, high), f"completed {span}"),
        label(colorize_source(source), "source: measured / filled"),
    ))


class _Sink:
    """An mp4 file (cv2.VideoWriter, mp4v) or a folder of numbered PNGs, written through the
    commit path: staged in ``OUT.partial/`` and moved into place only when complete."""

    def __init__(self, out: Path, fps: float) -> None:
        self.out, self.fps, self.count = out, fps, 0
        self.video = out.suffix.lower() in (".mp4", ".m4v", ".mov")
        self._writer = None
        self._commit = OutputCommit()
        self._staging = self._commit.stage_folder(out, into=not self.video)

    def add(self, image: np.ndarray) -> None:
        if not self.video:
            write_png(self._staging / f"frame_{self.count:06d}.png", image)
        else:
            if self._writer is None:
                h, w = image.shape[:2]
                self._writer = cv2.VideoWriter(str(self._staging / self.out.name),
                                               cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                if not self._writer.isOpened():
                    raise OutputWriteError(f"cannot open video writer for {self.out} (mp4v)")
            self._writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.count += 1

    def __enter__(self) -> "_Sink":
        # A failed video write is found by _check_video and reported in one line; OpenCV's
        # and FFmpeg's own per-frame warnings would only repeat it on stderr.
        from cv2.utils import logging as cv_logging

        self._log_level = cv_logging.getLogLevel()
        cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", _FFMPEG_LOG_QUIET)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        from cv2.utils import logging as cv_logging

        try:
            self.close(failed=exc_type is not None)
        finally:
            cv_logging.setLogLevel(self._log_level)

    def close(self, failed: bool) -> None:
        """Finish and commit, or (`failed`) drop what was staged."""
        if self._writer is not None:
            self._writer.release()
        if failed:
            self._commit.abort()
            return
        try:
            if self._writer is not None:
                self._check_video()
            self._commit.commit()
        except BaseException:
            self._commit.abort()
            raise

    def _check_video(self) -> None:
        """VideoWriter only warns when a write fails (a full disk): read the file back."""
        path = self._staging / self.out.name
        capture = cv2.VideoCapture(str(path))
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
        capture.release()
        if frames != self.count:
            full = os.statvfs(path.parent).f_bavail == 0
            why = "no space left on the device" if full else f"{frames} of {self.count} frames readable"
            raise OutputWriteError(f"cannot write {self.out}: {why}")


def _clip_range(reader: BagReader, chosen, config: NodeConfig, limit: int | None) -> tuple[float, float]:
    total = min(reader.topics[chosen.color].count, limit or 1 << 62)
    every = max(1, total // _RANGE_SAMPLES)
    samples = []
    frames = iter_frames(reader, chosen, config, DropCounter(), PairStats(), FrameAssembler(config), limit)
    for n, item in enumerate(frames):
        if n % every == 0:
            samples.append(item.frame.depth[::4, ::4])
    return robust_range(*samples) if samples else (0.0, 1.0)


def _recorded_outputs(reader: BagReader) -> dict[int, tuple]:
    """stamp -> (depth topic message, mask message) of `bag process` output in the bag."""
    if DEPTH not in reader.topics or SOURCE_MASK not in reader.topics:
        return {}
    found: dict[int, dict] = {}
    for conn, _, raw in reader.messages([DEPTH, SOURCE_MASK]):
        msg = reader.deserialize(raw, conn.msgtype)
        found.setdefault(stamp_ns(msg.header), {})[conn.topic] = msg
    return {s: (m[DEPTH], m[SOURCE_MASK]) for s, m in found.items() if len(m) == 2}


def _decode_recorded(depth_msg, mask_msg) -> tuple[np.ndarray, np.ndarray]:
    """Recorded /depth_completed (32FC1 m or 16UC1 mm) and source mask -> metres, mask."""
    fields = ImageFields.from_msg(depth_msg)
    completed = depth_to_metres(decode_fields(fields), fields.encoding, 0.001, _UNBOUNDED)
    return completed, decode_fields(ImageFields.from_msg(mask_msg))


def render_bag(path: str | Path, out: str | Path, config: NodeConfig, engine: Engine | None,
               fps: float = 15.0, topics: dict | None = None, distro: str = "auto",
               limit: int | None = None, show_progress: bool = True) -> dict:
    """Write the side-by-side clip; uses recorded outputs when `engine` is None and the bag
    has them, else completes with `engine`. Returns {frames, out, source, range_m}."""
    out = Path(out)
    with BagReader(path, distro=distro) as reader:
        chosen = select_topics(reader, **(topics or {}))
        recorded = _recorded_outputs(reader) if engine is None else {}
        if engine is None and not recorded:
            raise TopicError(f"bag {path} holds no {DEPTH} and {SOURCE_MASK} output of "
                             "`bag process`; give --engine to complete it here")
        low, high = _clip_range(reader, chosen, config, limit)
        frames = iter_frames(reader, chosen, config, DropCounter(), PairStats(),
                             FrameAssembler(config), limit)
        total = min(reader.topics[chosen.color].count, limit or 1 << 62)
        with _Sink(out, fps) as sink:
            with progress_bar(total, enabled=show_progress, desc="rendering") as progress:
                for item in frames:
                    frame = item.frame
                    if engine is not None:
                        result = engine.complete(frame)
                        completed, source = result.depth, result.source
                    elif frame.stamp_ns in recorded:
                        completed, source = _decode_recorded(*recorded[frame.stamp_ns])
                    else:
                        continue  # a frame the processing run dropped
                    sink.add(compose(frame.rgb, frame.depth, completed, source, low, high))
                    progress.update(1)
    return {"frames": sink.count, "out": str(out), "range_m": [low, high],
            "source": engine.describe() if engine is not None else "recorded outputs"}
