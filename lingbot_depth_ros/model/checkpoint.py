"""Checkpoint files in the official format: ``{"model_config": dict, "model": state_dict}``.
Loading is strict: missing, unexpected (but TOLERATED_UNEXPECTED) and mis-shaped keys fail in
one ModelFileError that counts and names them."""

from __future__ import annotations

import copy
import hashlib
import io
import logging
import os
from pathlib import Path

import torch

from ..core.errors import ModelFileError
from .network import LingBotDepth, build_model

log = logging.getLogger(__name__)

#: state-dict key prefixes that official checkpoints may hold but no inference module uses
TOLERATED_UNEXPECTED = {
    # The reference accepts normal_head/scale_head configs but builds no module for them;
    # weights saved from a training variant that had them do not change depth or mask.
    "normal_head.": "normal head (not built by the reference; not part of depth completion)",
    "scale_head.": "metric scale head (not built by the reference; unused at inference)",
    # Only exists when training with image-token masking (img_mask_ratio > 0).
    "encoder.mask_token_mae": "MAE image mask token (training only)",
}
_LISTED = 8  # names shown per problem kind; the count is always given


def load_checkpoint(path: str | os.PathLike, map_location="cpu") -> LingBotDepth:
    """Load an official-format checkpoint into a LingBotDepth in eval mode."""
    path = Path(path)
    checkpoint = _read(path, map_location)
    try:
        with torch.device("meta"):  # no random init of weights the file replaces anyway
            model = build_model(checkpoint["model_config"])
    except ModelFileError as exc:  # the config's schema error, with the file it came from
        raise ModelFileError(f"checkpoint {path}: {exc}") from exc
    _load_state(model, checkpoint["model"], str(path))
    model.checkpoint_path = path
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)
    return model.eval()


def load_weights(model: LingBotDepth, path: str | os.PathLike) -> None:
    """Copy a checkpoint's weights into `model`, with load_checkpoint's checks; its parameters
    stay the same objects (an optimizer holding them keeps working: `--resume`)."""
    _load_state(model, _read(Path(path), "cpu")["model"], str(path), assign=False)


def _read(path: Path, map_location) -> dict:
    """The checkpoint dict, its format checked: ModelFileError for anything else."""
    if not path.exists():
        raise ModelFileError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise ModelFileError(f"checkpoint {path} is not a file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch.load fails in many ways on bad bytes; all mean "corrupt"
        raise ModelFileError(
            f"checkpoint {path} is truncated, corrupt or not a torch checkpoint: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
    if not isinstance(checkpoint, dict) or not {"model_config", "model"} <= set(checkpoint):
        found = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ModelFileError(
            f"checkpoint {path} is not in the official format: need keys 'model_config' and "
            f"'model', found {found}")
    state = checkpoint["model"]
    if not isinstance(state, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelFileError(f"checkpoint {path}: 'model' is not a state dict of named tensors")
    return checkpoint


def _load_state(model: LingBotDepth, state: dict, source: str, assign: bool = True) -> None:
    expected = model.state_dict()
    tolerated = {k for k in state if k not in expected and _tolerated(k)}
    if tolerated:
        log.info("%s: ignoring %d unused keys: %s", source, len(tolerated),
                 "; ".join(sorted({TOLERATED_UNEXPECTED[_tolerated(k)] for k in tolerated})))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected) - tolerated)
    wrong_shape = sorted(f"{k} (file {list(state[k].shape)}, model {list(v.shape)})"
                         for k, v in expected.items() if k in state and state[k].shape != v.shape)
    kind_differs = {k for k, v in expected.items() if k in state and _kind(state[k]) != _kind(v)}
    wrong_kind = sorted(f"{k} ({_kind(state[k])})" for k in kind_differs)
    not_finite = sorted(k for k in state if k in expected and k not in kind_differs
                        and state[k].is_floating_point() and not _finite(state[k]))
    # the input normalisation divides by image_std: a zero turns every output into NaN
    not_positive = sorted(k for k in state if k.endswith(_DIVISORS) and k in expected
                          and k not in kind_differs and k not in not_finite
                          and state[k].shape == expected[k].shape and bool((state[k] <= 0).any()))
    problems = [_describe(names, what) for names, what in (
        (missing, "missing"), (unexpected, "unexpected"), (wrong_shape, "with the wrong shape"),
        (wrong_kind, "not dense floating-point"), (not_finite, "with NaN, infinite or overflowing values"),
        (not_positive, "with zero or negative values (divisors of the input normalisation)"))
        if names]
    if problems:
        error = ModelFileError(
            f"checkpoint {source} does not match its model_config: {'; '.join(problems)}")
        # The message lists the first few of each kind; the full lists go to the log and
        # stay on the exception for callers.
        error.missing, error.unexpected, error.wrong_shape = missing, unexpected, wrong_shape
        log.error("%s: missing %s; unexpected %s; wrong shape %s", source, missing, unexpected,
                  wrong_shape)
        raise error
    # float32 weights whatever the file holds (bf16/fp16 files run through autocast like fp32)
    weights = {k: v.float() if v.is_floating_point() else v
               for k, v in state.items() if k not in tolerated}
    model.load_state_dict(weights, strict=True, assign=assign)


#: buffers the network divides by
_DIVISORS = ("image_std",)


def _kind(tensor: torch.Tensor) -> str:
    """What a weight must be whatever its precision: dense (strided) floating point."""
    if tensor.layout != torch.strided:
        return str(tensor.layout).replace("torch.", "")
    return "float" if tensor.is_floating_point() else str(tensor.dtype).replace("torch.", "")


def _finite(tensor: torch.Tensor) -> bool:
    # One float32 sum per tensor: NaN and inf propagate into it, at a tenth of the cost of an
    # element-wise isfinite; only values near float32's limit (garbage too) could overflow it.
    return bool(torch.isfinite(tensor.sum(dtype=torch.float32)))


def _tolerated(key: str) -> str | None:
    return next((prefix for prefix in TOLERATED_UNEXPECTED if key.startswith(prefix)), None)


def _describe(names: list[str], what: str) -> str:
    shown = ", ".join(names[:_LISTED]) + (", ..." if len(names) > _LISTED else "")
    return f"{len(names)} key{'s' if len(names) != 1 else ''} {what}: {shown}"


def save_checkpoint(model: LingBotDepth, path: str | os.PathLike) -> Path:
    """Write `model` in the official format (atomically: a crash leaves no half file)."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {"model_config": copy.deepcopy(model.model_config), "model": state}
    tmp = path.with_name(path.name + ".partial")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def model_sha256(model: LingBotDepth) -> str:
    """Identity of the weights: the checkpoint file's SHA-256 when the model was loaded from
    one (and it is unchanged), else the SHA-256 of the serialised state dict."""
    cached = getattr(model, "_sha256", None)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    path = getattr(model, "checkpoint_path", None)
    if path is not None and Path(path).is_file():
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    else:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, buffer)
        digest.update(buffer.getvalue())
    model._sha256 = digest.hexdigest()
    return model._sha256


def tiny_config(embed_dim: int = 64, depth: int = 3, num_heads: int = 4,
                intermediate_layers: int = 2, decoder_dims=(32, 16, 8, 8, 4),
                mask_head: bool = True) -> dict:
    """A small model_config in the official layout, for tests and benchmarks (sizes in the
    encoder key ``backbone_kwargs``, this package's extension)."""
    dims = list(decoder_dims)
    stack = dict(resamplers="conv_transpose", dim_times_res_block_hidden=1, num_res_blocks=1,
                 res_block_in_norm="layer_norm", res_block_hidden_norm="layer_norm",
                 activation="relu")
    head = dict(stack, dim_in=[None] * len(dims), dim_res_blocks=dims,
                dim_out=[None] * (len(dims) - 1) + [1])
    config = {
        "encoder": {
            "backbone": "dinov2_vits14",
            "backbone_kwargs": {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads},
            "intermediate_layers": intermediate_layers, "dim_out": embed_dim,
            "img_depth_fuse_mode": "cat_token", "depth_emb_mode": "conv_1c",
            "depth_mask_ratio": 0.6, "img_mask_ratio": 0.0, "strict": False,
            "ignore_layers": [], "in_chans": 3,
        },
        "neck": dict(stack, dim_in=[embed_dim + 2] + [2] * (len(dims) - 1), dim_res_blocks=dims,
                     dim_out=[None] * len(dims)),
        "depth_head": head,
        "remap_output": "exp", "remap_depth_in": "log", "remap_depth_out": "exp",
        "num_tokens_range": [1200, 3600],
    }
    if mask_head:
        config["mask_head"] = copy.deepcopy(head)
    return config
