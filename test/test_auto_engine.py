"""``engine: auto`` on this machine: what it picks from the files given, and why it skipped
each better engine (the selection log and the log records)."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.core.frame import SourceMask
from lingbot_depth_ros.engines import create_engine

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAVE_CUDA = torch.cuda.is_available()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
cpu_only = pytest.mark.skipif(HAVE_TENSORRT or HAVE_CUDA,
                              reason="pins the choice on a machine without tensorrt and CUDA")


@pytest.fixture(scope="module")
def tiny_files(tmp_path_factory):
    """A small random model in the official format and its 640x480 ONNX export."""
    from lingbot_depth_ros.model import build_model, save_checkpoint, tiny_config
    from lingbot_depth_ros.model.export import export_onnx

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("auto")
    model = build_model(tiny_config())
    checkpoint = save_checkpoint(model, folder / "model.pt")
    onnx = export_onnx(model, folder / "model.onnx", 480, 640, num_tokens=300)
    return checkpoint, onnx


@cpu_only
def test_onnx_file_on_cpu_gives_onnxruntime_cpu(tiny_files, caplog):
    _, onnx = tiny_files
    with caplog.at_level(logging.INFO, logger="lingbot_depth_ros.engines.auto"):
        engine = create_engine("auto", onnx=str(onnx), refine_measured=False,
                               resolution_level=3)  # a torch-only option: ignored here
    assert engine.name == "onnxruntime" and engine.providers == ["CPUExecutionProvider"]
    log = engine.selection_log
    assert [line.split(":")[0] for line in log] == [
        "tensorrt", "onnxruntime(CUDA)", "torch(CUDA)", "onnxruntime(CPU)"]
    assert log[0].startswith("tensorrt: skipped, not installed")
    assert log[1].startswith("onnxruntime(CUDA): skipped, CUDAExecutionProvider not available")
    assert log[2] == "torch(CUDA): skipped, no checkpoint given"
    assert log[3] == "onnxruntime(CPU): selected"
    messages = [r.getMessage() for r in caplog.records if r.name == "lingbot_depth_ros.engines.auto"]
    assert any("chose onnxruntime(CPU)" in m for m in messages)
    assert any("tensorrt: skipped, not installed" in m for m in messages)

    frame = load_capture(EXAMPLES / "3")
    result = engine.complete(frame)
    assert result.engine == "onnxruntime"
    assert np.array_equal(result.source == SourceMask.MEASURED, np.isfinite(frame.depth))


@cpu_only
def test_checkpoint_alone_on_cpu_falls_back_to_guided(tiny_files):
    checkpoint, _ = tiny_files
    engine = create_engine("auto", checkpoint=str(checkpoint))
    assert engine.name == "guided"
    log = engine.selection_log
    assert log[0] == "tensorrt: skipped, no ONNX or engine file given"
    assert log[2].startswith("torch(CUDA): skipped, no CUDA device")
    assert log[-1] == "guided: selected"


def test_no_model_files_give_guided_with_reasons(caplog):
    with caplog.at_level(logging.INFO, logger="lingbot_depth_ros.engines.auto"):
        engine = create_engine("auto", refine_measured=True, precision="bf16")
    assert engine.name == "guided" and engine.refine_measured
    assert engine.selection_log == [
        "tensorrt: skipped, no ONNX or engine file given",
        "onnxruntime(CUDA): skipped, no ONNX file given",
        "torch(CUDA): skipped, no checkpoint given",
        "onnxruntime(CPU): skipped, no ONNX file given",
        "guided: selected",
    ]
    assert any("chose guided" in r.getMessage() for r in caplog.records)
    result = engine.complete(load_capture(EXAMPLES / "0"))
    assert result.engine == "guided" and result.filled_fraction > 0


def test_device_cpu_skips_every_cuda_engine(tiny_files):
    _, onnx = tiny_files
    engine = create_engine("auto", onnx=str(onnx), device="cpu")
    assert engine.name == "onnxruntime" and engine.providers == ["CPUExecutionProvider"]
    assert engine.selection_log[:3] == [
        "tensorrt: skipped, device 'cpu' was requested",
        "onnxruntime(CUDA): skipped, device 'cpu' was requested",
        "torch(CUDA): skipped, no checkpoint given",
    ]


def test_a_broken_model_file_is_an_error_not_a_fallback(tmp_path):
    missing = tmp_path / "missing.onnx"
    with pytest.raises(ModelFileError, match="missing.onnx"):
        create_engine("auto", onnx=str(missing), device="cpu")


@pytest.mark.skipif(not (HAVE_TENSORRT and HAVE_CUDA),
                    reason="needs the tensorrt package and a CUDA GPU")
def test_onnx_file_with_tensorrt_and_gpu_gives_tensorrt(tiny_files, tmp_path):
    _, onnx = tiny_files
    engine = create_engine("auto", onnx=str(onnx), cache_dir=str(tmp_path))
    assert engine.name == "tensorrt" and engine.selection_log == ["tensorrt: selected"]


def test_registry_names_an_option_the_engine_does_not_take():
    from lingbot_depth_ros.core.errors import EngineOptionError
    from lingbot_depth_ros.engines import create_engine

    with pytest.raises(EngineOptionError, match="'onnxruntime' does not take checkpoint"):
        create_engine("onnxruntime", onnx="model.onnx", checkpoint="model.pt")


def test_complete_cli_reports_a_misplaced_model_file(tmp_path, capsys):
    from lingbot_depth_ros.cli import main

    ex = Path(__file__).resolve().parents[1] / "examples" / "3"
    code = main(["complete", "--rgb", str(ex / "rgb.jpg"), "--depth", str(ex / "raw_depth.png"),
                 "--intrinsics", str(ex / "intrinsics.txt"), "--engine", "onnxruntime",
                 "--checkpoint", str(tmp_path / "model.pt"), "--out", str(tmp_path / "o")])
    assert code == 2
    assert "does not take checkpoint" in capsys.readouterr().err
