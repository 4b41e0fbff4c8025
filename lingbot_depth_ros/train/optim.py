"""Optimiser and learning-rate schedule of the paper, every number from the config: encoder
and decoder groups, no decay on norms and biases by default (docs/training.md)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from .config import OptimConfig, TrainConfigError

log = logging.getLogger(__name__)

#: parameters the depth L1 loss never reaches: the mask head (validity is not a training
#: target here: sensor holes are exactly what completion must fill) and the MAE mask token
NOT_TRAINED_BY_DEPTH_LOSS = ("mask_head.", "encoder.backbone.mask_token")
_NO_DECAY_NAMES = ("cls_token", "pos_embed", "mask_token", "gamma")


def freeze(model: nn.Module, prefixes: list[str] | tuple[str, ...]) -> list[str]:
    """Stop training parameters whose names start with any prefix; return their names."""
    frozen = [n for n, p in model.named_parameters() if n.startswith(tuple(prefixes))]
    for name, param in model.named_parameters():
        if name in frozen:
            param.requires_grad_(False)
    return frozen


def param_groups(model: nn.Module, cfg: OptimConfig) -> list[dict]:
    """Up to four groups: {encoder, decoder} x {decay, no decay}, each tagged with `part`."""
    buckets: dict[tuple[str, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        decay = cfg.decay_norm_and_bias or (param.ndim >= 2 and not any(n in name for n in _NO_DECAY_NAMES))
        buckets.setdefault(("encoder" if name.startswith("encoder.") else "decoder", decay), []).append(param)
    if not buckets:
        raise TrainConfigError("no trainable parameters: model.freeze covers the whole model")
    return [{"params": params, "part": part, "name": f"{part}{'' if decay else '_no_decay'}",
             "lr": cfg.encoder_lr if part == "encoder" else cfg.decoder_lr,
             "weight_decay": cfg.weight_decay if decay else 0.0}
            for (part, decay), params in sorted(buckets.items())]


def make_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.AdamW:
    groups = param_groups(model, cfg)
    for g in groups:
        log.info("param group %s: %d tensors, %d values, lr %.3g, wd %.3g", g["name"],
                 len(g["params"]), sum(p.numel() for p in g["params"]), g["lr"], g["weight_decay"])
    return torch.optim.AdamW(groups, betas=cfg.betas)


class StepSchedule:
    """Learning-rate factor at a step: linear warm-up, then halving every `halve_every`."""

    def __init__(self, warmup: int, halve_every: int) -> None:
        self.warmup, self.halve_every = int(warmup), int(halve_every)

    def __call__(self, step: int) -> float:
        ramp = min(1.0, (step + 1) / self.warmup) if self.warmup > 0 else 1.0
        halvings = step // self.halve_every if self.halve_every > 0 else 0
        return ramp * 0.5 ** halvings


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-group schedule: the encoder's warm-up differs from the decoder's."""
    schedules = [StepSchedule(cfg.encoder_warmup_iters if g["part"] == "encoder" else cfg.decoder_warmup_iters,
                              cfg.halve_every) for g in optimizer.param_groups]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedules)


def group_lrs(optimizer: torch.optim.Optimizer) -> dict[str, float]:
    """Current learning rate of the encoder and decoder (for logs)."""
    return {f"lr_{g['part']}": g["lr"] for g in optimizer.param_groups}
