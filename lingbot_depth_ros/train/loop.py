"""The training loop: masked depth modelling on the user's own RGB-D data (L1 on valid target
pixels), and supervised samples from synthetic frames (L1 on ground truth, weighted toward the
sensor's misses); DDP, gradient accumulation; rank 0 logs, checkpoints and evaluates."""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from tqdm import tqdm

from ..model import LingBotDepth, build_model, load_checkpoint, save_checkpoint, tiny_config
from .config import PATCH_SIZE, TrainConfig, TrainConfigError, to_dict
from .data import Split, build_split, make_loader
from .distributed import DistInfo, all_mean, barrier, init_distributed, shutdown, unwrap, wrap_model
from .logs import Board, CsvLog
from .optim import NOT_TRAINED_BY_DEPTH_LOSS, freeze, group_lrs, make_optimizer, make_scheduler
from .report import HeldoutEvaluator, flatten
from .state import FINAL_NAME, STATE_NAME, checkpoint_path, load_trainer_state, save_trainer_state

log = logging.getLogger(__name__)
#: loss and kept_tokens are means over the steps since the previous row
TRAIN_COLUMNS = ["step", "loss", "lr_encoder", "lr_decoder", "grad_norm", "kept_tokens",
                 "samples_per_s", "elapsed_s"]


@dataclass
class TrainOutcome:
    model: LingBotDepth  #: the trained (unwrapped) model
    step: int
    final_checkpoint: Path | None  #: None on ranks other than 0
    losses: list[float] = field(default_factory=list)  #: per optimiser step, this run
    report: dict | None = None  #: rank 0: before/after held-out metrics


def initial_model(cfg: TrainConfig) -> LingBotDepth:
    """Starting weights: a checkpoint, or a seeded random init of the configured network."""
    if cfg.model.checkpoint:
        return load_checkpoint(cfg.model.checkpoint)
    config = cfg.model.config
    if config == "tiny":
        # No mask head by default: an untrained one would veto random pixels at inference.
        config = tiny_config(**{"mask_head": False, **cfg.model.tiny_options})
    elif not isinstance(config, dict):
        raise TrainConfigError("model.config must be 'tiny' or a model_config mapping")
    if cfg.model.num_tokens_range:
        config = {**config, "num_tokens_range": list(cfg.model.num_tokens_range)}
    torch.manual_seed(cfg.seed)
    return build_model(config)


def weighted_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor,
                space: str) -> torch.Tensor:
    """Weighted mean |pred - target| (metres or log depth) over pixels with a valid target (>
    0): real samples weigh every valid pixel 1 (masked L1), synthetic ones weigh the sensor's
    misses more. where(), not a product alone: an overflowing prediction on an invalid pixel
    must not give NaN."""
    valid = (target > 0) & (weight > 0)
    if space == "log":
        diff = torch.log(pred.clamp_min(1e-6)) - torch.log(torch.where(valid, target, 1.0))
    else:
        diff = pred - target
    w = torch.where(valid, weight, torch.zeros_like(weight))
    total = torch.where(valid, diff.abs() * w, torch.zeros_like(diff)).sum()
    return total / w.sum().clamp_min(1e-6)


class Trainer:
    """Holds the model, optimiser and data of one run; `run()` trains to cfg.steps."""

    def __init__(self, cfg: TrainConfig, info: DistInfo, resume: bool) -> None:
        self.cfg, self.info = cfg, info
        self.out = Path(cfg.out_dir)
        if not resume and (self.out / STATE_NAME).exists():  # every rank stops, none hangs
            raise TrainConfigError(f"{self.out} already holds a run: pass --resume to "
                                   "continue it, or set another out_dir")
        if info.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
        barrier(info)
        self.split = self._prepare_data()
        model = initial_model(cfg).to(info.device).train()
        frozen = freeze(model, (*NOT_TRAINED_BY_DEPTH_LOSS, *cfg.model.freeze))
        log.info("frozen: %d parameter tensors (%s)", len(frozen), ", ".join(frozen[:4]))
        self.optimizer = make_optimizer(model, cfg.optim)
        self.scheduler = make_scheduler(self.optimizer, cfg.optim)
        self.step = 0
        self._checked_grads = False
        if resume:
            resumed = load_trainer_state(self.out, model, self.optimizer, self.scheduler)
            self.step = resumed.step
            changed = sorted(k for k, v in to_dict(cfg).items()
                             if k not in ("steps", "out_dir") and resumed.config.get(k) != v)
            if changed:  # allowed (e.g. a new lr), but the run no longer equals one long run
                log.warning("resuming with a changed configuration: %s", ", ".join(changed))
            log.info("resumed at step %d", self.step)
        elif info.is_main:
            save_trainer_state(self.out, 0, model, self.optimizer, self.scheduler,
                               to_dict(cfg), cfg.keep_checkpoints)
            (self.out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
        self.model = wrap_model(model, info)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16)
                         if cfg.bf16 and info.device.type == "cuda" else nullcontext())
        self.tokens = self._token_budget(model)
        self.evaluator = (HeldoutEvaluator(cfg, self.split.heldout, info.device,
                                           self.step if resume else None) if info.is_main else None)

    def _token_budget(self, model: LingBotDepth) -> int:
        """Tokens that make the network's grid exactly the crop's patches, so its resize is
        the identity and its own rule (a patch without valid depth is dropped) drops exactly
        the patches masking.py zeroed."""
        h, w = self.cfg.data.crop_size
        tokens = (h // PATCH_SIZE) * (w // PATCH_SIZE)
        if model.grid(h, w, num_tokens=tokens) != (h // PATCH_SIZE, w // PATCH_SIZE):
            raise TrainConfigError(f"crop_size {h}x{w} does not map onto a whole patch grid")
        return tokens

    def _prepare_data(self) -> Split:
        """Rank 0 reads (and for bags, extracts) the data first; the others then reuse it."""
        cache = Path(self.cfg.data.cache_dir or self.out / "bag_frames")
        split = build_split(self.cfg.data, cache) if self.info.is_main else None
        barrier(self.info)
        return split if split is not None else build_split(self.cfg.data, cache)

    def micro_step(self, batch: dict, sync: bool) -> float:
        dev = self.info.device
        ctx = self.model.no_sync() if self.info.enabled and not sync else nullcontext()
        with ctx:
            with self.autocast:
                out = self.model(batch["rgb"].to(dev, non_blocking=True),
                                 batch["depth"].to(dev, non_blocking=True),
                                 num_tokens=self.tokens, masking=self.cfg.depth_token_masking)
            loss = weighted_l1(out["depth"].float(), batch["target"].to(dev),
                               batch["weight"].to(dev), self.cfg.loss_space)
            (loss / self.cfg.accumulate).backward()
        return float(loss.detach()) / self.cfg.accumulate

    def optimiser_step(self, micro_batches: tuple[dict, ...]) -> tuple[float, float]:
        self.optimizer.zero_grad(set_to_none=True)
        loss = sum(self.micro_step(b, sync=i == len(micro_batches) - 1)
                   for i, b in enumerate(micro_batches))
        if not self._checked_grads:
            self._check_every_param_learns()
        clip = self.cfg.optim.grad_clip
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, clip if clip > 0 else float("inf"))
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return all_mean(loss, self.info), float(grad_norm)

    def _check_every_param_learns(self) -> None:
        """A trainable parameter without a gradient would stall DDP: name it and stop."""
        self._checked_grads = True  # once per process: DDP would fail on the next step
        idle = [n for n, p in unwrap(self.model).named_parameters() if p.requires_grad and p.grad is None]
        if idle:
            raise TrainConfigError(f"parameters the loss does not reach: {idle[:6]}; add their "
                                   "prefixes to model.freeze")

    def run(self) -> TrainOutcome:
        cfg, main = self.cfg, self.info.is_main
        before = self.evaluator.before(checkpoint_path(self.out, 0)) if main else None
        barrier(self.info)
        progress = StepLog(self.out, cfg, self.step, self.info.world, enabled=main)
        if main and self.step == 0:
            progress.board.scalars(0, flatten(before), "heldout/")
        loader = make_loader(self.split, cfg, self.step, self.info.rank, self.info.world)
        losses: list[float] = []
        # `accumulate` batches per optimiser step (an incomplete last group is left out)
        for micro_batches in zip(*[iter(loader)] * cfg.accumulate):
            kept = float(torch.cat([b["keep"] for b in micro_batches]).float().mean())
            loss, grad_norm = self.optimiser_step(micro_batches)
            losses.append(loss)
            if main:
                progress.add(self.step, loss, kept, grad_norm, group_lrs(self.optimizer))
                self._periodic(progress.board)
        progress.close()
        return self._finish(before, losses, progress.board)

    def _periodic(self, board: Board) -> None:
        cfg = self.cfg
        saved = self.step % cfg.save_every == 0 or (cfg.eval.every and self.step % cfg.eval.every == 0)
        if saved and self.step < cfg.steps:
            ckpt = save_trainer_state(self.out, self.step, unwrap(self.model), self.optimizer,
                                      self.scheduler, to_dict(cfg), cfg.keep_checkpoints)
            if cfg.eval.every and self.step % cfg.eval.every == 0:
                board.scalars(self.step, self.evaluator.during(self.step, ckpt), "heldout/")

    def _finish(self, before: dict | None, losses: list[float], board: Board | None) -> TrainOutcome:
        model = unwrap(self.model)
        final = report = None
        if self.info.is_main:
            save_trainer_state(self.out, self.step, model, self.optimizer, self.scheduler,
                               to_dict(self.cfg), self.cfg.keep_checkpoints)
            final = save_checkpoint(model, self.out / FINAL_NAME)
            report = self.evaluator.after(final, before, self.step, self.split)
            board.scalars(self.step, report["summary"]["after"], "heldout/")
            board.close()
        barrier(self.info)
        return TrainOutcome(model=model.eval(), step=self.step, final_checkpoint=final,
                            losses=losses, report=report)


class StepLog:
    """Progress bar, train_log.csv and TensorBoard rows (means since the previous row)."""

    def __init__(self, out: Path, cfg: TrainConfig, step: int, world: int, enabled: bool) -> None:
        self.cfg, self.enabled = cfg, enabled
        self.global_batch = cfg.batch_size * cfg.accumulate * world
        resumed = step or None  # on resume, rows and events past `step` are dropped
        self.csv = CsvLog(out / "train_log.csv", TRAIN_COLUMNS, resumed) if enabled else None
        self.board = Board(out / "tensorboard", purge_step=resumed) if enabled else None
        self.bar = tqdm(total=cfg.steps, initial=step, disable=not enabled, desc="train", unit="step")
        self.start = self.t_last = time.perf_counter()
        self.losses: list[float] = []
        self.kept: list[float] = []

    def add(self, step: int, loss: float, kept: float, grad_norm: float, lrs: dict) -> None:
        self.losses.append(loss)
        self.kept.append(kept)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{loss:.4f}")
        if step % self.cfg.log_every and step != self.cfg.steps:
            return
        now, n = time.perf_counter(), len(self.losses)
        row = {"step": step, "loss": sum(self.losses) / n, "grad_norm": grad_norm,
               "kept_tokens": sum(self.kept) / n,
               "samples_per_s": self.global_batch * n / max(now - self.t_last, 1e-9),
               "elapsed_s": now - self.start, **lrs}
        self.csv.write(row)
        self.board.scalars(step, row, "train/")
        self.t_last, self.losses, self.kept = now, [], []

    def close(self) -> None:
        self.bar.close()


def train(cfg: TrainConfig, resume: bool = False) -> TrainOutcome:
    """Train as configured (single process, or one rank of a torchrun job)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    info = init_distributed(cfg.device)
    try:
        return Trainer(cfg, info, resume).run()
    finally:
        shutdown(info)
