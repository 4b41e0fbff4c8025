"""Training data: capture folders and a real rosbag2 mixed by weight, a stable held-out split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lingbot_depth_ros.bag.demo import write_demo_bag
from lingbot_depth_ros.train.config import (DataConfig, HoldoutConfig, SourceConfig, TrainConfig,
                                            TrainConfigError, load_config)
from lingbot_depth_ros.train.data import FrameRef, MaskedSamples, StepBatches, build_split, is_held_out

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.fixture(scope="module")
def bag(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bag") / "lab.mcap"
    write_demo_bag(EXAMPLES, path, repeat=2)  # 8 frames, RealSense topics
    return path


def mixed_data(bag: Path, **holdout) -> DataConfig:
    return DataConfig(sources=[SourceConfig(path=str(EXAMPLES), weight=1.0),
                               SourceConfig(path=str(bag), kind="rosbag2", weight=3.0, every_n=2)],
                      holdout=HoldoutConfig(**holdout), crop_size=(84, 112))


def test_bag_and_captures_mix_by_weight_with_named_holdout(bag, tmp_path):
    data = mixed_data(bag, frames=["examples/3", "lab/000001"])
    split = build_split(data, tmp_path / "cache")
    assert [f.key for f in split.heldout] == ["examples/3", "lab/000001"]
    train_keys = [f.key for frames in split.train for f in frames]
    assert train_keys == ["examples/0", "examples/1", "examples/2", "lab/000000", "lab/000002",
                          "lab/000003"]
    assert split.weights == pytest.approx([0.25, 0.75])
    # An extracted bag frame is the capture it was recorded from (every 2nd of 0,1,2,3,0,...).
    lab2 = split.train[1][1].load(data)
    assert np.array_equal(lab2.rgb, split.train[0][0].load(data).rgb)  # lab/000002 = examples/0
    ds = MaskedSamples(split, TrainConfig(data=data))
    picks = Counter(ds.pick(np.random.default_rng([0, i])).source for i in range(4000))
    assert picks["lab"] / 4000 == pytest.approx(0.75, abs=0.03)


def test_extraction_is_reused_and_redone_when_its_settings_change(bag, tmp_path):
    cache = tmp_path / "cache"
    build_split(mixed_data(bag, frames=["examples/3"]), cache)
    marker = cache / "lab" / ".complete"
    first = marker.stat().st_mtime_ns
    build_split(mixed_data(bag, frames=["examples/3"]), cache)
    assert marker.stat().st_mtime_ns == first
    data = mixed_data(bag, frames=["examples/3"])
    data.sources[1].every_n = 1
    split = build_split(data, cache)
    assert len(split.train[1]) == 8 and marker.stat().st_mtime_ns != first


def test_samples_are_a_pure_function_of_the_index(bag, tmp_path):
    data = mixed_data(bag, frames=["examples/3"])
    split = build_split(data, tmp_path / "cache")
    a, b = MaskedSamples(split, TrainConfig(data=data)), MaskedSamples(split, TrainConfig(data=data))
    s5, again, s6 = a[5], b[5], a[6]
    assert all(torch.equal(s5[k], again[k]) for k in s5)
    assert not torch.equal(s5["rgb"], s6["rgb"])
    assert s5["rgb"].shape == (3, 84, 112) and s5["keep"].shape == (6, 8)
    # Masked patches carry no depth; the target keeps the original measurement there.
    hidden = ~s5["keep"].repeat_interleave(14, 0).repeat_interleave(14, 1)
    assert torch.all(s5["depth"][hidden] == 0) and torch.any(s5["target"][hidden] > 0)


def test_fraction_holdout_is_stable_and_close_to_the_fraction():
    refs = [FrameRef("bag", f"{i:06d}", Path("."), 0.001) for i in range(3000)]
    holdout = HoldoutConfig(fraction=0.2, seed=7)
    chosen = [r.key for r in refs if is_held_out(r, holdout)]
    assert chosen == [r.key for r in refs if is_held_out(r, holdout)]
    assert len(chosen) / len(refs) == pytest.approx(0.2, abs=0.025)
    other = [r.key for r in refs if is_held_out(r, HoldoutConfig(fraction=0.2, seed=8))]
    assert other != chosen


def test_step_batches_are_disjoint_across_ranks_and_resume_replays_the_tail():
    full = [list(StepBatches(0, 5, 3, 2, rank, 2)) for rank in range(2)]
    flat = [i for rank in full for batch in rank for i in batch]
    assert sorted(flat) == list(range(5 * 2 * 2 * 3))
    assert list(StepBatches(3, 5, 3, 2, 1, 2)) == full[1][3 * 2:]


def test_bad_splits_are_config_errors(bag, tmp_path):
    with pytest.raises(TrainConfigError, match="no source has"):
        build_split(mixed_data(bag, frames=["examples/9"]), tmp_path / "c")
    with pytest.raises(TrainConfigError, match="held-out split is empty"):
        build_split(mixed_data(bag, fraction=0.0), tmp_path / "c")
    only = DataConfig(sources=[SourceConfig(path=str(EXAMPLES))],
                      holdout=HoldoutConfig(frames=["0", "1", "2", "3"]))
    with pytest.raises(TrainConfigError, match="nothing left to train"):
        build_split(only, tmp_path / "c")


def test_config_defaults_are_the_paper_and_typos_are_errors(tmp_path):
    cfg = TrainConfig()
    o = cfg.optim
    assert (o.betas, o.weight_decay, o.encoder_lr, o.decoder_lr) == ((0.9, 0.999), 0.05, 1e-5, 1e-4)
    assert (o.encoder_warmup_iters, o.halve_every, o.grad_clip, cfg.steps) == (2000, 25000, 1.0, 250000)
    assert (cfg.masking.mixed_mask_prob, cfg.masking.ratio_range, cfg.bf16) == (0.75, (0.6, 0.9), True)
    example = load_config(EXAMPLES.parent / "config" / "train_example.yaml")
    assert example.data.sources[0].path == str(EXAMPLES) and example.data.holdout.frames == ["3"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("optim: {encoder_lr: 1e-4, decoder_lrr: 1e-3}\n")  # "1e-4" is a YAML string
    with pytest.raises(TrainConfigError, match="decoder_lrr"):
        load_config(bad)
    bad.write_text("data: {crop_size: [100, 112]}\n")
    with pytest.raises(TrainConfigError, match="multiples of 14"):
        load_config(bad)
    good = tmp_path / "good.yaml"
    good.write_text("optim: {encoder_lr: 1e-4}\ndata: {sources: [{path: caps, weight: 2}]}\n")
    cfg = load_config(good)
    assert cfg.optim.encoder_lr == 1e-4 and cfg.data.sources[0].path == str(tmp_path / "caps")
