"""Training data: capture folders and rosbag2 recordings, mixed by weight, split for held-out;
samples are a pure function of (seed, global sample index), so resume is exact
(docs/training.md)."""

from __future__ import annotations

import logging
import zlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..core.captures import find_captures, is_capture, load_capture
from ..core.depth import DepthRange
from ..core.frame import RGBDFrame
from .augment import View, augment
from .config import DataConfig, HoldoutConfig, SourceConfig, TrainConfig, TrainConfigError
from .masking import mask_sample
from .synthetic import load_truth, synthetic_sample

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameRef:
    """One frame on disk: a capture folder, and the source it belongs to."""

    source: str
    name: str  #: the capture folder's name (a frame index for extracted bag frames)
    folder: Path
    depth_scale: float
    synthetic: bool = False  #: a simulate folder: ground truth beside the sensor depth
    hole_weight: float = 1.0  #: synthetic: loss weight of the pixels the sensor missed

    @property
    def key(self) -> str:
        return f"{self.source}/{self.name}"

    def load(self, data: DataConfig) -> RGBDFrame:
        return load_capture(self.folder, self.depth_scale, DepthRange(data.min_depth_m, data.max_depth_m))


def source_frames(source: SourceConfig, data: DataConfig, cache_dir: Path) -> list[FrameRef]:
    """All frames of one source (extracting a bag into capture folders the first time)."""
    if source.kind == "rosbag2":
        from .bag_frames import extract_bag  # rosbags imports only when a bag is used

        # every_n and max_frames apply while extracting, so skipped frames cost no disk.
        folder = extract_bag(source, cache_dir / source.name, data.min_depth_m, data.max_depth_m)
        folders = sorted(p for p in folder.iterdir() if is_capture(p))  # may be none
        return [FrameRef(source.name, f.name, f, 0.001) for f in folders]  # written in mm
    folders = find_captures(source.path)[::source.every_n]
    if source.max_frames:
        folders = folders[:source.max_frames]
    synthetic = source.kind == "synthetic"
    return [FrameRef(source.name, f.name, f, source.depth_scale, synthetic,
                     source.hole_weight if synthetic else 1.0) for f in folders]


def is_held_out(ref: FrameRef, holdout: HoldoutConfig) -> bool:
    """Named frames when a list is given, else a stable hash of the key below `fraction`."""
    if holdout.frames:
        return ref.key in holdout.frames or ref.name in holdout.frames
    return zlib.crc32(f"{holdout.seed}:{ref.key}".encode()) / 2**32 < holdout.fraction


@dataclass
class Split:
    train: list[list[FrameRef]]  #: per source (sources left without frames are dropped)
    weights: list[float]  #: sampling probability per entry of `train`
    heldout: list[FrameRef]


def build_split(data: DataConfig, cache_dir: Path) -> Split:
    """Read every source and split it; both sides must be non-empty."""
    if not data.sources:
        raise TrainConfigError("data.sources is empty: name at least one capture folder or bag")
    names = [s.name for s in data.sources]
    if len(set(names)) != len(names):
        raise TrainConfigError(f"source names must be unique, got {names} (set `name:`)")
    train, weights, heldout = [], [], []
    for source in data.sources:
        frames = source_frames(source, data, cache_dir)
        kept = [f for f in frames if not is_held_out(f, data.holdout)]
        heldout += [f for f in frames if is_held_out(f, data.holdout)]
        if kept:
            train.append(kept)
            weights.append(source.weight)
        log.info("source %s: %d frames, %d for training", source.name, len(frames), len(kept))
    unknown = [n for n in data.holdout.frames
               if not any(n in (f.key, f.name) for f in heldout)]
    if unknown:
        raise TrainConfigError(f"holdout.frames names frames that no source has: {unknown}")
    if not train:
        raise TrainConfigError("every frame is held out: nothing left to train on")
    if not heldout:
        raise TrainConfigError("the held-out split is empty: list holdout.frames or raise holdout.fraction")
    total = sum(weights)
    return Split(train, [w / total for w in weights], heldout)


class MaskedSamples(torch.utils.data.Dataset):
    """Map-style dataset over global sample indices (see the module doc)."""

    def __init__(self, split: Split, cfg: TrainConfig) -> None:
        self.train, self.weights = split.train, np.asarray(split.weights)
        self.cfg = cfg
        self._cache: OrderedDict[FrameRef, RGBDFrame] = OrderedDict()

    def frame(self, ref: FrameRef) -> RGBDFrame:
        """Decoded frame, from a small per-process LRU cache."""
        if ref in self._cache:
            self._cache.move_to_end(ref)
            return self._cache[ref]
        frame = ref.load(self.cfg.data)
        self._cache[ref] = frame
        if len(self._cache) > max(1, self.cfg.data.frame_cache):
            self._cache.popitem(last=False)
        return frame

    def pick(self, rng: np.random.Generator) -> FrameRef:
        """A source by weight, then one of its frames uniformly."""
        frames = self.train[int(rng.choice(len(self.train), p=self.weights))]
        return frames[int(rng.integers(len(frames)))]

    def truth(self, ref: FrameRef) -> np.ndarray:
        """Ground-truth depth of a synthetic frame, cached beside the frame."""
        key = ("truth", ref)
        if key not in self._cache:
            self._cache[key] = load_truth(ref.folder, self.cfg.data)[0]
        return self._cache[key]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.cfg.seed, int(index)])
        ref = self.pick(rng)
        frame = self.frame(ref)
        if ref.synthetic:
            return synthetic_sample(frame, self.truth(ref), ref.hole_weight, self.cfg, rng)
        view = augment(View(frame.rgb, frame.depth, frame.K), self.cfg.data.crop_size,
                       self.cfg.augment, rng)
        masked = mask_sample(view.depth, self.cfg.masking, rng)
        target = np.nan_to_num(view.depth, nan=0.0)
        return {
            "rgb": torch.from_numpy(view.rgb).permute(2, 0, 1).float().div_(255.0),
            "depth": torch.from_numpy(masked.input_depth),
            "keep": torch.from_numpy(masked.keep),
            "target": torch.from_numpy(target),
            "weight": torch.from_numpy((target > 0).astype(np.float32)),
            "K": torch.from_numpy(view.K),
        }


class StepBatches(torch.utils.data.Sampler):
    """Index lists for one rank, one per micro-batch, from `start_step` to `steps`; global
    index of (step, micro-step m, rank r, item b): ((step * accumulate + m) * world + r) * batch + b."""

    def __init__(self, start_step: int, steps: int, batch: int, accumulate: int,
                 rank: int = 0, world: int = 1) -> None:
        self.start_step, self.steps = start_step, steps
        self.batch, self.accumulate, self.rank, self.world = batch, accumulate, rank, world

    def __iter__(self):
        for step in range(self.start_step, self.steps):
            for m in range(self.accumulate):
                base = ((step * self.accumulate + m) * self.world + self.rank) * self.batch
                yield list(range(base, base + self.batch))

    def __len__(self) -> int:
        return max(0, self.steps - self.start_step) * self.accumulate


def make_loader(split: Split, cfg: TrainConfig, start_step: int, rank: int = 0,
                world: int = 1) -> torch.utils.data.DataLoader:
    sampler = StepBatches(start_step, cfg.steps, cfg.batch_size, cfg.accumulate, rank, world)
    return torch.utils.data.DataLoader(
        MaskedSamples(split, cfg), batch_sampler=sampler, num_workers=cfg.data.num_workers,
        persistent_workers=False, pin_memory=torch.cuda.is_available())
