"""Model-file subcommands: `export-onnx` (and `build-engine`, `download`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .argtypes import (bounded_float, bounded_int, output_dir, output_file, positive_int,
                       side_px)

#: --num-tokens limit: under 3x the official finest budget (3600), and what a big machine
#: can still hold (attention memory grows with the square of the token count). The same
#: bound as model/config_schema.py's (a test holds them equal); not imported from there
#: because importing the model package loads torch, and parsing arguments must not.
MAX_NUM_TOKENS = 10_000
#: ViT-L's heads, for the attention memory estimate in the --num-tokens error
_ESTIMATE_HEADS = 16


def register(subparsers) -> None:
    _register_export_onnx(subparsers)
    _register_build_engine(subparsers)
    _register_download(subparsers)


# ---- export-onnx -------------------------------------------------------------------------

def _register_export_onnx(subparsers) -> None:
    parser = subparsers.add_parser(
        "export-onnx", help="export a checkpoint as a static-shape ONNX graph",
        description="Export a LingBot-Depth checkpoint for one frame size. The graph takes "
                    "'rgb' uint8 (1,H,W,3) and 'depth' float32 (1,H,W) metres (NaN/0 = none) "
                    "and returns 'depth_out' (1,H,W) metres and 'mask' (1,H,W) probability; "
                    "resizing, normalisation and token masking are inside the graph. With "
                    "--max-batch N the first axis is a dynamic batch of 1..N frames.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="official-format model.pt")
    parser.add_argument("--height", required=True, type=side_px, help="frame height (px)")
    parser.add_argument("--width", required=True, type=side_px, help="frame width (px)")
    parser.add_argument("--resolution-level", type=int, default=9, choices=range(10),
                        metavar="0..9", help="token budget, 9 = finest (default: %(default)s)")
    parser.add_argument("--num-tokens", type=_num_tokens,
                        help="explicit token budget (overrides --resolution-level)")
    parser.add_argument("--mode", default="completion", choices=("completion", "monocular"),
                        help="completion uses the depth input; monocular ignores it")
    parser.add_argument("--opset", type=_opset, default=18, help="ONNX opset, >= 17 (default: 18)")
    parser.add_argument("--max-batch", type=bounded_int(1, 64, "a batch size"), default=1,
                        help="largest batch of frames one run takes (a camera rig: its number "
                             "of cameras); 1 keeps the batch axis fixed (default: %(default)s)")
    parser.add_argument("--out", required=True, type=output_file, help="output .onnx file")
    parser.set_defaults(func=_run_export_onnx)


def _num_tokens(text: str) -> int:
    value = positive_int(text)
    if value > MAX_NUM_TOKENS:
        gb = value ** 2 * _ESTIMATE_HEADS * 4 / 1e9
        raise argparse.ArgumentTypeError(
            f"must be at most {MAX_NUM_TOKENS}, got {text}: attention over {value} tokens "
            f"needs at least {gb:,.0f} GB per layer ({_ESTIMATE_HEADS} heads, float32)")
    return value


def _opset(text: str) -> int:
    from torch.onnx._constants import ONNX_MAX_OPSET  # the newest this torch can write

    return bounded_int(17, ONNX_MAX_OPSET, "an ONNX opset this torch writes")(text)


def _run_export_onnx(args: argparse.Namespace) -> int:
    import onnx

    from ..core.io import OutputCommit
    from ..model import load_checkpoint
    from ..model.export import export_onnx

    model = load_checkpoint(args.checkpoint)
    with OutputCommit() as commit:
        # exported into OUT.partial/ under its final name (an external weights file refers
        # to it by name), checked, then moved into place
        staging = commit.stage_folder(args.out)
        staged = export_onnx(model, staging / args.out.name, args.height, args.width,
                             resolution_level=args.resolution_level, num_tokens=args.num_tokens,
                             mode=args.mode, opset=args.opset, max_batch=args.max_batch)
        onnx.checker.check_model(str(staged))
        meta = {p.key: p.value
                for p in onnx.load(str(staged), load_external_data=False).metadata_props}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {args.width}x{args.height} "
          f"frames, {meta['lingbot.cols']}x{meta['lingbot.rows']} tokens, {args.mode}, "
          f"batches of up to {args.max_batch}, opset {args.opset}, "
          f"checkpoint sha256 {meta['lingbot.checkpoint_sha256'][:12]}")
    return 0


# ---- build-engine, download ----------------------------------------------------------------

def _register_build_engine(subparsers) -> None:
    parser = subparsers.add_parser(
        "build-engine", help="build a TensorRT engine from an exported ONNX graph",
        description="Build a TensorRT plan for this GPU from a graph written by export-onnx. "
                    "A JSON sidecar (OUT.json) records the graph and checkpoint hashes, size, "
                    "token grid, precision, TensorRT version and GPU the plan is tied to.")
    parser.add_argument("--onnx", required=True, type=Path, help="graph from export-onnx")
    precision = parser.add_mutually_exclusive_group(required=True)
    for name, text in (("fp16", "FP16 kernels where faster"), ("bf16", "BF16 kernels (as the "
                       "reference runs); Ampere or newer"), ("fp32", "FP32 only, no TF32")):
        precision.add_argument(f"--{name}", dest="precision", action="store_const", const=name,
                               help=text)
    parser.add_argument("--out", required=True, type=output_file, help="output .engine file")
    parser.add_argument("--workspace-gb", type=bounded_float(0.0, 1024.0, "GiB", low_open=True),
                        default=4.0,
                        help="builder scratch memory limit in GiB (default: %(default)s)")
    parser.add_argument("--timing-cache", type=Path,
                        help="tactic timing cache to load and update (speeds up rebuilds)")
    parser.add_argument("--device", type=bounded_int(0, 1023, "a CUDA device index"), default=0,
                        help="CUDA device index (default: 0)")
    parser.set_defaults(func=_run_build_engine)


def _run_build_engine(args: argparse.Namespace) -> int:
    from ..core.io import OutputCommit
    from ..engines.trt_build import build_engine

    with OutputCommit() as commit:
        # the plan and its OUT.json sidecar are built in OUT.partial/, then moved out
        staging = commit.stage_folder(args.out)
        key = build_engine(args.onnx, staging / args.out.name, precision=args.precision,
                           workspace_gb=args.workspace_gb, timing_cache=args.timing_cache,
                           device=args.device)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB): {key.precision}, "
          f"{key.width}x{key.height} frames, {key.cols}x{key.rows} tokens, {key.mode}, "
          f"TensorRT {key.tensorrt_version} on {key.gpu_name}")
    return 0


#: the published LingBot-Depth weights (each repository holds one model.pt)
OFFICIAL_MODELS = ("robbyant/lingbot-depth-pretrain-vitl-14",
                   "robbyant/lingbot-depth-postrain-dc-vitl14")
CHECKPOINT_NAME = "model.pt"


def _register_download(subparsers) -> None:
    parser = subparsers.add_parser(
        "download", help="fetch official weights from the Hugging Face hub and check them",
        description="Download an official checkpoint (needs internet and the optional "
                    "huggingface_hub package), then load it to check it and print its SHA-256 "
                    "and configuration.")
    parser.add_argument("--model", required=True, choices=OFFICIAL_MODELS,
                        help="pretrain (general) or postrain-dc (depth completion fine-tune)")
    parser.add_argument("--out", required=True, type=output_dir, help="directory for model.pt")
    parser.set_defaults(func=_run_download)


def _run_download(args: argparse.Namespace) -> int:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        print("lingbot-depth download: needs the huggingface_hub package: "
              "pip install 'lingbot_depth_ros[download]' (or pip install huggingface_hub)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        path = Path(hf_hub_download(repo_id=args.model, filename=CHECKPOINT_NAME,
                                    local_dir=args.out))
    except Exception as exc:  # network, auth and hub errors come in many classes
        print(f"lingbot-depth download: fetching {args.model}/{CHECKPOINT_NAME} failed: "
              f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for line in describe_checkpoint(path):
        print(line)
    return 0


def describe_checkpoint(path: Path) -> list[str]:
    """Load a checkpoint (ModelFileError if it does not) and summarise it for a person."""
    from ..engines.trt_cache import file_sha256
    from ..model import load_checkpoint
    from ..model.vit import backbone_spec

    model = load_checkpoint(path)
    config = model.model_config
    encoder = config["encoder"]
    spec = backbone_spec(encoder["backbone"], encoder.get("backbone_kwargs"))
    heads = [h.replace("_head", "") for h in ("depth_head", "mask_head") if config.get(h)]
    params = sum(p.numel() for p in model.parameters())
    low, high = model.num_tokens_range
    return [
        f"{path}: loads cleanly, sha256 {file_sha256(path)}",
        f"  encoder {encoder['backbone']} ({spec['embed_dim']} wide, {spec['depth']} blocks, "
        f"{spec['num_heads']} heads), layers {encoder['intermediate_layers']} -> "
        f"{encoder['dim_out']} channels",
        f"  heads {', '.join(heads)}; depth remap {model.remap_depth_in} -> "
        f"{model.remap_depth_out}; tokens {low}..{high}; {params / 1e6:.1f} M parameters",
    ]
