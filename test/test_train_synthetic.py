"""Supervised fine-tuning on synthetic frames beside real captures: the sample's weights sit
on the simulated sensor's misses, and a short run reports masked RMSE per material on held-out
synthetic frames (before, after, guided). Tiny network, 160x120 frames, a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lingbot_depth_ros.cli import main
from lingbot_depth_ros.train.config import SourceConfig, TrainConfigError

try:
    from lingbot_depth_ros.sim.render import mitsuba
    mitsuba()
    RENDER_SKIP = ""
except Exception as exc:  # noqa: BLE001 - any failure to start the renderer is a skip reason
    RENDER_SKIP = f"Mitsuba 3 does not start here ({exc}); pip install mitsuba"

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synthetic_dir(tmp_path_factory):
    if RENDER_SKIP:
        pytest.skip(RENDER_SKIP)
    out = tmp_path_factory.mktemp("simdata") / "sim"
    assert main(["simulate", "--out", str(out), "--frames", "4", "--width", "160", "--height",
                 "120", "--spp", "2", "--no-progress"]) == 0
    return out


def test_synthetic_sample_weighs_the_sensor_misses(synthetic_dir):
    from lingbot_depth_ros.core.captures import load_capture
    from lingbot_depth_ros.train.config import load_config
    from lingbot_depth_ros.train.synthetic import load_truth, synthetic_sample

    cfg = load_config(REPO / "config" / "train_example.yaml")
    cfg.augment.hflip_prob = 0.0
    folder = synthetic_dir / "000000"
    frame = load_capture(folder)
    truth, labels = load_truth(folder, cfg.data)
    sample = synthetic_sample(frame, truth, 4.0, cfg, np.random.default_rng(0))
    weight, target, depth = (sample[k].numpy() for k in ("weight", "target", "depth"))
    assert weight.shape == target.shape == tuple(cfg.data.crop_size)
    assert set(np.unique(weight)) <= {0.0, 1.0, 4.0}
    assert (weight[target == 0] == 0).all() and (weight[target > 0] > 0).all()
    heavy = weight == 4.0
    assert heavy.any(), "a random scene leaves some misses"
    # a heavy pixel is one the sensor left empty or got more than 10% wrong
    off = np.abs(depth[heavy] - target[heavy]) > 0.1 * target[heavy]
    assert ((depth[heavy] == 0) | off).all()
    light = weight == 1.0
    assert (np.abs(depth[light] - target[light]) <= 0.1 * target[light] + 1e-6).all()


def test_fine_tune_reports_rmse_per_material(synthetic_dir, tmp_path):
    from lingbot_depth_ros.train.config import load_config
    from lingbot_depth_ros.train.loop import train

    cfg = load_config(REPO / "config" / "train_example.yaml")
    cfg.out_dir, cfg.steps, cfg.batch_size, cfg.threads = str(tmp_path / "run"), 6, 2, 1
    cfg.save_every = 6
    cfg.eval.levels, cfg.eval.seeds, cfg.eval.baselines = ["medium"], [0], ["guided"]
    cfg.data.sources.append(SourceConfig(path=str(synthetic_dir), kind="synthetic", weight=1.0))
    cfg.data.holdout.frames = ["3", "sim/000003"]
    outcome = train(cfg)
    report = json.loads((Path(cfg.out_dir) / "report" / "report.json").read_text())
    assert "sim/000003" in report["heldout_frames"]
    assert any(k.startswith("sim/") for k in report["train_frames"])
    materials = report["materials"]
    assert set(materials) == {"before", "after", "guided"}
    assert set(materials["after"]) == {"glass", "mirror", "metal", "dark", "diffuse"}
    measured = [m["all"]["pixels"] for m in materials["after"].values()]
    assert sum(measured) > 0.5 * 160 * 120  # held-out frame: most pixels have a material
    assert all(np.isfinite(loss) for loss in outcome.losses)
    assert "per material" in (Path(cfg.out_dir) / "report" / "report.md").read_text()


def test_synthetic_source_options_are_checked():
    with pytest.raises(TrainConfigError, match="hole_weight must be positive"):
        SourceConfig(path="x", kind="synthetic", hole_weight=0.0)
    with pytest.raises(TrainConfigError, match="'captures', 'rosbag2' or 'synthetic'"):
        SourceConfig(path="x", kind="simulated")
