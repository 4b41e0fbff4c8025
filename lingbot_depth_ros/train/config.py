"""Training configuration: one YAML file, parsed into dataclasses. Every default is the
LingBot-Depth paper's value (docs/training.md); unknown keys are an error, so a typo cannot
silently fall back to a default."""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..core.errors import error_class
from ..core.protocol import LEVEL_NAMES
from ..engines.registry import CLASSICAL_ENGINES

#: side of a ViT patch (DINOv2 /14): crops must be whole patches
PATCH_SIZE = 14


TrainConfigError = error_class("TrainConfigError", "bad_train_config", ValueError,
                               "The training configuration is missing, malformed or inconsistent.")


@dataclass
class SourceConfig:
    """One data source: a folder of capture folders, a rosbag2 recording, or the output of
    `lingbot-depth simulate` (capture folders with ground truth)."""

    path: str
    kind: str = "captures"  #: "captures" (examples layout), "rosbag2" or "synthetic"
    name: str = ""  #: defaults to the path's last component
    weight: float = 1.0  #: sampling weight relative to the other sources
    depth_scale: float = 0.001  #: metres per raw depth unit (16-bit PNGs, 16UC1 topics)
    #: rosbag2 only: topics (empty = guess from the bag) and frame subsampling
    rgb_topic: str = ""
    depth_topic: str = ""
    info_topic: str = ""
    every_n: int = 1
    max_frames: int = 0  #: 0 = all
    #: synthetic only: loss weight of the pixels the simulated sensor missed or got more than
    #: 10% wrong, against 1 for the pixels it measured (the loss is on ground truth everywhere)
    hole_weight: float = 4.0

    def __post_init__(self) -> None:
        if self.kind not in ("captures", "rosbag2", "synthetic"):
            raise TrainConfigError(f"source kind must be 'captures', 'rosbag2' or 'synthetic', "
                                   f"got '{self.kind}'")
        if not self.hole_weight > 0:
            raise TrainConfigError(f"source {self.path}: hole_weight must be positive, got {self.hole_weight}")
        if not self.weight > 0:
            raise TrainConfigError(f"source {self.path}: weight must be positive, got {self.weight}")
        if self.every_n < 1 or self.max_frames < 0:
            raise TrainConfigError(f"source {self.path}: every_n >= 1 and max_frames >= 0 required")
        self.name = self.name or Path(self.path).name.removesuffix(".mcap").removesuffix(".db3")


@dataclass
class HoldoutConfig:
    """Which frames are held out for evaluation: named ``frames``, else a stable hash puts a
    ``fraction`` of every source there (same split on every machine)."""

    frames: list[str] = field(default_factory=list)
    fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.fraction < 1.0:
            raise TrainConfigError(f"holdout fraction must be in [0, 1), got {self.fraction}")


@dataclass
class DataConfig:
    sources: list[SourceConfig] = field(default_factory=list)
    holdout: HoldoutConfig = field(default_factory=HoldoutConfig)
    crop_size: tuple[int, int] = (420, 560)  #: (H, W) of a training sample, whole patches
    min_depth_m: float = 0.1  #: sensor readings outside [min, max] are holes
    max_depth_m: float = 10.0
    cache_dir: str = ""  #: where rosbag frames are extracted; default <out_dir>/bag_frames
    frame_cache: int = 64  #: decoded frames kept in memory per worker
    num_workers: int = 0  #: DataLoader worker processes

    def __post_init__(self) -> None:
        h, w = self.crop_size
        if h % PATCH_SIZE or w % PATCH_SIZE or h <= 0 or w <= 0:
            raise TrainConfigError(f"crop_size {self.crop_size} must be positive multiples of {PATCH_SIZE}")
        if not 0 <= self.min_depth_m < self.max_depth_m:
            raise TrainConfigError("need 0 <= min_depth_m < max_depth_m")


@dataclass
class AugmentConfig:
    """RGB augmentation (paper: random resized crop, flip, colour jitter, JPEG, motion blur,
    shot noise). Geometric steps move depth and K along; photometric ones touch RGB only."""

    crop_scale: tuple[float, float] = (0.35, 1.0)  #: crop area as a share of the frame
    crop_ratio: tuple[float, float] = (0.75, 1.3333)  #: crop aspect relative to the output's
    hflip_prob: float = 0.5
    jitter_prob: float = 0.8
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02  #: share of a full hue turn
    jpeg_prob: float = 0.3
    jpeg_quality: tuple[int, int] = (40, 95)
    blur_prob: float = 0.2
    blur_length: tuple[int, int] = (3, 9)  #: motion blur kernel length in pixels
    shot_noise_prob: float = 0.2
    shot_noise_photons: tuple[float, float] = (20.0, 300.0)  #: photons at full white

    def __post_init__(self) -> None:
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise TrainConfigError(f"crop_scale must satisfy 0 < lo <= hi <= 1, got {self.crop_scale}")
        for name in ("hflip_prob", "jitter_prob", "jpeg_prob", "blur_prob", "shot_noise_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise TrainConfigError(f"augment.{name} must be a probability")


@dataclass
class MaskingConfig:
    """Masked depth modelling (paper): holes are the mask, topped up with random patches."""

    mixed_mask_prob: float = 0.75  #: chance a partly valid patch is masked
    ratio_range: tuple[float, float] = (0.6, 0.9)  #: target masked share, drawn uniformly
    depth_noise_std: float = 0.01  #: relative Gaussian noise on visible input depth

    def __post_init__(self) -> None:
        lo, hi = self.ratio_range
        if not 0 <= lo <= hi <= 1 or not 0 <= self.mixed_mask_prob <= 1:
            raise TrainConfigError("masking ratio_range and mixed_mask_prob must lie in [0, 1]")
        if not 0 <= self.depth_noise_std < 0.3:
            raise TrainConfigError("depth_noise_std must be in [0, 0.3) (noise is clipped at 3 sigma)")


@dataclass
class OptimConfig:
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.05
    decay_norm_and_bias: bool = False  #: False: biases, norms, tokens, pos_embed get no decay
    encoder_lr: float = 1e-5
    decoder_lr: float = 1e-4
    encoder_warmup_iters: int = 2000
    decoder_warmup_iters: int = 0
    halve_every: int = 25000  #: both learning rates halve every this many iterations
    grad_clip: float = 1.0  #: max global gradient norm; 0 = off


@dataclass
class ModelConfig:
    """Where the starting weights come from: a checkpoint (official or ours), else random
    weights of ``config`` ("tiny" = the package's small test network, or a model_config dict)."""

    checkpoint: str = ""
    config: typing.Any = "tiny"
    tiny_options: dict = field(default_factory=dict)  #: keyword arguments of tiny_config()
    #: random init only: the model's token budget [level 0, level 9] (inference resolution)
    num_tokens_range: typing.Optional[tuple[int, int]] = None
    freeze: list[str] = field(default_factory=list)  #: parameter-name prefixes not trained

    def __post_init__(self) -> None:
        if self.checkpoint and (self.num_tokens_range or self.tiny_options):
            raise TrainConfigError("model.num_tokens_range and model.tiny_options only apply to a "
                                   "random init; a checkpoint brings its own model_config")


@dataclass
class EvalConfig:
    """Held-out evaluation on the block-wise protocol (core/protocol.py)."""

    levels: list[str] = field(default_factory=lambda: ["easy", "medium", "hard", "extreme"])
    seeds: list[int] = field(default_factory=lambda: [0])
    engine_options: dict = field(default_factory=dict)  #: extra create_engine('torch') options
    baselines: list[str] = field(default_factory=list)  #: classical engines run alongside
    every: int = 0  #: evaluate every this many steps during training; 0 = only before/after

    def __post_init__(self) -> None:
        bad = [lvl for lvl in self.levels if lvl not in LEVEL_NAMES]
        if bad or not self.levels or not self.seeds:
            raise TrainConfigError(f"eval.levels must be non-empty, from {LEVEL_NAMES} (got {self.levels}); "
                                   "eval.seeds non-empty")
        if "checkpoint" in self.engine_options:
            raise TrainConfigError("eval.engine_options cannot set checkpoint (the run's own are used)")
        if any(b not in CLASSICAL_ENGINES for b in self.baselines):
            raise TrainConfigError(f"eval.baselines must be from {CLASSICAL_ENGINES}, got {self.baselines}")


@dataclass
class TrainConfig:
    out_dir: str = "runs/train"
    seed: int = 0
    steps: int = 250000
    batch_size: int = 4  #: per process and micro-step
    accumulate: int = 1  #: micro-steps per optimiser step
    device: str = "auto"  #: auto | cpu | cuda
    bf16: bool = True  #: bf16 autocast (CUDA only; ignored on CPU)
    loss_space: str = "metric"  #: L1 on metres (paper) or on log depth ("log")
    #: how masked depth tokens leave attention: "drop" (the reference: shorter sequences,
    #: one pass per sample) or "key_mask" (batched, same numbers, more compute per token)
    depth_token_masking: str = "drop"
    log_every: int = 10
    save_every: int = 1000
    keep_checkpoints: int = 3  #: step checkpoints kept on disk (the final one always stays)
    threads: int = 0  #: torch CPU threads per process; 0 = torch default
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    masking: MaskingConfig = field(default_factory=MaskingConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.accumulate < 1:
            raise TrainConfigError("steps, batch_size and accumulate must be >= 1")
        if self.loss_space not in ("metric", "log"):
            raise TrainConfigError(f"loss_space must be 'metric' or 'log', got '{self.loss_space}'")
        if self.depth_token_masking not in ("drop", "key_mask"):
            raise TrainConfigError("depth_token_masking must be 'drop' or 'key_mask'")
        if self.device not in ("auto", "cpu", "cuda"):
            raise TrainConfigError(f"device must be auto, cpu or cuda, got '{self.device}'")


def _convert(value, annotation, where: str):
    """Turn a YAML value into the annotated type (nested dataclasses, lists, tuples)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (annotation,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _convert(value, annotation, where)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise TrainConfigError(f"{where} must be a list, got {value!r}")
        (item,) = typing.get_args(annotation)
        return [_convert(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple:
        items = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            raise TrainConfigError(f"{where} must be a list of {len(items)} values, got {value!r}")
        return tuple(_convert(v, t, where) for v, t in zip(value, items))
    if annotation is float:
        # PyYAML reads "1e-4" (no dot) as a string: accept numeric strings, nothing else.
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise TrainConfigError(f"{where} must be a number, got {value!r}") from None
    if annotation in (int, str, bool) and type(value) is not annotation:
        raise TrainConfigError(f"{where} must be {annotation.__name__}, got {value!r}")
    return value


def from_dict(cls, data, where: str = "config"):
    """Build dataclass `cls` from a mapping; unknown keys and wrong types are errors."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TrainConfigError(f"{where} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise TrainConfigError(f"unknown key(s) in {where}: {', '.join(unknown)} "
                               f"(known: {', '.join(sorted(names))})")
    kwargs = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise TrainConfigError(f"{where}: {exc}") from exc


def to_dict(cfg) -> dict:
    """Plain-data form (lists, dicts) for YAML/JSON dumps next to the run (a JSON round trip
    turns tuples into lists, which yaml.safe_dump needs)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def load_config(path: str | Path) -> TrainConfig:
    """Read a training YAML. Relative data/checkpoint/out paths resolve against its folder."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise TrainConfigError(f"cannot read training config {path}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise TrainConfigError(f"{path} is not valid YAML: {exc}") from exc
    cfg = from_dict(TrainConfig, data, str(path))
    return resolve_paths(cfg, path.parent)


def resolve_paths(cfg: TrainConfig, base: Path) -> TrainConfig:
    def resolve(p: str) -> str:
        return str((base / p).resolve()) if p and not Path(p).is_absolute() else p
    cfg.out_dir = resolve(cfg.out_dir)
    cfg.model.checkpoint = resolve(cfg.model.checkpoint)
    cfg.data.cache_dir = resolve(cfg.data.cache_dir)
    for source in cfg.data.sources:
        source.path = resolve(source.path)
    return cfg

