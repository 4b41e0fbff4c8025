"""Static-shape ONNX export of the whole pipeline: raw frame in, metres and mask out.

Inputs ``rgb`` uint8 (N, H, W, 3) RGB and ``depth`` float32 (N, H, W) metres (NaN, inf and
<= 1 cm mean no data); outputs ``depth_out`` float32 (N, H, W) metres and ``mask`` float32
(N, H, W) probability (ones without a mask head). N is 1, or with max_batch > 1 a dynamic
batch axis "batch" of 1..max_batch (metadata lingbot.max_batch); everything else is static.
Resizes are gathers of PyTorch's own interpolation taps (docs/internals.md); the decoder's
GroupNorms take their statistics in stages, which ONNX Runtime sums accurately
(docs/engines.md)."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import model_sha256
from .convstack import staged_norms
from .network import MODES, LingBotDepth, remap_depth_input
from .vit import PATCH_SIZE

log = logging.getLogger(__name__)

INPUT_NAMES = ("rgb", "depth")
BATCH_AXIS = "batch"
MAX_BATCH_KEY = "lingbot.max_batch"
OUTPUT_NAMES = ("depth_out", "mask")
#: ONNX's 2 GB protobuf limit: bigger models keep their weights in a side file
_EXTERNAL_DATA_BYTES = 1_800_000_000


def resize_taps(size_in: int, size_out: int, mode: str, antialias: bool = False):
    """PyTorch's 1-D resampling weights as taps: (index (out, T) int64, weight (out, T)),
    from resizing an identity matrix (the other axis is 2 wide: docs/internals.md)."""
    eye = torch.eye(size_in, dtype=torch.float32)[:, None, :, None].expand(-1, 1, -1, 2)
    kwargs = {} if mode == "nearest" else {"align_corners": False, "antialias": antialias}
    dense = F.interpolate(eye.contiguous(), size=(size_out, 2), mode=mode, **kwargs)[:, 0, :, 0].T
    taps = int((dense != 0).sum(dim=1).max())
    weight, index = dense.abs().topk(taps, dim=1)  # the non-zero weights (and some zeros)
    weight = dense.gather(1, index)
    index = torch.where(weight != 0, index, torch.zeros_like(index))
    return index, weight


#: values per resampled position below which the axis is first swapped to the front: a gather
#: and a weighting of 3-value (colour) or 1-value spans cost runtimes far more than the swap
_SWAP_AXIS_BELOW = 16


def _resample(x: torch.Tensor, dim: int, index: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Resize one axis of x with taps from resize_taps: a weighted sum of T gathers (cheaper
    on ONNX Runtime than one gather and a reduction over a small middle axis)."""
    if dim > 1 and math.prod(x.shape[dim + 1:]) < _SWAP_AXIS_BELOW:
        return _resample(x.transpose(1, dim), 1, index, weight).transpose(1, dim)
    shape = (-1,) + (1,) * (x.dim() - dim - 1)
    out = None
    for tap in range(index.shape[1]):
        term = x.index_select(dim, index[:, tap])
        if index.shape[1] > 1:
            term = term * weight[:, tap].reshape(shape)
        out = term if out is None else out + term
    return out


def is_identity(index: torch.Tensor, weight: torch.Tensor, size_in: int) -> bool:
    """Taps that copy every position (same size, weight 1): the resize can be left out."""
    return (index.shape == (size_in, 1) and bool((weight == 1).all())
            and torch.equal(index[:, 0], torch.arange(size_in)))


class StaticPipeline(nn.Module):
    """LingBotDepth for one input size and token grid, pre- and post-processing included."""

    def __init__(self, model: LingBotDepth, height: int, width: int, rows: int, cols: int,
                 mode: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{mode}'")
        self.model, self.mode = model, mode
        self.identity_resizes: set[str] = set()
        self.height, self.width, self.rows, self.cols = height, width, rows, cols
        net_h, net_w = PATCH_SIZE * rows, PATCH_SIZE * cols
        with torch.no_grad():
            self.register_buffer("patch_pos", model.encoder.backbone.grid_pos_embed(rows, cols))
        self._taps("rgb_h", height, net_h, "bilinear", antialias=True)
        self._taps("rgb_w", width, net_w, "bilinear", antialias=True)
        self._taps("depth_h", height, net_h, "nearest")
        self._taps("depth_w", width, net_w, "nearest")
        for name, head in (("depth_out", model.depth_head), ("mask_out", model.mask_head)):
            if head is not None:  # a head's last level is 2^(levels-1) times the token grid
                self._taps(f"{name}_h", rows * 2 ** (head.levels - 1), height, "bilinear")
                self._taps(f"{name}_w", cols * 2 ** (head.levels - 1), width, "bilinear")

    def _taps(self, name: str, size_in: int, size_out: int, mode: str, antialias=False) -> None:
        index, weight = resize_taps(size_in, size_out, mode, antialias)
        if is_identity(index, weight, size_in):
            self.identity_resizes.add(name)  # e.g. the head's output grid is the frame size
        self.register_buffer(f"{name}_index", index)
        self.register_buffer(f"{name}_weight", weight)

    def _resize(self, x: torch.Tensor, dim: int, name: str) -> torch.Tensor:
        if name in self.identity_resizes:
            return x
        return _resample(x, dim, getattr(self, f"{name}_index"), getattr(self, f"{name}_weight"))

    def forward(self, rgb: torch.Tensor, depth: torch.Tensor):
        model = self.model
        image = rgb.to(torch.float32) / 255.0  # (1, H, W, 3)
        image = self._resize(self._resize(image, 1, "rgb_h"), 2, "rgb_w")
        image = model.normalise_image(image.permute(0, 3, 1, 2))
        depth_in = None
        if self.mode == "completion":
            depth_in = self._resize(self._resize(depth, 1, "depth_h"), 2, "depth_w")[:, None]
            depth_in = remap_depth_input(depth_in, model.remap_depth_in)
        feats, cls = model.encoder(image, depth_in, self.rows, self.cols, "key_mask",
                                   self.patch_pos)
        depth_out, mask_out = model.decode(feats, cls, self.width / self.height)
        depth_out = self._resize(self._resize(depth_out, 2, "depth_out_h"), 3, "depth_out_w")
        if mask_out is not None:
            mask_out = self._resize(self._resize(mask_out, 2, "mask_out_h"), 3, "mask_out_w")
        metres, prob = model.finish(depth_out, mask_out)
        return metres, (prob if prob is not None else torch.ones_like(metres))


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter's optimiser logs every rewrite at INFO and its registry warns about
    torchvision ops we do not use; keep real warnings only."""
    quieter = {"onnxscript": logging.WARNING, "onnx_ir": logging.WARNING,
               "torch.onnx._internal.exporter._registration": logging.ERROR}
    loggers = [logging.getLogger(name) for name in quieter]
    levels = [lg.level for lg in loggers]
    for lg, floor in zip(loggers, quieter.values()):
        lg.setLevel(max(lg.getEffectiveLevel(), floor))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*", category=FutureWarning)
            # both inputs share the one batch axis; the exporter says it keeps one name
            warnings.filterwarnings("ignore", message="# The axis name: .* will not be used")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_onnx(model: LingBotDepth, path: str | os.PathLike, height: int, width: int,
                resolution_level: int = 9, num_tokens: int | None = None,
                mode: str = "completion", opset: int = 18, max_batch: int = 1) -> Path:
    """Export `model` (on the CPU) for (height, width) frames as a static-shape ONNX graph;
    max_batch > 1 gives it a dynamic batch axis of 1..max_batch frames."""
    if opset < 17:
        raise ValueError(f"opset must be 17 or newer, got {opset}")
    if max_batch < 1:
        raise ValueError(f"max_batch must be positive, got {max_batch}")
    path = Path(path)
    rows, cols = model.grid(height, width, resolution_level, num_tokens)
    pipeline = StaticPipeline(model.eval(), height, width, rows, cols, mode).eval()
    # an example batch of 1 would let the exporter fix the axis to 1
    example_batch = min(2, max_batch)
    example = (torch.zeros(example_batch, height, width, 3, dtype=torch.uint8),
               torch.ones(example_batch, height, width, dtype=torch.float32))
    dynamic = None
    if max_batch > 1:
        batch = torch.export.Dim(BATCH_AXIS, min=1, max=max_batch)
        dynamic = ({0: batch}, {0: batch})
    with torch.no_grad(), _quiet_exporter(), staged_norms(model):
        program = torch.onnx.export(
            pipeline, example, dynamo=True, opset_version=opset, input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES), optimize=True, verbose=False,
            dynamic_shapes=dynamic)
    if max_batch > 1:
        program.model.metadata_props[MAX_BATCH_KEY] = str(max_batch)
    program.model.metadata_props.update({
        "lingbot.height": str(height), "lingbot.width": str(width),
        "lingbot.rows": str(rows), "lingbot.cols": str(cols), "lingbot.mode": mode,
        "lingbot.checkpoint_sha256": model_sha256(model),
    })
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    path.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(path), external_data=weight_bytes > _EXTERNAL_DATA_BYTES)
    log.info("exported %s: %dx%d, %dx%d tokens, %s, batches of up to %d", path, width, height,
             cols, rows, mode, max_batch)
    return path
