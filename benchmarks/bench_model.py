"""ONNX Runtime (CPU) vs eager PyTorch (CPU) on the same small LingBot-Depth configuration.

Both engines complete the same real 640x480 capture (examples/3, which has real holes)
through the engine interface, so each time includes pre- and post-processing. Runs are
interleaved (torch, ORT, torch, ...) so that load from other processes hits both alike, and
each runtime gets the same number of intra-op threads (1, then every core by default).
Target (issue 3): ONNX Runtime at least 1.5x faster than eager PyTorch. The ONNX Runtime
engine runs the graph rewritten in memory for its CPU session (engines/ort_cpu.py: attention
fused, masked tokens dropped, NCHWc layout off for narrow convolutions); the same file run as
exported with ORT's defaults is timed alongside for comparison ("plain graph").

    ./run.sh setup && python benchmarks/bench_model.py [--levels 0 9] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from lingbot_depth_ros.core.captures import load_capture  # noqa: E402
from lingbot_depth_ros.engines import create_engine  # noqa: E402
from lingbot_depth_ros.model import (build_model, load_checkpoint, save_checkpoint,  # noqa: E402
                                     tiny_config)
from lingbot_depth_ros.model.export import export_onnx  # noqa: E402

TARGET_RATIO = 1.5


def time_engine(engine, frame) -> tuple[float, float]:
    """(wall ms of complete(), its 'inference' stage ms) for one frame."""
    t0 = time.perf_counter()
    result = engine.complete(frame)
    return (time.perf_counter() - t0) * 1e3, result.timings_ms["inference"]


def bench(checkpoint: Path, onnx_path: Path, frame, level: int, threads: int,
          repeats: int) -> dict[str, tuple[float, float]]:
    """Median (wall ms, inference ms) per engine."""
    torch.set_num_threads(threads)
    engines = {
        "torch": create_engine("torch", checkpoint=checkpoint, device="cpu",
                               resolution_level=level, precision="fp32"),
        "onnxruntime": create_engine("onnxruntime", onnx=onnx_path, providers="cpu",
                                     threads=threads),
        "onnxruntime plain": create_engine("onnxruntime", onnx=onnx_path, providers="cpu",
                                           threads=threads, fuse_attention=False),
    }
    for engine in engines.values():
        engine.complete(frame)  # warm-up: allocations, ORT's first-run kernel choices
    samples = {name: [] for name in engines}
    for _ in range(repeats):
        for name, engine in engines.items():
            samples[name].append(time_engine(engine, frame))
    return {name: (statistics.median(s[0] for s in runs), statistics.median(s[1] for s in runs))
            for name, runs in samples.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, nargs="+", default=[0, 9])
    parser.add_argument("--threads", type=int, nargs="+",
                        default=sorted({1, os.cpu_count() or 1}),
                        help="intra-op threads, the same for both runtimes (default: 1 and all)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--capture", type=Path, default=REPO / "examples" / "3")
    args = parser.parse_args()
    frame = load_capture(args.capture)
    torch.manual_seed(0)
    config = tiny_config()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
        checkpoint = save_checkpoint(build_model(config), Path(tmp) / "tiny.pt")
        model = load_checkpoint(checkpoint)
        for level in args.levels:
            onnx_path = export_onnx(model, Path(tmp) / f"l{level}.onnx", frame.height,
                                    frame.width, resolution_level=level)
            grid = "x".join(map(str, reversed(model.grid(frame.height, frame.width, level))))
            for threads in args.threads:
                rows.append((level, grid, threads,
                             bench(checkpoint, onnx_path, frame, level, threads, args.repeats)))
    print_table(config, frame, args, rows)
    return 0


def print_table(config: dict, frame, args, rows) -> None:
    import onnxruntime

    enc = config["encoder"]["backbone_kwargs"]
    print(f"\nsmall config: ViT width {enc['embed_dim']}, {enc['depth']} blocks, "
          f"{enc['num_heads']} heads, decoder {config['neck']['dim_res_blocks']}; "
          f"{frame.width}x{frame.height} capture {args.capture.name}; torch {torch.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; median of {args.repeats}\n")
    print("| level | tokens (cols x rows) | threads | eager PyTorch ms (inference) "
          "| ONNX Runtime ms (inference) | speed-up | target >= 1.5x "
          "| ORT plain graph ms (inference) | its speed-up |")
    print("|---|---|---|---|---|---|---|---|---|")
    for level, grid, threads, medians in rows:
        (t_all, t_inf), (o_all, o_inf) = medians["torch"], medians["onnxruntime"]
        p_all, p_inf = medians["onnxruntime plain"]
        ratio = t_all / o_all
        print(f"| {level} | {grid} | {threads} | {t_all:.0f} ({t_inf:.0f}) "
              f"| {o_all:.0f} ({o_inf:.0f}) | {ratio:.2f}x "
              f"| {'met' if ratio >= TARGET_RATIO else 'NOT met'} "
              f"| {p_all:.0f} ({p_inf:.0f}) | {t_all / p_all:.2f}x |")


if __name__ == "__main__":
    sys.exit(main())
