"""DINOv2 ViT pieces of the RGB-D backbone, with the parameter names of the official
checkpoints; attention takes an optional key mask so invalid depth tokens can be masked."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from . import config_schema

PATCH_SIZE = 14
POS_GRID = 37  # 518 / 14
#: DINOv2's offset on the bicubic scale factors when resizing the positional grid
INTERPOLATE_OFFSET = 0.1

#: attention score bias of a masked key: exp() of it is exactly 0 in fp32, bf16 and fp16,
#: and unlike -inf it stays finite, so no runtime can turn a masked row into NaN
MASKED_KEY_BIAS = -30000.0
#: row stride, in elements, of the key bias handed to scaled_dot_product_attention: PyTorch's
#: memory-efficient kernel takes an additive mask as is only when its strides are multiples of
#: 8; otherwise it pads a copy in every call (24 times per ViT-L forward)
KEY_BIAS_ALIGNMENT = 16


def backbone_spec(name: str, overrides: dict | None = None) -> dict:
    """Width, depth, heads and FFN of a named backbone, with optional overrides (our
    ``backbone_kwargs`` extension for small test models), checked by the config schema."""
    return config_schema.backbone_spec({"backbone": name, "backbone_kwargs": overrides})


def key_bias(attend: torch.Tensor, dtype: torch.dtype, aligned: bool = False) -> torch.Tensor:
    """bool (B, S) keys to attend -> additive (B, 1, 1, S) bias, 0 or MASKED_KEY_BIAS; aligned:
    rows padded for the memory-efficient kernel, else Where(keep, 0, bias) for the ORT rewrite."""
    bias = torch.where(attend, 0.0, MASKED_KEY_BIAS).to(dtype)
    if aligned:
        batch, length = attend.shape
        padded = -(-length // KEY_BIAS_ALIGNMENT) * KEY_BIAS_ALIGNMENT
        buffer = torch.zeros((batch, 1, 1, padded), dtype=dtype, device=attend.device)
        buffer[:, 0, 0, :length] = bias
        return buffer[..., :length]
    return bias[:, None, None, :]


class PatchEmbed(nn.Module):
    """Non-overlapping 14x14 patches -> tokens (B, rows*cols, D)."""

    def __init__(self, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=PATCH_SIZE, stride=PATCH_SIZE)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class LayerScale(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class SwiGLUFFN(nn.Module):
    """ViT-g's FFN; its hidden width is 2/3 of the MLP's, rounded up to a multiple of 8."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
        self.w12 = nn.Linear(dim, 2 * hidden)
        self.w3 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.w12(x).chunk(2, dim=-1)
        return self.w3(F.silu(gate) * value)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        """key_bias: additive (B, 1, 1, S) score bias, MASKED_KEY_BIAS for ignored keys."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, S, head_dim)
        if key_bias is not None and key_bias.dtype != q.dtype:
            key_bias = key_bias.to(q.dtype)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=key_bias)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Block(nn.Module):
    """Pre-norm transformer block: x + ls1(attn(norm1 x)), then x + ls2(ffn(norm2 x))."""

    def __init__(self, dim: int, num_heads: int, ffn: str) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = SwiGLUFFN(dim, 4 * dim) if ffn == "swiglu" else Mlp(dim, 4 * dim)
        self.ls2 = LayerScale(dim)

    def forward(self, x: torch.Tensor, key_bias: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x), key_bias))
        return x + self.ls2(self.mlp(self.norm2(x)))


class RGBDViT(nn.Module):
    """DINOv2 backbone with a second (1-channel) patch embedding for depth."""

    def __init__(self, embed_dim: int, depth: int, num_heads: int, ffn: str = "mlp") -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(3, embed_dim)
        self.depth_patch_embed = PatchEmbed(1, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + POS_GRID * POS_GRID, embed_dim))
        # Training-time mask token; kept so that checkpoints round-trip with the reference.
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, ffn) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self._init_random()

    def _init_random(self) -> None:
        """DINOv2's initialisation, so that freshly built (random) models behave like ViTs."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.blocks.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)

    def grid_pos_embed(self, rows: int, cols: int) -> torch.Tensor:
        """Patch positional embedding for a rows x cols grid, (1, rows*cols, D) float32."""
        return interpolate_pos_embed(self.pos_embed[:, 1:], rows, cols)

    def class_token(self) -> torch.Tensor:
        """The class token with its positional entry, (1, 1, D)."""
        return self.cls_token + self.pos_embed[:, :1]

    def run_blocks(self, x: torch.Tensor, take: list[int],
                   key_bias: torch.Tensor | None = None, keep_tokens: int | None = None
                   ) -> list[torch.Tensor]:
        """Run all blocks; return norm(output) of the blocks in `take`, for the first
        `keep_tokens` tokens only (the norm is per token, so slicing first is the same)."""
        outputs = []
        for index, block in enumerate(self.blocks):
            x = block(x, key_bias)
            if index in take:
                outputs.append(self.norm(x[:, :keep_tokens]))
        return outputs


def interpolate_pos_embed(patch_pos: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """Resize a (1, M*M, D) positional grid to (1, rows*cols, D) like DINOv2: bicubic with scale
    factors (n + 0.1) / M, which set the sampling positions (unchanged at the same size)."""
    n = patch_pos.shape[1]
    side = int(math.isqrt(n))
    if rows == cols == side:
        return patch_pos
    dim = patch_pos.shape[-1]
    grid = patch_pos.float().reshape(1, side, side, dim).permute(0, 3, 1, 2)
    scale = ((rows + INTERPOLATE_OFFSET) / side, (cols + INTERPOLATE_OFFSET) / side)
    grid = F.interpolate(grid, scale_factor=scale, mode="bicubic", antialias=False)
    if tuple(grid.shape[-2:]) != (rows, cols):
        raise ValueError(
            f"positional grid resized to {tuple(grid.shape[-2:])}, wanted {(rows, cols)}")
    return grid.permute(0, 2, 3, 1).reshape(1, rows * cols, dim).to(patch_pos.dtype)
