"""benchmarks/bench_gpu.py --dry-run: every path of the GPU check that needs no CUDA runs here,
so the script a lent GPU machine gets is known to work up to the CUDA-only parts."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench_gpu") / "dry.json"
    run = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--dry-run",
                          "--frames", "2", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    return run, json.loads(out.read_text()) if out.exists() else None


def test_dry_run_succeeds_and_writes_json_and_tables(dry_run):
    run, results = dry_run
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert results is not None
    assert "| level | mode | precision | median ms" in run.stdout
    assert results["meta"]["dry_run"] and results["meta"]["frames"] == 2


def test_every_section_ran_or_says_why_not(dry_run):
    _, results = dry_run
    for name in ("matmul", "latency", "batches", "options", "accuracy", "node"):
        assert results[name]["status"] in ("ok", "skipped"), (name, results[name])
    assert results["matmul"]["tflops"] > 0
    latency = results["latency"]["rows"]
    assert {(r["level"], r["mode"], r["precision"]) for r in latency} == {
        (level, mode, precision) for level in (0, 9) for mode in ("completion", "monocular")
        for precision in ("bf16", "fp16")}
    for row in latency:
        assert row["status"] == "ok" and row["p95_ms"] >= row["median_ms"] > 0
        assert row["floor_ms"] > 0 and row["over_floor"] > 0
    # gathering keeps only the depth tokens of patches with data: never more FLOPs than the
    # static graph, which keeps them all
    for row in latency:
        if row["mode"] == "completion":
            assert 0 < row["depth_tokens_kept"] <= row["tokens"]
            assert row["floor_ms"] <= row["floor_static_ms"]


def test_cuda_only_options_are_skipped_with_the_reason_and_the_rest_measured(dry_run):
    _, results = dry_run
    rows = {r["name"]: r for r in results["options"]["rows"]}
    assert rows["defaults"]["vs_default"] == 1.0
    for name in ("static_grid off", "bf16 autocast off (fp32)", "attention key_mask"):
        assert rows[name]["status"] == "ok", rows[name]
    for name in ("pinned_io off", "key_mask + cuda_graph", "key_mask + cuda_graph + compile"):
        if rows[name]["status"] != "ok":
            assert rows[name]["reason"] in ("needs CUDA", "--no-compile"), rows[name]


def test_batch_sizes_are_timed_per_frame_against_batch_1(dry_run):
    run, results = dry_run
    rows = results["batches"]["rows"]
    torch_rows = [r for r in rows if r["engine"].startswith("torch")]
    assert {(r["engine"], r["batch"]) for r in torch_rows} == {
        (engine, batch) for engine in ("torch defaults", "torch key_mask + cuda_graph")
        for batch in (1, 2, 4)}
    for row in torch_rows:
        assert row["status"] == "ok" and row["ms_per_frame"] > 0
        assert row["batch_ms"] == pytest.approx(row["ms_per_frame"] * row["batch"])
        assert row["vs_batch1"] == (1.0 if row["batch"] == 1 else pytest.approx(
            row["ms_per_frame"] / next(r["ms_per_frame"] for r in torch_rows
                                       if r["engine"] == row["engine"] and r["batch"] == 1)))
    for row in rows:  # TensorRT: measured where it imports, else skipped with the reason
        if row["engine"].startswith("tensorrt"):
            assert row["status"] == "ok" or row["reason"]
    ratios = results["targets"]["batch4_over_batch1"]
    assert set(ratios) >= {"torch defaults", "torch key_mask + cuda_graph"}
    assert results["targets"]["batch4_met"] == (min(ratios.values()) <= 0.6)
    assert "| engine (level 9, completion, bf16) | batch | ms per frame" in run.stdout


def test_accuracy_and_skipped_engines_are_reported(dry_run):
    _, results = dry_run
    rows = results["accuracy"]["rows"]
    assert {r["precision"] for r in rows} == {"bf16", "fp16"}
    assert all(r["pixels"] > 100_000 and 0 <= r["median_rel"] < 0.05 for r in rows)
    assert set(results["skipped_engines"]) == {"tensorrt", "onnxruntime(CUDA)"}
    node = results["node"]
    if node["status"] == "ok":  # rclpy present: the node ran the torch engine on the bag
        assert node["engine"].startswith("torch") and node["published"] > 0
        accounted = 2 * node["published"] + sum(node["dropped"].values()) + node["queued"]
        # every image the node received is accounted for; any lost on the way is reported
        assert accounted == node["received"] <= 2 * node["frames"]


def test_kept_depth_token_count_matches_the_networks_own(tmp_path):
    """The FLOP floor of the gathered path counts the depth tokens the network keeps."""
    import torch

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_setup import Budget, Setup

    from lingbot_depth_ros.model import load_checkpoint, tiny_config
    from lingbot_depth_ros.model.network import depth_patch_validity
    from tiny_models import frame_tensors

    setup = Setup.create(tiny_config(), torch.device("cpu"), [ROOT / "examples"], 1, 0, tmp_path,
                         True, Budget(60), False)
    model = load_checkpoint(setup.checkpoint)
    rows, cols = model.grid(480, 640, 9)
    counts = []
    for _, frame in setup.frames:
        image, depth = frame_tensors(frame)
        _, remapped = model.preprocess(image, depth, rows, cols)
        counts.append(setup.kept_depth_tokens(frame, 9))
        assert counts[-1] == int(depth_patch_validity(remapped, rows, cols).sum())
    assert min(counts) < rows * cols  # the captures' holes do empty some patches
