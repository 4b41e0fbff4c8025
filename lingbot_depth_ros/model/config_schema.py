"""The schema of a checkpoint's ``model_config``, checked before any module or tensor is built:
a corrupt or hand-edited config (a negative width, a float block count, a layer index past the
backbone, a head fed the wrong number of channels) becomes one ModelFileError naming the key,
its value and what is allowed, instead of an error from deep inside torch.

Unknown keys are errors, as unknown state-dict keys are (docs/bad-input.md); the keys that
official configs hold without any effect at inference are listed and accepted with any value."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.errors import ModelFileError

#: backbone name -> width, blocks, heads, FFN kind (DINOv2, patch 14)
BACKBONES = {
    "dinov2_vits14": dict(embed_dim=384, depth=12, num_heads=6, ffn="mlp"),
    "dinov2_vitb14": dict(embed_dim=768, depth=12, num_heads=12, ffn="mlp"),
    "dinov2_vitl14": dict(embed_dim=1024, depth=24, num_heads=16, ffn="mlp"),
    "dinov2_vitg14": dict(embed_dim=1536, depth=40, num_heads=24, ffn="swiglu"),
}
FFN_KINDS = ("mlp", "swiglu")
NORMS = ("layer_norm", "group_norm", "instance_norm", "none")
ACTIVATIONS = ("relu", "leaky_relu", "silu", "elu")
RESAMPLERS = ("conv_transpose", "pixel_shuffle", "nearest", "bilinear")
REMAPS_IN = ("log", "linear")
REMAPS_OUT = ("exp", "linear")

# Ranges: the largest published value (ViT-g) with room to spare; beyond them a config
# describes no network that fits a machine, and is taken as corrupt.
MAX_WIDTH = 8192  #: ViT width and decoder channels (ViT-g: 1536)
MAX_BLOCKS = 64  #: ViT blocks (ViT-g: 40)
MAX_HEADS = 128  #: attention heads (ViT-g: 24)
MAX_LEVELS = 6  #: decoder levels (official: 5); each level doubles the map's side
MAX_RES_BLOCKS = 16  #: residual blocks per decoder level (official: 0..2)
MAX_HIDDEN_TIMES = 8  #: residual block hidden width over its width (official: 1..2)
#: token budget bound, as `export-onnx --num-tokens` (under 3x the official 3600)
MAX_NUM_TOKENS = 10_000
#: channels per group of 'group_norm' (GroupNorm(C // 32, C))
GROUP_NORM_CHANNELS = 32

#: keys the reference's training reads and inference never does: accepted with any value
ENCODER_TRAINING_KEYS = ("depth_mask_ratio", "img_mask_ratio", "strict", "ignore_layers")
ENCODER_KEYS = ("backbone", "intermediate_layers", "dim_out", "img_depth_fuse_mode",
                "depth_emb_mode", "backbone_kwargs", "in_chans") + ENCODER_TRAINING_KEYS
STACK_REQUIRED = ("dim_in", "dim_res_blocks", "dim_out", "resamplers")
STACK_OPTIONAL = ("dim_times_res_block_hidden", "num_res_blocks", "res_block_in_norm",
                  "res_block_hidden_norm", "activation")
#: top-level keys of no effect at inference: normal_head and scale_head build no module in
#: the reference; remap_output is the training's name of the output remap
UNUSED_TOP_LEVEL = ("normal_head", "scale_head", "remap_output")
TOP_LEVEL_KEYS = ("encoder", "neck", "depth_head", "mask_head", "remap_depth_in",
                  "remap_depth_out", "num_tokens_range") + UNUSED_TOP_LEVEL
UV_CHANNELS = 2  #: view-plane (u, v) planes the decoder gets at every level


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def refuse(key: str, value, allowed: str) -> ModelFileError:
    return ModelFileError(f"model_config: {key} is {_show(value)}; {allowed}")


def is_int(value) -> bool:
    """An int, not a bool (True is an int to Python, never a size to us) nor a float."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(key: str, value, low: int, high: int, what: str = "an integer") -> int:
    if not is_int(value) or not low <= value <= high:
        raise refuse(key, value, f"must be {what} in {low}..{high}")
    return value


def check_choice(key: str, value, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise refuse(key, value, f"must be one of {', '.join(map(repr, choices))}")
    return value


def check_keys(key: str, section, required: Sequence[str], known: Sequence[str]) -> dict:
    """`section` is a dict holding every required key and no key outside `known`."""
    if not isinstance(section, dict):
        raise refuse(key or "the whole config", section, "must be a mapping of options")
    missing = [k for k in required if k not in section]
    if missing:
        raise ModelFileError(f"model_config: {key + '.' if key else ''}{missing[0]} is missing "
                             f"(required: {', '.join(required)})")
    unknown = sorted(str(k) for k in section if k not in known)
    if unknown:
        where = f"{key} has" if key else "has top-level"
        raise ModelFileError(f"model_config: {where} unknown key {unknown[0]!r} (known: "
                             f"{', '.join(known)})")
    return section


def per_level(key: str, value, levels: int, check) -> list:
    """A list of exactly `levels` entries, or one value for every level; `check(key, entry)`
    checks (and returns) each entry."""
    if isinstance(value, (list, tuple)):
        if len(value) != levels:
            raise refuse(key, value, f"must have {levels} entries, one per level (or be one "
                                     "value for all)")
        return [check(f"{key}[{i}]", entry) for i, entry in enumerate(value)]
    return [check(key, value)] * levels


def validate_model_config(config) -> None:
    """Raise ModelFileError naming the first key of `config` that describes no network we
    can build; nothing is built or allocated."""
    check_keys("", config, ("encoder", "neck", "depth_head"), TOP_LEVEL_KEYS)
    check_choice("remap_depth_in", config.get("remap_depth_in", "log"), REMAPS_IN)
    check_choice("remap_depth_out", config.get("remap_depth_out", "exp"), REMAPS_OUT)
    check_token_range(config.get("num_tokens_range", [1200, 3600]))
    width = check_encoder(config["encoder"])
    level_inputs = [width + UV_CHANNELS] + [UV_CHANNELS] * (MAX_LEVELS - 1)
    neck_out = check_stack("neck", config["neck"], level_inputs, "the encoder features + UV")
    for head in ("depth_head", "mask_head"):
        if head == "mask_head" and config.get(head) in (None, {}):
            continue  # absent, None or empty: no mask head (as the network reads it)
        outputs = check_stack(head, config[head], neck_out, "the neck's outputs")
        if outputs[-1] != 1:
            raise refuse(f"{head}.dim_out", config[head]["dim_out"],
                         f"its last level must give 1 channel, not {outputs[-1]}")


def check_token_range(value) -> None:
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(is_int(v) and 1 <= v <= MAX_NUM_TOKENS for v in value)
            or value[0] >= value[1]):
        raise refuse("num_tokens_range", value, "must be two increasing integers "
                                                f"[low, high] in 1..{MAX_NUM_TOKENS}")


def backbone_spec(encoder: dict) -> dict:
    """Width, blocks, heads and FFN of the encoder's backbone, with the package's
    ``backbone_kwargs`` overrides (small test models), each checked."""
    name = check_choice("encoder.backbone", encoder["backbone"], tuple(BACKBONES))
    spec = dict(BACKBONES[name])
    overrides = encoder.get("backbone_kwargs") or {}
    check_keys("encoder.backbone_kwargs", overrides, (), tuple(spec))
    spec.update(overrides)
    key = "encoder.backbone_kwargs."
    check_int(key + "embed_dim", spec["embed_dim"], 1, MAX_WIDTH)
    check_int(key + "depth", spec["depth"], 1, MAX_BLOCKS)
    check_int(key + "num_heads", spec["num_heads"], 1, MAX_HEADS)
    check_choice(key + "ffn", spec["ffn"], FFN_KINDS)
    if spec["embed_dim"] % spec["num_heads"]:
        raise refuse(key + "num_heads", spec["num_heads"],
                     f"must divide the width {spec['embed_dim']} (equal heads)")
    return spec


def check_encoder(encoder) -> int:
    """The encoder's keys; returns its output width."""
    check_keys("encoder", encoder, ENCODER_KEYS[:5], ENCODER_KEYS)
    spec = backbone_spec(encoder)
    width, blocks = spec["embed_dim"], spec["depth"]
    check_choice("encoder.img_depth_fuse_mode", encoder["img_depth_fuse_mode"], ("cat_token",))
    check_choice("encoder.depth_emb_mode", encoder["depth_emb_mode"], ("conv_1c",))
    if encoder.get("in_chans", 3) != 3 or not is_int(encoder.get("in_chans", 3)):
        raise refuse("encoder.in_chans", encoder["in_chans"], "must be 3 (RGB)")
    check_layers(encoder["intermediate_layers"], blocks)
    dim_out = encoder["dim_out"]
    if not is_int(dim_out) or dim_out != width:
        raise refuse("encoder.dim_out", dim_out,
                     f"must equal the backbone width {width} (the class token is added to the "
                     "projected features)")
    return width


def check_layers(layers, blocks: int) -> None:
    """intermediate_layers: how many last blocks, or distinct block indices."""
    key = "encoder.intermediate_layers"
    if is_int(layers):
        check_int(key, layers, 1, blocks, "a count of last blocks")
        return
    if (not isinstance(layers, (list, tuple)) or not layers
            or not all(is_int(i) and 0 <= i < blocks for i in layers)
            or len(set(layers)) != len(layers)):
        raise refuse(key, layers, f"must be a count in 1..{blocks} or a list of distinct "
                                  f"block indices in 0..{blocks - 1}")


def check_stack(name: str, stack, fed: list[int], source: str) -> list[int]:
    """A ConvStack's options; `fed` holds the channels its levels receive (from `source`).
    Returns the channels of each level's output."""
    check_keys(name, stack, STACK_REQUIRED, STACK_REQUIRED + STACK_OPTIONAL)
    widths = stack["dim_res_blocks"]
    if (not isinstance(widths, (list, tuple))
            or not 1 <= len(widths) <= min(MAX_LEVELS, len(fed))):
        raise refuse(f"{name}.dim_res_blocks", widths,
                     f"must be a list of 1..{min(MAX_LEVELS, len(fed))} channel counts, one "
                     "per level")
    widths = [check_int(f"{name}.dim_res_blocks[{i}]", c, 1, MAX_WIDTH)
              for i, c in enumerate(widths)]
    levels = len(widths)

    def channels(key, value):
        return None if value is None else check_int(key, value, 1, MAX_WIDTH, "None or an integer")

    ins = per_level(f"{name}.dim_in", stack["dim_in"], levels, channels)
    outs = per_level(f"{name}.dim_out", stack["dim_out"], levels, channels)
    per_level(f"{name}.resamplers", stack["resamplers"], levels - 1,
              lambda key, value: check_choice(key, value, RESAMPLERS))
    per_level(f"{name}.num_res_blocks", stack.get("num_res_blocks", 1), levels,
              lambda key, value: check_int(key, value, 0, MAX_RES_BLOCKS))
    times = check_int(f"{name}.dim_times_res_block_hidden",
                      stack.get("dim_times_res_block_hidden", 1), 1, MAX_HIDDEN_TIMES)
    check_choice(f"{name}.activation", stack.get("activation", "relu"), ACTIVATIONS)
    for norm, scale in (("res_block_in_norm", 1), ("res_block_hidden_norm", times)):
        kind = check_choice(f"{name}.{norm}", stack.get(norm, _NORM_DEFAULTS[norm]), NORMS)
        if kind == "group_norm":
            for width in widths:
                check_group_norm(f"{name}.{norm}", width * scale)
    for level, (c_in, width) in enumerate(zip(ins, widths)):
        wanted = fed[level]
        if (c_in if c_in is not None else width) != wanted:
            key = f"{name}.dim_in[{level}]" if c_in is not None else f"{name}.dim_res_blocks[{level}]"
            raise refuse(key, c_in if c_in is not None else width,
                         f"level {level} receives {wanted} channels from {source}")
    return [c_out if c_out is not None else width for c_out, width in zip(outs, widths)]


_NORM_DEFAULTS = {"res_block_in_norm": "layer_norm", "res_block_hidden_norm": "group_norm"}


def check_group_norm(key: str, channels: int) -> None:
    groups = channels // GROUP_NORM_CHANNELS
    if groups < 1 or channels % groups:
        raise refuse(key, "group_norm", f"needs at least {GROUP_NORM_CHANNELS} channels, "
                                        f"divisible into {GROUP_NORM_CHANNELS}-channel groups; a "
                                        f"level has {channels}")
