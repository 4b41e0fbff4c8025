"""`lingbot-depth bag eval`: the block-wise protocol on every paired frame of a bag, plus
temporal stability (frame-to-frame change of filled pixels beside the sensor's own; details:
docs/bags.md)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..core.errors import LingbotDepthError
from ..core.frame import RGBDFrame, SourceMask
from ..core.metrics import mean_metrics
from ..core.pairing import DropCounter
from ..core.protocol import capture_seed, corrupt_depth, get_level, score_completion
from ..engines.base import Engine
from ..core.config import NodeConfig
from .frames import FrameAssembler, PairStats, iter_frames
from .progress import progress_bar
from .reader import BagReader
from .topics import select_topics

log = logging.getLogger(__name__)
PROTOCOLS = ("blocks",)


def frame_change(depth: np.ndarray, previous: np.ndarray, where: np.ndarray) -> tuple[float, int]:
    """(mean |depth - previous| over `where`, pixel count); NaN and 0 when `where` is empty."""
    n = int(np.count_nonzero(where))
    if n == 0:
        return float("nan"), 0
    return float(np.mean(np.abs(depth[where].astype(np.float64) - previous[where]))), n


@dataclass
class _Temporal:
    """Running frame-to-frame change on a set of pixels."""

    changes: list = field(default_factory=list)
    pixels: int = 0
    _previous: tuple | None = None

    def add(self, depth: np.ndarray, selected: np.ndarray) -> None:
        if self._previous is not None:
            prev_depth, prev_selected = self._previous
            change, n = frame_change(depth, prev_depth, selected & prev_selected)
            if n:
                self.changes.append(change)
                self.pixels += n
        self._previous = (depth, selected)

    def summary(self) -> dict:
        values = np.array(self.changes, dtype=np.float64)
        return {"mean_abs_change_m": float(values.mean()) if values.size else float("nan"),
                "median_abs_change_m": float(np.median(values)) if values.size else float("nan"),
                "frame_pairs": int(values.size), "pixels": int(self.pixels)}


@dataclass
class _EngineScores:
    engine: Engine
    masked: list = field(default_factory=list)
    all: list = field(default_factory=list)
    ms: list = field(default_factory=list)
    failures: DropCounter = field(default_factory=DropCounter)
    temporal: _Temporal = field(default_factory=_Temporal)

    def _complete(self, frame: RGBDFrame):
        """The engine's result, None (counted by reason) when it refuses the frame."""
        try:
            return self.engine.complete(frame)
        except LingbotDepthError as exc:
            self.failures.add(exc.reason)
            return None

    def score(self, corrupted: RGBDFrame, truth: np.ndarray, dropped: np.ndarray) -> None:
        t0 = time.perf_counter()
        if (result := self._complete(corrupted)) is None:
            return
        self.ms.append((time.perf_counter() - t0) * 1e3)
        scores = score_completion(result.depth, truth, dropped)
        self.masked.append(scores["masked"])
        self.all.append(scores["all"])

    def track(self, frame: RGBDFrame) -> None:
        if (result := self._complete(frame)) is not None:
            self.temporal.add(result.depth, result.source == SourceMask.FILLED)

    def report(self) -> dict:
        return {"engine": self.engine.describe(), "frames": len(self.masked),
                "failed": self.failures.snapshot(), "masked": mean_metrics(self.masked),
                "all": mean_metrics(self.all), "temporal": self.temporal.summary(),
                "ms_per_frame_median": float(np.median(self.ms)) if self.ms else float("nan")}


def evaluate_bag(path: str | Path, engines: dict[str, Engine], config: NodeConfig,
                 protocol: str = "blocks", level: str = "medium", seed: int = 0,
                 temporal: bool = True, topics: dict | None = None, distro: str = "auto",
                 limit: int | None = None, show_progress: bool = True) -> dict:
    """Scores of every engine on every paired frame; the dict `--json` writes."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got '{protocol}'")
    level_def = get_level(level)
    scores = {name: _EngineScores(engine) for name, engine in engines.items()}
    sensor = _Temporal()
    drops, stats = DropCounter(), PairStats()
    started = time.perf_counter()
    with BagReader(path, distro=distro) as reader:
        chosen = select_topics(reader, **(topics or {}))
        expected = min(reader.topics[chosen.color].count, limit or 1 << 62)
        assembler = FrameAssembler(config)
        frames = iter_frames(reader, chosen, config, drops, stats, assembler, limit)
        with progress_bar(expected, enabled=show_progress, desc="evaluating") as progress:
            for item in frames:
                _score_frame(item.frame, scores, level_def, seed, temporal, sensor)
                progress.update(1)
    frames_done = max((len(s.masked) for s in scores.values()), default=0)
    return {
        "bag": str(path), "protocol": protocol, "level": level, "seed": seed,
        "topics": {"color": chosen.color, "depth": chosen.depth, "camera_info": chosen.info},
        "frames_in": dict(stats.received), "pairs": stats.pairs, "frames_scored": frames_done,
        "dropped": drops.snapshot(), "wall_s": time.perf_counter() - started,
        "sensor_temporal": sensor.summary() if temporal else None,
        "engines": {name: s.report() for name, s in scores.items()},
    }


def _score_frame(frame: RGBDFrame, scores: dict[str, _EngineScores], level, seed: int,
                 temporal: bool, sensor: _Temporal) -> None:
    truth = frame.depth
    corruption = corrupt_depth(truth, level, capture_seed(seed, str(frame.stamp_ns)))
    corrupted = RGBDFrame(rgb=frame.rgb, depth=corruption.depth, K=frame.K,
                          stamp_ns=frame.stamp_ns, frame_id=frame.frame_id)
    for engine_scores in scores.values():
        engine_scores.score(corrupted, truth, corruption.dropped)
        if temporal:
            engine_scores.track(frame)
    if temporal:
        sensor.add(truth, np.isfinite(truth))


def format_report(report: dict) -> list[str]:
    """A plain-text table of the main numbers, one engine per row."""
    head = (f"{'engine':<14}{'frames':>7}{'abs_rel':>9}{'rmse_m':>9}{'delta1':>8}"
            f"{'all_rmse':>9}{'flicker_mm':>11}{'ms':>8}")
    lines = [f"bag {report['bag']}: {report['frames_scored']} frames, protocol "
             f"{report['protocol']} level {report['level']} seed {report['seed']}", head]
    for name, r in report["engines"].items():
        flicker = r["temporal"]["mean_abs_change_m"] * 1e3
        lines.append(f"{name:<14}{r['frames']:>7}{r['masked'].get('abs_rel', float('nan')):>9.4f}"
                     f"{r['masked'].get('rmse', float('nan')):>9.4f}"
                     f"{r['masked'].get('delta1', float('nan')):>8.3f}"
                     f"{r['all'].get('rmse', float('nan')):>9.4f}{flicker:>11.2f}"
                     f"{r['ms_per_frame_median']:>8.1f}")
    if report.get("sensor_temporal"):
        lines.append(f"sensor frame-to-frame change on measured pixels: "
                     f"{report['sensor_temporal']['mean_abs_change_m'] * 1e3:.2f} mm")
    if report["dropped"]:
        lines.append("dropped images: " + ", ".join(f"{k} {v}" for k, v in report["dropped"].items()))
    return lines
