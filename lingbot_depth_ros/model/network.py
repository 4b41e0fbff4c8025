"""The LingBot-Depth network: RGB-D ViT encoder, UV-conditioned ConvStack decoder, heads, with
the official checkpoints' names. Invalid depth tokens are dropped (the reference's path) or
masked as attention keys (static shapes, for export): both give the same numbers. A batch
with dropped tokens pads each sample's kept tokens to the longest and masks the padding."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core.errors import ModelFileError
from .config_schema import validate_model_config
from .convstack import ConvStack
from .vit import PATCH_SIZE, RGBDViT, backbone_spec, key_bias


MODES = ("completion", "monocular")
MASKINGS = ("drop", "key_mask")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: depth at or below this many metres counts as no measurement
MIN_VALID_DEPTH_M = 0.01
#: a remapped depth value counts for patch validity inside this range (and when non-zero)
TOKEN_VALID_RANGE = (-9.5, 200.0)


def tokens_for_level(resolution_level: int, num_tokens_range=(1200, 3600)) -> int:
    """Token budget of a resolution level 0..9 (9 = most tokens, finest detail)."""
    if not 0 <= resolution_level <= 9:
        raise ValueError(f"resolution_level must be 0..9, got {resolution_level}")
    low, high = num_tokens_range
    return int(low + resolution_level / 9 * (high - low))


def token_grid(height: int, width: int, num_tokens: int) -> tuple[int, int]:
    """(rows, cols) of the patch grid: about num_tokens patches with the image's aspect."""
    if num_tokens < 1:
        raise ValueError(f"num_tokens must be positive, got {num_tokens}")
    aspect = width / height
    rows, cols = round((num_tokens / aspect) ** 0.5), round((num_tokens * aspect) ** 0.5)
    return max(1, rows), max(1, cols)


def view_plane_uv(rows: int, cols: int, aspect: float, dtype=torch.float32,
                  device=None) -> torch.Tensor:
    """(1, 2, rows, cols) view-plane coordinates: u spans +-sx*(cols-1)/cols, v +-sy*(rows-1)/rows,
    with (sx, sy) the image's width and height over its diagonal."""
    span_x = aspect / math.sqrt(1 + aspect ** 2)
    span_y = 1 / math.sqrt(1 + aspect ** 2)
    u = torch.linspace(-span_x * (cols - 1) / cols, span_x * (cols - 1) / cols, cols,
                       dtype=dtype, device=device)
    v = torch.linspace(-span_y * (rows - 1) / rows, span_y * (rows - 1) / rows, rows,
                       dtype=dtype, device=device)
    return torch.stack([u[None, :].expand(rows, cols), v[:, None].expand(rows, cols)])[None]


def remap_depth_input(depth: torch.Tensor, remap: str) -> torch.Tensor:
    """Metres (NaN/inf/<= 1 cm = none) -> network input: log or linear depth, 0 where none."""
    depth = torch.where(torch.isfinite(depth), depth, torch.zeros_like(depth))
    valid = depth > MIN_VALID_DEPTH_M
    if remap == "log":
        return torch.where(valid, torch.log(torch.where(valid, depth, torch.ones_like(depth))),
                           torch.zeros_like(depth))
    return torch.where(valid, depth, torch.zeros_like(depth))


def depth_patch_validity(remapped: torch.Tensor, rows: int, cols: int) -> torch.Tensor:
    """bool (B, rows*cols): patches with a valid pixel of remapped depth (B,1,h,w); an exact
    zero is "none", so 1.000 m (log 0) counts as missing, as in the reference."""
    low, high = TOKEN_VALID_RANGE
    pixel = ((remapped != 0) & (remapped >= low) & (remapped <= high)).to(remapped.dtype)
    patches = pixel.reshape(-1, rows, PATCH_SIZE, cols, PATCH_SIZE).amax(dim=(2, 4))
    return patches.reshape(-1, rows * cols) > 0


def depth_to_points(depth: torch.Tensor, K: torch.Tensor) -> torch.Tensor:
    """(B, H, W) depth and (3, 3) or (B, 3, 3) pixel intrinsics -> (B, H, W, 3) camera points."""
    K = K.to(depth).reshape(-1, 3, 3)
    fx, fy = K[:, 0, 0, None, None], K[:, 1, 1, None, None]
    cx, cy = K[:, 0, 2, None, None], K[:, 1, 2, None, None]
    h, w = depth.shape[-2:]
    v, u = torch.meshgrid(torch.arange(h, dtype=depth.dtype, device=depth.device),
                          torch.arange(w, dtype=depth.dtype, device=depth.device), indexing="ij")
    return torch.stack([(u - cx) * depth / fx, (v - cy) * depth / fy, depth], dim=-1)


@dataclass(frozen=True)
class GridPlan:
    """What a forward pass computes from the frame size and token budget alone, computed once
    per size by LingBotDepth.plan: a static token grid for a stream of same-size frames."""

    height: int
    width: int
    rows: int
    cols: int
    patch_pos: torch.Tensor  # (1, rows*cols, D) resized positional embedding
    uv: tuple[torch.Tensor, ...]  # float32 (1, 2, rows*2^k, cols*2^k), one per decoder level


class RGBDEncoder(nn.Module):
    """Backbone + per-layer 1x1 projections; returns a (B, dim_out, rows, cols) map and the
    normed class token of the last selected layer."""

    def __init__(self, backbone: str, intermediate_layers, dim_out: int,
                 img_depth_fuse_mode: str = "", depth_emb_mode: str = "",
                 backbone_kwargs: dict | None = None, **other) -> None:
        super().__init__()
        _check_encoder_options(img_depth_fuse_mode, depth_emb_mode, other)
        spec = backbone_spec(backbone, backbone_kwargs)
        self.backbone = RGBDViT(**spec)
        width, depth = spec["embed_dim"], spec["depth"]
        self.take = _selected_blocks(intermediate_layers, depth)
        if dim_out != width:
            raise ModelFileError(
                f"model_config: encoder dim_out {dim_out} must equal the backbone width {width} "
                "(the class token is added to the projected features)")
        self.output_projections = nn.ModuleList(
            nn.Conv2d(width, dim_out, kernel_size=1) for _ in self.take)
        self.register_buffer("image_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("image_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor, depth: torch.Tensor | None, rows: int, cols: int,
                masking: str = "drop", patch_pos: torch.Tensor | None = None,
                aligned_bias: bool = False):
        """image: normalised (B,3,14*rows,14*cols); depth: remapped (B,1,..) or None (no depth
        tokens, monocular). patch_pos: a precomputed grid_pos_embed(rows, cols)."""
        vit = self.backbone
        n = rows * cols
        if patch_pos is None:
            patch_pos = vit.grid_pos_embed(rows, cols)
        img = vit.patch_embed(image)
        img = img + (1 + patch_pos.to(img.dtype))  # 1 and 2 are the modality embeddings
        cls = vit.class_token().expand(img.shape[0], -1, -1)
        if depth is None:
            outputs = vit.run_blocks(torch.cat([cls, img], dim=1), self.take, keep_tokens=1 + n)
        else:
            dep = vit.depth_patch_embed(depth)
            dep = dep + (2 + patch_pos.to(dep.dtype))
            keep = depth_patch_validity(depth, rows, cols)
            if masking == "key_mask":
                attend = torch.cat([torch.ones_like(keep[:, :1]).expand(-1, 1 + n), keep], dim=1)
                bias = key_bias(attend, dep.dtype, aligned_bias)
                outputs = vit.run_blocks(torch.cat([cls, img, dep], dim=1), self.take,
                                         key_bias=bias, keep_tokens=1 + n)
            else:
                outputs = self._run_dropping(cls, img, dep, keep, n, aligned_bias)
        feats = torch.stack([
            proj(out[:, 1:].transpose(1, 2).reshape(out.shape[0], -1, rows, cols))
            for proj, out in zip(self.output_projections, outputs)], dim=1).sum(dim=1)
        return feats, outputs[-1][:, 0]

    def _run_dropping(self, cls, img, dep, keep, n: int, aligned_bias: bool = False
                      ) -> list[torch.Tensor]:
        """Variable-length path: each sample keeps only its valid depth tokens. In a batch
        they are moved to the front of the depth tokens and cut to the longest sample's
        count; a sample's padding after its own are masked keys (exactly zero weight)."""
        if img.shape[0] == 1:
            return self.backbone.run_blocks(torch.cat([cls, img, dep[:, keep[0]]], dim=1),
                                            self.take, keep_tokens=1 + n)
        counts = keep.sum(dim=1)
        longest = int(counts.max())
        # a stable sort of "not kept" puts each sample's kept tokens first, in their order
        order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :longest]
        kept = dep.gather(1, order[..., None].expand(-1, -1, dep.shape[-1]))
        padded = torch.arange(longest, device=keep.device)[None] < counts[:, None]
        attend = torch.cat([torch.ones_like(keep[:, :1]).expand(-1, 1 + n), padded], dim=1)
        return self.backbone.run_blocks(torch.cat([cls, img, kept], dim=1), self.take,
                                        key_bias=key_bias(attend, dep.dtype, aligned_bias),
                                        keep_tokens=1 + n)


def _check_encoder_options(fuse_mode: str, depth_emb_mode: str, other: dict) -> None:
    if fuse_mode != "cat_token":
        raise ModelFileError(
            f"model_config: img_depth_fuse_mode '{fuse_mode}' is not supported (only 'cat_token')")
    if depth_emb_mode != "conv_1c":
        raise ModelFileError(
            f"model_config: depth_emb_mode '{depth_emb_mode}' is not supported (only 'conv_1c')")
    if other.get("in_chans", 3) != 3:
        raise ModelFileError(f"model_config: in_chans {other['in_chans']} != 3 (RGB)")


def _selected_blocks(intermediate_layers, depth: int) -> list[int]:
    """Block indices whose outputs feed the decoder, in block order."""
    if isinstance(intermediate_layers, int):
        if not 1 <= intermediate_layers <= depth:
            raise ModelFileError(
                f"model_config: intermediate_layers {intermediate_layers} not in 1..{depth}")
        return list(range(depth - intermediate_layers, depth))
    take = [int(i) for i in intermediate_layers]
    if len(set(take)) != len(take) or not all(0 <= i < depth for i in take):
        raise ModelFileError(
            f"model_config: intermediate_layers {take} must be distinct indices in 0..{depth - 1}")
    return sorted(take)


class LingBotDepth(nn.Module):
    """The network. ``model_config`` is the official constructor-argument dict."""

    def __init__(self, model_config: dict) -> None:
        # before any module or tensor: a bad size is named here, not by torch
        validate_model_config(model_config)
        super().__init__()
        self.model_config = copy.deepcopy(model_config)
        cfg = self.model_config
        self.remap_depth_in = cfg.get("remap_depth_in", "log")
        self.remap_depth_out = cfg.get("remap_depth_out", "exp")
        if (self.remap_depth_in not in ("log", "linear")
                or self.remap_depth_out not in ("exp", "linear")):
            raise ModelFileError(f"model_config: unsupported remaps in={self.remap_depth_in} "
                                 f"out={self.remap_depth_out}")
        self.num_tokens_range = tuple(cfg.get("num_tokens_range", (1200, 3600)))
        try:
            self.encoder = RGBDEncoder(**cfg["encoder"])
            self.neck = ConvStack(**cfg["neck"])
            self.depth_head = ConvStack(**cfg["depth_head"])
            self.mask_head = ConvStack(**cfg["mask_head"]) if cfg.get("mask_head") else None
        except TypeError as exc:  # a stack's dict names an argument that does not exist
            raise ModelFileError(f"model_config: {exc}") from exc

    @property
    def embed_dim(self) -> int:
        return self.encoder.backbone.embed_dim

    def grid(self, height: int, width: int, resolution_level: int = 9,
             num_tokens: int | None = None) -> tuple[int, int]:
        if num_tokens is None:
            num_tokens = tokens_for_level(resolution_level, self.num_tokens_range)
        return token_grid(height, width, num_tokens)

    def preprocess(self, image: torch.Tensor, depth: torch.Tensor, rows: int, cols: int):
        """(B,3,H,W) RGB in [0,1] and (B,H,W) metres -> network-size normalised image and
        remapped depth (B,1,14*rows,14*cols)."""
        size = (PATCH_SIZE * rows, PATCH_SIZE * cols)
        image = F.interpolate(image, size, mode="bilinear", align_corners=False, antialias=True)
        depth = F.interpolate(depth[:, None], size, mode="nearest")
        return self.normalise_image(image), remap_depth_input(depth, self.remap_depth_in)

    def normalise_image(self, image: torch.Tensor) -> torch.Tensor:
        return (image - self.encoder.image_mean) / self.encoder.image_std

    def plan(self, height: int, width: int, resolution_level: int = 9,
             num_tokens: int | None = None) -> GridPlan:
        """The size-only constants of a height x width forward pass (see GridPlan)."""
        rows, cols = self.grid(height, width, resolution_level, num_tokens)
        device = self.encoder.image_mean.device
        with torch.no_grad():
            patch_pos = self.encoder.backbone.grid_pos_embed(rows, cols).detach()
            uv = tuple(view_plane_uv(rows * 2 ** k, cols * 2 ** k, width / height,
                                     device=device) for k in range(self.neck.levels))
        return GridPlan(height, width, rows, cols, patch_pos, uv)

    def cast_matmul_weights(self, dtype: torch.dtype) -> LingBotDepth:
        """Store linear and convolution weights in `dtype` for inference under autocast to it
        (the same numbers without per-frame casts); the rest stays float32, as autocast keeps it."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                module.to(dtype)
        return self

    def decode(self, feats: torch.Tensor, cls: torch.Tensor, aspect: float,
               uv_levels: tuple[torch.Tensor, ...] | None = None):
        """Encoder output -> (depth, mask) head outputs (B,1,h,w) at the head's resolution.
        uv_levels: precomputed view-plane UV per decoder level (GridPlan.uv)."""
        rows, cols = feats.shape[-2:]
        b = feats.shape[0]
        feats = feats + cls[..., None, None]
        levels = []
        for level in range(self.neck.levels):
            if uv_levels is None:
                uv = view_plane_uv(rows * 2 ** level, cols * 2 ** level, aspect, feats.dtype,
                                   feats.device)
            else:
                uv = uv_levels[level].to(feats.dtype)
            uv = uv.expand(b, -1, -1, -1)
            levels.append(torch.cat([feats, uv], dim=1) if level == 0 else uv)
        neck_out = self.neck(levels)
        depth = self.depth_head(neck_out)[-1]
        mask = self.mask_head(neck_out)[-1] if self.mask_head is not None else None
        return depth, mask

    def finish(self, depth: torch.Tensor, mask: torch.Tensor | None):
        """Head outputs resized to the image -> metres (B,H,W) and mask probability or None."""
        depth = depth.float()[:, 0]
        depth = depth.exp() if self.remap_depth_out == "exp" else depth
        return depth, (mask.float()[:, 0].sigmoid() if mask is not None else None)

    def forward(self, image: torch.Tensor, depth: torch.Tensor, resolution_level: int = 9,
                num_tokens: int | None = None, mode: str = "completion", masking: str = "drop",
                K: torch.Tensor | None = None, plan: GridPlan | None = None
                ) -> dict[str, torch.Tensor]:
        """image (B,3,H,W) RGB in [0,1], depth (B,H,W) metres (0/NaN/inf = none) -> depth, mask
        (with a mask head) and, given K, points (B,H,W,3); a `plan` replaces level and tokens."""
        if mode not in MODES or masking not in MASKINGS:
            raise ValueError(f"mode must be one of {MODES} and masking one of {MASKINGS}")
        h, w = image.shape[-2:]
        if plan is None:
            rows, cols = self.grid(h, w, resolution_level, num_tokens)
        elif (plan.height, plan.width) != (h, w):
            raise ValueError(f"grid plan is for {plan.width}x{plan.height} frames, got {w}x{h}")
        else:
            rows, cols = plan.rows, plan.cols
        image_n, depth_n = self.preprocess(image, depth, rows, cols)
        feats, cls = self.encoder(image_n, depth_n if mode == "completion" else None,
                                  rows, cols, masking,
                                  patch_pos=None if plan is None else plan.patch_pos,
                                  aligned_bias=plan is not None)  # engines: see vit.key_bias
        depth_out, mask_out = self.decode(feats, cls, w / h, None if plan is None else plan.uv)
        resize = dict(size=(h, w), mode="bilinear", align_corners=False)
        depth_out = F.interpolate(depth_out, **resize)
        mask_out = F.interpolate(mask_out, **resize) if mask_out is not None else None
        metres, prob = self.finish(depth_out, mask_out)
        out = {"depth": metres}
        if prob is not None:
            out["mask"] = prob
        if K is not None:
            out["points"] = depth_to_points(metres, K)
        return out


def build_model(model_config: dict) -> LingBotDepth:
    """A randomly initialised LingBotDepth for `model_config` (eval mode)."""
    if not isinstance(model_config, dict):
        raise ModelFileError(f"model_config must be a dict, got {type(model_config).__name__}")
    return LingBotDepth(model_config).eval()
