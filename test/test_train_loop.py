"""`lingbot-depth train` on the real example captures with a tiny network (CPU).

One short run is shared: its loss must fall, its checkpoint must load everywhere a user
would load it (load_checkpoint, the torch engine, ONNX export + onnxruntime), and its
report must hold before/after numbers. Resume is checked bit for bit against an
uninterrupted run of the same length.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lingbot_depth_ros.core.captures import load_capture
from lingbot_depth_ros.core.errors import ModelFileError
from lingbot_depth_ros.core.frame import SourceMask
from lingbot_depth_ros.engines.registry import create_engine
from lingbot_depth_ros.model import load_checkpoint
from lingbot_depth_ros.train.config import TrainConfigError, load_config
from lingbot_depth_ros.train.loop import train

REPO = Path(__file__).resolve().parents[1]
EXAMPLE_YAML = REPO / "config" / "train_example.yaml"
STEPS = 120


def tiny_cfg(out_dir: Path, steps: int, **top):
    """The documented example config (tiny net, 84x112 crops), shortened for a test."""
    cfg = load_config(EXAMPLE_YAML)
    cfg.out_dir = str(out_dir)
    cfg.steps = steps
    cfg.batch_size = 2
    cfg.threads = 1
    cfg.log_every = 1
    cfg.optim.encoder_lr = cfg.optim.decoder_lr = 3e-3
    cfg.optim.encoder_warmup_iters = cfg.optim.decoder_warmup_iters = 3
    cfg.eval.levels, cfg.eval.seeds, cfg.eval.baselines = ["medium"], [0], []
    for key, value in top.items():
        setattr(cfg, key, value)
    return cfg


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    return out, train(tiny_cfg(out, steps=STEPS, batch_size=4, save_every=STEPS // 2))


def test_loss_falls(short_run):
    out, outcome = short_run
    losses = outcome.losses
    assert len(losses) == STEPS and all(np.isfinite(losses))
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.8 * first, f"loss did not fall: first steps {first:.3f} m, last {last:.3f} m"
    rows = read_csv(out / "train_log.csv")
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    # Linear warm-up over 3 steps, then halving every 100 steps (rates logged after a step).
    lrs = [float(r["lr_encoder"]) for r in rows]
    assert lrs[0] == pytest.approx(3e-3 * 2 / 3, rel=1e-4)
    assert lrs[2] == lrs[98] == pytest.approx(3e-3, rel=1e-4)
    assert lrs[99] == lrs[-1] == pytest.approx(1.5e-3, rel=1e-4)
    assert 0.05 < float(rows[-1]["kept_tokens"]) < 0.45  # 60-90 % masked plus holes


def test_checkpoint_is_official_format_and_loads_in_the_engines(short_run, tmp_path):
    out, outcome = short_run
    final = outcome.final_checkpoint
    raw = torch.load(final, map_location="cpu", weights_only=True)
    assert set(raw) == {"model_config", "model"}
    model = load_checkpoint(final)
    for key, value in outcome.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value.cpu()), key
    frame = load_capture(REPO / "examples" / "1")
    result = create_engine("torch", checkpoint=str(final), device="cpu").complete(frame)
    holes = ~np.isfinite(frame.depth)
    assert np.all(result.source[holes] == SourceMask.FILLED)
    assert np.all(np.isfinite(result.depth[holes]) & (result.depth[holes] > 0))
    pytest.importorskip("lingbot_depth_ros.model.export")
    pytest.importorskip("onnxruntime")
    from lingbot_depth_ros.model.export import export_onnx

    onnx_path = export_onnx(model, tmp_path / "tiny.onnx", frame.height, frame.width)
    ort = create_engine("onnxruntime", onnx=str(onnx_path)).complete(frame)
    np.testing.assert_allclose(ort.depth[holes], result.depth[holes], rtol=1e-3, atol=1e-3)


def test_report_holds_before_and_after_on_the_held_out_capture(short_run):
    out, outcome = short_run
    report = json.loads((out / "report" / "report.json").read_text())
    assert report["heldout_frames"] == ["examples/3"]
    assert "examples/3" not in report["train_frames"] and len(report["train_frames"]) == 3
    for side in ("before", "after"):
        metrics = report[side]["medium"]["masked"]
        assert metrics["count"] > 1000 and np.isfinite(metrics["rmse"])
    md = (out / "report" / "report.md").read_text()
    assert "| medium | rmse |" in md
    evals = read_csv(out / "eval_log.csv")
    assert [int(r["step"]) for r in evals] == [0, STEPS]
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == [
        "step_0000000.pt", f"step_{STEPS // 2:07d}.pt", f"step_{STEPS:07d}.pt"]


def test_resume_gives_the_same_state_as_an_uninterrupted_run(tmp_path):
    straight = train(tiny_cfg(tmp_path / "straight", steps=6, save_every=100))
    train(tiny_cfg(tmp_path / "split", steps=3, save_every=100))
    with pytest.raises(TrainConfigError, match="--resume"):
        train(tiny_cfg(tmp_path / "split", steps=6))  # a second start must not overwrite
    resumed = train(tiny_cfg(tmp_path / "split", steps=6, save_every=100), resume=True)
    assert resumed.step == straight.step == 6
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    sa = torch.load(tmp_path / "straight" / "trainer_state.pt", weights_only=False)
    sb = torch.load(tmp_path / "split" / "trainer_state.pt", weights_only=False)
    for pa, pb in zip(sa["optimizer"]["state"].values(), sb["optimizer"]["state"].values()):
        assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert sa["scheduler"]["last_epoch"] == sb["scheduler"]["last_epoch"] == 6
    rows_a = read_csv(tmp_path / "straight" / "train_log.csv")
    rows_b = read_csv(tmp_path / "split" / "train_log.csv")
    assert [r["loss"] for r in rows_a] == [r["loss"] for r in rows_b]


def test_resume_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="nothing to resume"):
        train(tiny_cfg(tmp_path / "empty", steps=2), resume=True)
