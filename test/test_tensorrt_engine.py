"""The tensorrt engine: plan cache keys and sidecars (pure Python, always run), the
unavailable paths (run where tensorrt or CUDA is missing), and the real build + inference
(run only where tensorrt and a CUDA GPU are present)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from lingbot_depth_ros.core.errors import EngineUnavailableError, ModelFileError
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.neural_common import prediction_from_outputs
from lingbot_depth_ros.engines.tensorrt_engine import (DEPTH_INPUT, DEPTH_OUTPUT, MASK_OUTPUT,
                                                       RGB_INPUT, confident_depth)
from lingbot_depth_ros.engines.trt_build import cuda_device_index, import_tensorrt, require_cuda
from lingbot_depth_ros.engines.trt_cache import (
    PlanKey,
    RuntimeIdentity,
    cached_plan_path,
    check_given_plan,
    plan_key,
    read_onnx_info,
    read_sidecar,
    sidecar_path,
    stale_reasons,
    write_sidecar,
)

HAVE_TENSORRT = importlib.util.find_spec("tensorrt") is not None
HAVE_CUDA = torch.cuda.is_available()
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
HERE = RuntimeIdentity(tensorrt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3 (sm_90)")
METADATA = dict(height=480, width=640, rows=30, cols=40, mode="completion",
                checkpoint_sha256="ab" * 32)


def write_onnx(path: Path, **metadata) -> Path:
    """A minimal valid ONNX file carrying `metadata` as lingbot.* props."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph)
    helper.set_model_props(model, {f"lingbot.{k}": str(v) for k, v in metadata.items()})
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_file(tmp_path):
    return write_onnx(tmp_path / "model.onnx", **METADATA)


@pytest.fixture
def cached(tmp_path, onnx_file):
    """A 'built' plan in the cache slot for onnx_file, with its sidecar."""
    info = read_onnx_info(onnx_file)
    key = plan_key(info, "fp16", HERE)
    plan = cached_plan_path(tmp_path / "cache", info, "fp16")
    plan.parent.mkdir()
    plan.write_bytes(b"plan bytes")
    write_sidecar(plan, key, workspace_gb=4.0)
    return plan, key


# --- keys and sidecars (pure Python) -------------------------------------------------------

def test_onnx_info_reads_metadata_and_hash(onnx_file):
    info = read_onnx_info(onnx_file)
    assert (info.height, info.width, info.rows, info.cols) == (480, 640, 30, 40)
    assert info.mode == "completion" and info.checkpoint_sha256 == "ab" * 32
    import hashlib
    assert info.sha256 == hashlib.sha256(onnx_file.read_bytes()).hexdigest()


def test_onnx_without_our_metadata_is_refused(tmp_path):
    bare = write_onnx(tmp_path / "bare.onnx", height=480, width=640)
    with pytest.raises(ModelFileError, match="lingbot.rows.*export-onnx"):
        read_onnx_info(bare)


def test_onnx_that_is_not_onnx_or_missing(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ModelFileError, match="not a readable ONNX"):
        read_onnx_info(junk)
    with pytest.raises(ModelFileError, match="does not exist"):
        read_onnx_info(tmp_path / "absent.onnx")


def test_sidecar_round_trip_and_fresh_plan_is_reused(cached):
    plan, key = cached
    assert sidecar_path(plan).name == plan.name + ".json"
    assert read_sidecar(plan) == key
    assert json.loads(sidecar_path(plan).read_text())["workspace_gb"] == 4.0
    assert stale_reasons(plan, key) == []


@pytest.mark.parametrize("field, value", [
    ("onnx_sha256", "cd" * 32), ("checkpoint_sha256", "ef" * 32), ("height", 720),
    ("width", 1280), ("rows", 33), ("cols", 44), ("mode", "monocular"), ("precision", "bf16"),
    ("tensorrt_version", "10.13.0"), ("gpu_name", "NVIDIA GeForce RTX 4090 (sm_89)"),
    ("max_batch", 4),
])
def test_any_key_difference_means_rebuild(cached, field, value):
    plan, key = cached
    reasons = stale_reasons(plan, dataclasses.replace(key, **{field: value}))
    assert len(reasons) == 1 and reasons[0].startswith(f"{field}:")
    assert repr(value) in reasons[0]


def test_new_checkpoint_export_lands_in_the_same_slot_but_is_stale(tmp_path, cached):
    plan, key = cached
    retrained = write_onnx(tmp_path / "model.onnx", **{**METADATA, "checkpoint_sha256": "12" * 32})
    info = read_onnx_info(retrained)
    assert cached_plan_path(tmp_path / "cache", info, "fp16") == plan
    fields = {r.split(":")[0] for r in stale_reasons(plan, plan_key(info, "fp16", HERE))}
    assert fields == {"onnx_sha256", "checkpoint_sha256"}


def test_cache_slot_depends_on_size_and_precision(tmp_path, onnx_file):
    info = read_onnx_info(onnx_file)
    slots = {cached_plan_path(tmp_path, info, p) for p in ("fp16", "bf16", "fp32")}
    assert len(slots) == 3
    assert cached_plan_path(tmp_path, info, "bf16").name == "model_640x480_bf16.engine"


def test_missing_or_broken_sidecar_means_rebuild(cached):
    plan, key = cached
    sidecar_path(plan).write_text("{not json")
    assert "unreadable" in stale_reasons(plan, key)[0]
    sidecar_path(plan).write_text(json.dumps({"precision": "fp16"}))
    assert "lacks" in stale_reasons(plan, key)[0]
    sidecar_path(plan).write_text(json.dumps({**key.to_dict(), "height": "tall"}))
    assert "height='tall' is not a int" in stale_reasons(plan, key)[0]
    sidecar_path(plan).unlink()
    assert "has no sidecar" in stale_reasons(plan, key)[0]
    plan.unlink()
    assert stale_reasons(plan, key) == [f"no engine at {plan}"]


def test_given_plan_for_another_gpu_is_refused(cached):
    plan, key = cached
    assert check_given_plan(plan, HERE) == key
    laptop = RuntimeIdentity(HERE.tensorrt_version, "NVIDIA GeForce RTX 3060 Laptop GPU (sm_86)")
    with pytest.raises(ModelFileError) as err:
        check_given_plan(plan, laptop)
    message = str(err.value)
    assert "H100" in message and "RTX 3060" in message and "build-engine" in message
    assert "TensorRT" not in message.split("built for")[1].split(";")[0]  # only the GPU differs


def test_given_plan_for_another_tensorrt_is_refused(cached):
    plan, _ = cached
    with pytest.raises(ModelFileError, match=r"TensorRT 10\.9\.0 \(this machine has 10\.3\.0\)"):
        check_given_plan(plan, RuntimeIdentity("10.3.0", HERE.gpu_name))


def test_given_plan_without_sidecar_or_missing(cached, tmp_path):
    plan, _ = cached
    sidecar_path(plan).unlink()
    assert check_given_plan(plan, HERE) is None  # only deserialisation can judge it
    with pytest.raises(ModelFileError, match="does not exist"):
        check_given_plan(tmp_path / "nope.engine", HERE)


def test_plan_key_rejects_unknown_precision(onnx_file):
    with pytest.raises(ValueError, match="int8"):
        plan_key(read_onnx_info(onnx_file), "int8", HERE)


def test_key_from_sidecar_dict_coerces_types():
    raw = {**dataclasses.asdict(PlanKey("a", "b", 1, 2, 3, 4, "completion", "fp16", "10", "g")),
           "height": "1"}
    assert PlanKey.from_dict(raw).height == 1


# --- runtime pieces that need no GPU ---------------------------------------------------------

def test_io_names_are_the_exporters():
    from lingbot_depth_ros.model.export import INPUT_NAMES, OUTPUT_NAMES

    assert (RGB_INPUT, DEPTH_INPUT) == INPUT_NAMES
    assert (DEPTH_OUTPUT, MASK_OUTPUT) == OUTPUT_NAMES


def test_device_side_masking_equals_the_shared_host_rule():
    """confident_depth (run on the GPU by the engine) == prediction_from_outputs."""
    rng = np.random.default_rng(3)
    depth = rng.uniform(-1, 5, (48, 64)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    depth[rng.random(depth.shape) < 0.05] = np.inf
    mask = rng.random(depth.shape).astype(np.float32)
    mask[0, :8] = 0.5  # exactly at the threshold: dropped
    out = torch.empty(depth.shape)
    got = confident_depth(torch.from_numpy(depth), torch.from_numpy(mask), 0.5, out=out)
    assert got is out
    want = prediction_from_outputs(depth, mask, 0.5)
    np.testing.assert_array_equal(got.numpy(), want)
    assert 0.2 < np.isnan(want).mean() < 0.8


@pytest.mark.parametrize("option, index", [(None, 0), ("auto", 0), (1, 1), ("cuda", 0),
                                           ("cuda:2", 2), ("3", 3), ("cpu", None)])
def test_cuda_device_index(option, index):
    assert cuda_device_index(option) == index


def test_cuda_device_index_rejects_nonsense():
    with pytest.raises(ValueError, match="device must be"):
        cuda_device_index("gpu0")


# --- unavailable paths (this CPU machine) ---------------------------------------------------

@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed here")
def test_missing_tensorrt_is_engine_unavailable(onnx_file):
    with pytest.raises(EngineUnavailableError, match="tensorrt: not installed"):
        import_tensorrt()
    with pytest.raises(EngineUnavailableError, match="tensorrt: not installed") as err:
        create_engine("tensorrt", onnx=str(onnx_file))
    assert err.value.reason == "engine_unavailable"


@pytest.mark.skipif(HAVE_CUDA, reason="a CUDA device is present here")
def test_missing_cuda_is_engine_unavailable():
    with pytest.raises(EngineUnavailableError, match="tensorrt: no CUDA device"):
        require_cuda(0)


def test_no_model_file_is_a_model_file_error():
    with pytest.raises(ModelFileError, match="engine_file or onnx"):
        create_engine("tensorrt")


# --- real TensorRT (only with tensorrt and a CUDA GPU) --------------------------------------

needs_gpu = pytest.mark.skipif(
    not (HAVE_TENSORRT and HAVE_CUDA),
    reason="needs the tensorrt package and a CUDA GPU "
           f"(tensorrt {'found' if HAVE_TENSORRT else 'not installed'}, "
           f"CUDA {'available' if HAVE_CUDA else 'not available'})")


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    from lingbot_depth_ros.model import build_model, tiny_config
    from lingbot_depth_ros.model.export import export_onnx

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("trt") / "tiny.onnx"
    return export_onnx(build_model(tiny_config()), path, 480, 640, num_tokens=300)


@needs_gpu
def test_fp32_engine_matches_onnxruntime_and_caches(tiny_export, tmp_path):
    from lingbot_depth_ros.core.captures import load_capture

    frame = load_capture(EXAMPLES / "3")
    reference = create_engine("onnxruntime", onnx=str(tiny_export),
                              providers=["CPUExecutionProvider"], refine_measured=True)
    engine = create_engine("tensorrt", onnx=str(tiny_export), precision="fp32",
                           cache_dir=str(tmp_path), refine_measured=True)
    ours, theirs = engine.complete(frame).depth, reference.complete(frame).depth
    # A random mask head sits near the 0.5 threshold, so a few pixels may flip either way.
    assert (np.isfinite(ours) == np.isfinite(theirs)).mean() > 0.99
    both = np.isfinite(ours) & np.isfinite(theirs)
    assert both.sum() > 1000
    np.testing.assert_allclose(ours[both], theirs[both], rtol=1e-3)
    sidecar = sidecar_path(engine.plan_path)
    built_at = sidecar.stat().st_mtime_ns
    engine.close()
    again = create_engine("tensorrt", onnx=str(tiny_export), precision="fp32",
                          cache_dir=str(tmp_path))
    assert again.plan_path == engine.plan_path and sidecar.stat().st_mtime_ns == built_at
    assert (tmp_path / "timing.cache").stat().st_size > 0
    again.close()
    # A plan recorded as built by another TensorRT is rebuilt in place.
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "tensorrt_version": "9.0"}))
    rebuilt = create_engine("tensorrt", onnx=str(tiny_export), precision="fp32",
                            cache_dir=str(tmp_path))
    assert read_sidecar(rebuilt.plan_path) == rebuilt.key
    assert rebuilt.key.tensorrt_version != "9.0"


@needs_gpu
def test_prebuilt_engine_file_runs_and_resizes_another_size(tiny_export, tmp_path):
    from lingbot_depth_ros.core.captures import load_capture
    from lingbot_depth_ros.core.frame import RGBDFrame
    from lingbot_depth_ros.engines.trt_build import build_engine

    plan = tmp_path / "tiny.engine"
    key = build_engine(tiny_export, plan, precision="fp16", timing_cache=tmp_path / "t.cache")
    assert read_sidecar(plan) == key and key.precision == "fp16"
    engine = create_engine("tensorrt", engine_file=str(plan))
    frame = load_capture(EXAMPLES / "0")
    result = engine.complete(frame)
    assert result.depth.shape == (480, 640) and result.engine == "tensorrt"
    small = RGBDFrame(rgb=frame.rgb[:240, :320].copy(), depth=frame.depth[:240, :320].copy(),
                      K=frame.K)
    resized = engine.complete(small)  # through the plan's 640x480 and back
    assert resized.depth.shape == (240, 320)
    measured = np.isfinite(small.depth)
    assert np.array_equal(resized.depth[measured], small.depth[measured])
    assert np.isfinite(resized.depth[~measured]).any()


# --- build-engine command -------------------------------------------------------------------

def test_build_engine_command_arguments(onnx_file, tmp_path, capsys):
    from lingbot_depth_ros.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["build-engine", "--onnx", str(onnx_file), "--bf16",
                              "--out", str(tmp_path / "m.engine"), "--workspace-gb", "2.5",
                              "--timing-cache", str(tmp_path / "t.cache")])
    assert (args.precision, args.workspace_gb, args.timing_cache) == ("bf16", 2.5, tmp_path / "t.cache")
    for bad in (["--fp16", "--fp32"], [], ["--fp16", "--workspace-gb", "0"]):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(["build-engine", "--onnx", str(onnx_file), "--out", "x.engine", *bad])
        assert exit_.value.code == 2


@pytest.mark.skipif(HAVE_TENSORRT, reason="tensorrt is installed here")
def test_build_engine_command_without_tensorrt(onnx_file, tmp_path, capsys):
    from lingbot_depth_ros.cli import main

    out = tmp_path / "m.engine"
    assert main(["build-engine", "--onnx", str(onnx_file), "--fp16", "--out", str(out)]) == 2
    assert "build-engine: error: tensorrt: not installed" in capsys.readouterr().err
    assert not out.exists() and not (tmp_path / "m.engine.partial").exists()
