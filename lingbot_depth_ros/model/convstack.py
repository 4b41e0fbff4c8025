"""ConvStack: the multi-level convolutional neck and heads of the decoder. Level i adds its
input to the upsampled output of level i-1, runs residual conv blocks and emits an output;
parameter names follow the official checkpoints."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from functools import partial

import torch
from torch import nn

from ..core.errors import ModelFileError

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": partial(nn.LeakyReLU, negative_slope=0.2),
    "silu": nn.SiLU,
    "elu": nn.ELU,
}
RESAMPLERS = ("conv_transpose", "pixel_shuffle", "nearest", "bilinear")


class GroupNorm(nn.GroupNorm):
    """nn.GroupNorm whose statistics can be taken in stages (over rows, then columns, then the
    group's channels) for export: ONNX Runtime's InstanceNormalization, the exporter's form of
    GroupNorm, sums a whole group (millions of values at the decoder's finest levels) in long
    float32 runs and loses precision there (docs/engines.md)."""

    staged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.staged:
            return super().forward(x)
        return staged_group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def staged_group_norm(x: torch.Tensor, groups: int, weight: torch.Tensor | None,
                      bias: torch.Tensor | None, eps: float) -> torch.Tensor:
    """F.group_norm of (N, C, H, W) with mean and variance as means of means, a row at a time
    (equal counts, so the same values), each a short sum; the variance in a second pass."""
    n, c, h, w = x.shape
    grouped = x.reshape(n, groups, c // groups, h, w)

    def mean(t: torch.Tensor) -> torch.Tensor:
        return t.mean(dim=4, keepdim=True).mean(dim=3, keepdim=True).mean(dim=2, keepdim=True)

    centred = grouped - mean(grouped)
    normed = (centred * torch.rsqrt(mean(centred * centred) + eps)).reshape(n, c, h, w)
    if weight is not None:
        normed = normed * weight[:, None, None] + bias[:, None, None]
    return normed


@contextlib.contextmanager
def staged_norms(model: nn.Module) -> Iterator[None]:
    """Within the block, the model's GroupNorms take their statistics in stages (for export)."""
    norms = [m for m in model.modules() if isinstance(m, GroupNorm)]
    for norm in norms:
        norm.staged = True
    try:
        yield
    finally:
        for norm in norms:
            norm.staged = False


def norm_layer(kind: str, channels: int) -> nn.Module:
    """The decoder norm a model_config names (official names, our GroupNorm class)."""
    if kind == "layer_norm":
        return GroupNorm(1, channels)
    if kind == "group_norm":
        if channels < 32:
            raise ModelFileError(f"model_config: group_norm needs >= 32 channels, got {channels}")
        return GroupNorm(channels // 32, channels)
    if kind == "instance_norm":  # InstanceNorm2d's numbers and (empty) state dict
        return GroupNorm(channels, channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ModelFileError(f"model_config: unknown norm '{kind}'")


def _activation(kind: str) -> type[nn.Module] | partial:
    try:
        return _ACTIVATIONS[kind]
    except KeyError:
        raise ModelFileError(f"model_config: unknown activation '{kind}'") from None


class ResidualConvBlock(nn.Module):
    """norm, act, 3x3 conv, norm, act, 3x3 conv (replicate padding) plus a skip path."""

    def __init__(self, channels_in: int, channels_out: int, hidden: int,
                 in_norm: str, hidden_norm: str, activation: str) -> None:
        super().__init__()
        act = _activation(activation)
        conv = partial(nn.Conv2d, kernel_size=3, padding=1, padding_mode="replicate")
        self.layers = nn.Sequential(
            norm_layer(in_norm, channels_in), act(), conv(channels_in, hidden),
            norm_layer(hidden_norm, hidden), act(), conv(hidden, channels_out))
        self.skip_connection = (nn.Conv2d(channels_in, channels_out, kernel_size=1)
                                if channels_in != channels_out else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x) + self.skip_connection(x)


def resampler(kind: str, channels_in: int, channels_out: int) -> nn.Sequential:
    """A x2 upsampler between two levels."""
    conv3 = partial(nn.Conv2d, kernel_size=3, padding=1, padding_mode="replicate")
    if kind == "conv_transpose":
        return nn.Sequential(nn.ConvTranspose2d(channels_in, channels_out, kernel_size=2, stride=2),
                             conv3(channels_out, channels_out))
    if kind == "pixel_shuffle":
        return nn.Sequential(conv3(channels_in, channels_out * 4), nn.PixelShuffle(2),
                             conv3(channels_out, channels_out))
    if kind in ("nearest", "bilinear"):
        upsample = nn.Upsample(scale_factor=2, mode=kind,
                               align_corners=False if kind == "bilinear" else None)
        return nn.Sequential(upsample, conv3(channels_in, channels_out))
    raise ModelFileError(
        f"model_config: unsupported resampler '{kind}' (have {', '.join(RESAMPLERS)})")


def _per_level(value, levels: int, name: str) -> list:
    """A per-level list from a list or a scalar repeated for every level."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) < levels:
            raise ModelFileError(
                f"model_config: {name} has {len(value)} entries for {levels} levels")
        return list(value[:levels])
    return [value] * levels


class ConvStack(nn.Module):
    def __init__(self, dim_in, dim_res_blocks: list[int], dim_out, resamplers,
                 dim_times_res_block_hidden: int = 1, num_res_blocks=1,
                 res_block_in_norm: str = "layer_norm", res_block_hidden_norm: str = "group_norm",
                 activation: str = "relu") -> None:
        super().__init__()
        levels = len(dim_res_blocks)
        ins = _per_level(dim_in, levels, "dim_in")
        outs = _per_level(dim_out, levels, "dim_out")
        kinds = _per_level(resamplers, levels - 1, "resamplers")
        counts = _per_level(num_res_blocks, levels, "num_res_blocks")
        self.input_blocks = nn.ModuleList(
            nn.Conv2d(c_in, c, kernel_size=1) if c_in is not None else nn.Identity()
            for c_in, c in zip(ins, dim_res_blocks))
        self.resamplers = nn.ModuleList(
            resampler(kind, c_prev, c_next)
            for kind, c_prev, c_next in zip(kinds, dim_res_blocks[:-1], dim_res_blocks[1:]))
        self.res_blocks = nn.ModuleList(
            nn.Sequential(*(ResidualConvBlock(c, c, dim_times_res_block_hidden * c,
                                              res_block_in_norm, res_block_hidden_norm, activation)
                            for _ in range(count)))
            for c, count in zip(dim_res_blocks, counts))
        self.output_blocks = nn.ModuleList(
            nn.Conv2d(c, c_out, kernel_size=1) if c_out is not None else nn.Identity()
            for c_out, c in zip(outs, dim_res_blocks))

    @property
    def levels(self) -> int:
        return len(self.res_blocks)

    def forward(self, inputs: list[torch.Tensor | None]) -> list[torch.Tensor]:
        """inputs: one tensor (or None) per level, level i at 2^i times level 0's size."""
        outputs = []
        x = None
        for level in range(self.levels):
            feature = inputs[level]
            if feature is not None:
                feature = self.input_blocks[level](feature)
            x = feature if x is None else (x if feature is None else x + feature)
            x = self.res_blocks[level](x)
            outputs.append(self.output_blocks[level](x))
            if level < self.levels - 1:
                x = self.resamplers[level](x)
        return outputs
