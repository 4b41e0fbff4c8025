"""Extract a rosbag2 recording into capture folders once, with the bag tools' own topics,
pairing and checks, so training reads it like captures (docs/training.md)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np

from ..bag.frames import FrameAssembler, PairStats, iter_frames
from ..bag.reader import BagReader
from ..bag.topics import select_topics
from ..core.captures import DEPTH_NAME, INTRINSICS_NAME
from ..core.depth import metres_to_16uc1
from ..core.pairing import DropCounter
from ..core.config import NodeConfig
from .config import SourceConfig

log = logging.getLogger(__name__)
MARKER = ".complete"


def extraction_params(source: SourceConfig, min_depth_m: float, max_depth_m: float) -> dict:
    return {"bag": str(Path(source.path).resolve()), "rgb_topic": source.rgb_topic,
            "depth_topic": source.depth_topic, "info_topic": source.info_topic,
            "every_n": source.every_n, "max_frames": source.max_frames,
            "depth_scale": source.depth_scale, "min_depth_m": min_depth_m, "max_depth_m": max_depth_m}


def extract_bag(source: SourceConfig, out: Path, min_depth_m: float, max_depth_m: float) -> Path:
    """Write every `every_n`-th valid frame pair of the bag as out/<index>/; return `out`."""
    params = extraction_params(source, min_depth_m, max_depth_m)
    marker = out / MARKER
    if marker.is_file() and json.loads(marker.read_text()).get("params") == params:
        return out
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    config = NodeConfig.from_values({"depth_scale": source.depth_scale,
                                     "min_depth": min_depth_m, "max_depth": max_depth_m})
    drops, stats = DropCounter(), PairStats()
    written = 0
    with BagReader(source.path) as reader:
        topics = select_topics(reader, source.rgb_topic or None, source.depth_topic or None,
                               source.info_topic or None)
        frames = iter_frames(reader, topics, config, drops, stats, FrameAssembler(config))
        for n, item in enumerate(frames):
            if n % source.every_n:
                continue
            write_capture(out / f"{written:06d}", item.frame.rgb, item.frame.depth, item.frame.K)
            written += 1
            if source.max_frames and written >= source.max_frames:
                break
    summary = {"params": params, "frames": written, "pairs": stats.pairs,
               "dropped": drops.snapshot(), "topics": topics.names()}
    log.info("extracted %d frames from %s (dropped: %s)", written, source.path, summary["dropped"])
    marker.write_text(json.dumps(summary, indent=1))
    return out


def write_capture(folder: Path, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray) -> None:
    """One capture folder in the examples layout (rgb.png, raw_depth.png mm, intrinsics.txt)."""
    folder.mkdir()
    cv2.imwrite(str(folder / "rgb.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(folder / DEPTH_NAME), metres_to_16uc1(depth_m))
    np.savetxt(folder / INTRINSICS_NAME, K, fmt="%.9f")
