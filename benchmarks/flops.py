"""Analytic FLOP count of the LingBot-Depth network for one frame.

Counts 2 FLOPs per multiply-accumulate of every matmul and convolution: patch embeddings,
attention (QKV, scores, attention x values, output projection), MLP, the per-layer output
projections, and every convolution of the neck and heads. Normalisations, activations,
softmax, resizes and element-wise adds are not counted (they are memory-bound and well under
1% of the total); this is the same convention as ``torch.utils.flop_counter``.

The static-shape graph (ONNX, TensorRT) keeps every depth token and masks invalid ones out of
attention, so its sequence is 1 + 2 * rows * cols tokens whatever the depth holes are; the
token-dropping path shortens it to 1 + rows * cols + kept depth tokens (`depth_tokens`), and
monocular mode to 1 + rows * cols.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lingbot_depth_ros.model.network import token_grid, tokens_for_level
from lingbot_depth_ros.model.vit import PATCH_SIZE, backbone_spec


def ffn_hidden(dim: int, ffn: str) -> int:
    if ffn == "mlp":
        return 4 * dim
    # DINOv2's SwiGLU: 2/3 of 4*dim, rounded up to a multiple of 8
    return (int(4 * dim * 2 / 3) + 7) // 8 * 8


@dataclass
class FlopReport:
    """FLOPs of one forward pass, by part."""

    rows: int
    cols: int
    sequence: int
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def tokens(self) -> int:
        return self.rows * self.cols

    @property
    def total(self) -> int:
        return sum(self.parts.values())

    def add(self, part: str, flops: int) -> None:
        self.parts[part] = self.parts.get(part, 0) + int(flops)


def _per_level(value, levels: int) -> list:
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) < levels:  # extra entries are ignored, as by the model itself
            raise ValueError(f"expected {levels} per-level values, got {list(value)}")
        return list(value[:levels])
    return [value] * levels


def _conv(h: int, w: int, c_in: int, c_out: int, k: int = 1) -> int:
    return 2 * h * w * c_in * c_out * k * k


def _resampler(kind: str, h: int, w: int, c_in: int, c_out: int) -> int:
    """FLOPs of a 2x upsampler from (h, w, c_in) to (2h, 2w, c_out)."""
    if kind == "conv_transpose":  # ConvTranspose2d k=s=2, then 3x3 conv at 2x
        return _conv(h, w, c_in, c_out, 2) + _conv(2 * h, 2 * w, c_out, c_out, 3)
    if kind in ("nearest", "bilinear"):  # upsample, then 3x3 conv at 2x
        return _conv(2 * h, 2 * w, c_in, c_out, 3)
    if kind == "pixel_shuffle":  # 3x3 conv to 4*c_out, shuffle, 3x3 conv at 2x
        return _conv(h, w, c_in, 4 * c_out, 3) + _conv(2 * h, 2 * w, c_out, c_out, 3)
    raise ValueError(f"unsupported resampler {kind!r} (an upsampler is needed between levels)")


def conv_stack_flops(config: dict, rows: int, cols: int) -> int:
    """FLOPs of one ConvStack whose level i runs at (rows * 2**i, cols * 2**i)."""
    dims = list(config["dim_res_blocks"])
    levels = len(dims)
    dim_in = _per_level(config.get("dim_in"), levels)
    dim_out = _per_level(config.get("dim_out"), levels)
    num_res = _per_level(config.get("num_res_blocks", 1), levels)
    resamplers = _per_level(config["resamplers"], levels - 1)
    hidden_times = int(config.get("dim_times_res_block_hidden", 1))
    total = 0
    for i, dim in enumerate(dims):
        h, w = rows * 2**i, cols * 2**i
        if dim_in[i] is not None:
            total += _conv(h, w, dim_in[i], dim)
        # each residual block: 3x3 conv dim -> hidden, 3x3 conv hidden -> dim
        total += num_res[i] * 2 * _conv(h, w, dim, hidden_times * dim, 3)
        if dim_out[i] is not None:
            total += _conv(h, w, dim, dim_out[i])
        if i < levels - 1:
            total += _resampler(resamplers[i], h, w, dim, dims[i + 1])
    return total


def _selected_layers(intermediate_layers, depth: int) -> list[int]:
    if isinstance(intermediate_layers, int):
        return list(range(depth - intermediate_layers, depth))
    return list(intermediate_layers)


def _encoder_flops(report: FlopReport, encoder: dict, depth_tokens: int | None) -> None:
    """depth_tokens None: monocular, no depth embedding or tokens at all."""
    spec = backbone_spec(encoder["backbone"], encoder.get("backbone_kwargs"))
    dim, blocks, ffn = spec["embed_dim"], spec["depth"], spec["ffn"]
    seq = report.sequence = 1 + report.tokens + (depth_tokens or 0)
    report.add("patch_embed.rgb", _conv(report.rows, report.cols, 3, dim, PATCH_SIZE))
    if depth_tokens is not None:
        report.add("patch_embed.depth", _conv(report.rows, report.cols, 1, dim, PATCH_SIZE))
    hidden = ffn_hidden(dim, ffn)
    for _ in range(blocks):  # every block runs, as in the reference, whichever are tapped
        report.add("attention.qkv", 2 * seq * dim * 3 * dim)
        report.add("attention.scores", 2 * seq * seq * dim)  # summed over heads
        report.add("attention.values", 2 * seq * seq * dim)
        report.add("attention.proj", 2 * seq * dim * dim)
        if ffn == "mlp":
            report.add("mlp", 2 * seq * dim * hidden * 2)
        else:  # SwiGLU: one dim -> 2*hidden matmul, one hidden -> dim matmul
            report.add("mlp", 2 * seq * dim * 2 * hidden + 2 * seq * hidden * dim)
    layers = len(_selected_layers(encoder["intermediate_layers"], blocks))
    report.add("output_projections", layers * _conv(report.rows, report.cols, dim, encoder["dim_out"]))


def count_flops(model_config: dict, height: int, width: int, resolution_level: int = 9,
                num_tokens: int | None = None, mode: str = "completion",
                depth_tokens: int | None = None) -> FlopReport:
    """FLOPs of one (height x width) frame through the network of `model_config`.

    mode 'completion' embeds the depth; `depth_tokens` is how many depth tokens enter the
    sequence: all rows*cols by default (the static-shape, key-masked graph), fewer for the
    token-dropping path. mode 'monocular' has no depth tokens.
    """
    if mode not in ("completion", "monocular"):
        raise ValueError(f"mode must be 'completion' or 'monocular', got {mode!r}")
    if num_tokens is None:
        num_tokens = tokens_for_level(resolution_level,
                                      model_config.get("num_tokens_range", (1200, 3600)))
    rows, cols = token_grid(height, width, num_tokens)
    report = FlopReport(rows=rows, cols=cols, sequence=0)
    if mode == "monocular":
        depth_tokens = None
    elif depth_tokens is None:
        depth_tokens = report.tokens
    elif not 0 <= depth_tokens <= report.tokens:
        raise ValueError(f"depth_tokens must be in 0..{report.tokens}, got {depth_tokens}")
    _encoder_flops(report, model_config["encoder"], depth_tokens)
    report.add("neck", conv_stack_flops(model_config["neck"], rows, cols))
    for head in ("depth_head", "mask_head"):
        if model_config.get(head) is not None:
            report.add(head, conv_stack_flops(model_config[head], rows, cols))
    return report
