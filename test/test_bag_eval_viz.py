"""`bag eval` (block protocol per frame + temporal stability) and `bag viz` (side-by-side
clip with one depth scale) on bags written from examples/."""

import json

import cv2
import numpy as np
import pytest
from bag_helpers import EXAMPLES, make_demo, run_cli

from lingbot_depth_ros.bag.demo import DEMO_START_NS
from lingbot_depth_ros.bag.evaluate import evaluate_bag
from lingbot_depth_ros.core.captures import find_captures, load_capture
from lingbot_depth_ros.core.metrics import METRIC_NAMES
from lingbot_depth_ros.core.frame import RGBDFrame
from lingbot_depth_ros.core.protocol import capture_seed, corrupt_depth, score_completion
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.ros.params import NodeConfig

CONFIG = NodeConfig.from_values({})
CAPTURES = find_captures(EXAMPLES)


@pytest.fixture(scope="module")
def moving_bag(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("eval"), "moving.mcap", repeat=2)


@pytest.fixture(scope="module")
def static_bag(tmp_path_factory):
    return make_demo(tmp_path_factory.mktemp("static"), "static.mcap", captures=CAPTURES[1], repeat=4)


def test_eval_cli_writes_per_engine_metrics(moving_bag, tmp_path, capsys):
    rc, out, _ = run_cli(["bag", "eval", moving_bag, "--engines", "nearest", "telea", "--level",
                          "hard", "--json", tmp_path / "r.json", "--no-progress"], capsys)
    assert rc == 0 and "nearest" in out and "telea" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert (report["protocol"], report["level"], report["pairs"], report["frames_scored"]) == ("blocks", "hard", 8, 8)
    for name in ("nearest", "telea"):
        r = report["engines"][name]
        assert r["frames"] == 8 and r["failed"] == {}
        assert set(METRIC_NAMES) <= set(r["masked"]) and r["masked"]["count"] > 0
        assert 0 < r["masked"]["abs_rel"] < 1 and 0 < r["masked"]["delta1"] <= 1
        assert r["all"]["count"] > r["masked"]["count"]  # all valid pixels vs the dropped ones
    assert report["engines"]["nearest"]["masked"] != report["engines"]["telea"]["masked"]


def test_eval_scores_equal_the_protocol_on_each_frame(moving_bag):
    """The bag path (decode, pair, validate) scores exactly what the protocol gives on the
    capture folders, with the per-frame seed from the colour stamp."""
    report = evaluate_bag(moving_bag, {"nearest": create_engine("nearest")}, CONFIG, level="medium",
                          seed=5, temporal=False, limit=4, show_progress=False)

    engine, per_frame = create_engine("nearest"), []
    for i, capture in enumerate(CAPTURES):
        frame = load_capture(capture, CONFIG.depth_scale, CONFIG.valid_range)
        stamp = DEMO_START_NS + i * round(1e9 / 30)
        c = corrupt_depth(frame.depth, "medium", capture_seed(5, str(stamp)))
        done = engine.complete(RGBDFrame(frame.rgb, c.depth, frame.K))
        per_frame.append(score_completion(done.depth, frame.depth, c.dropped)["masked"])
    expected = np.mean([m["rmse"] for m in per_frame])
    assert report["engines"]["nearest"]["masked"]["rmse"] == pytest.approx(expected, rel=1e-9)


def test_temporal_stability_zero_on_static_and_positive_on_moving(static_bag, moving_bag):
    engines = {"nearest": create_engine("nearest")}
    still = evaluate_bag(static_bag, engines, CONFIG, show_progress=False)
    t = still["engines"]["nearest"]["temporal"]
    assert t["frame_pairs"] == 3 and t["pixels"] > 0 and t["mean_abs_change_m"] == 0.0
    assert still["sensor_temporal"]["mean_abs_change_m"] == 0.0
    moving = evaluate_bag(moving_bag, engines, CONFIG, show_progress=False)
    assert moving["engines"]["nearest"]["temporal"]["mean_abs_change_m"] > 0.01


def test_viz_png_frames_share_one_scale(moving_bag, tmp_path, capsys):
    rc, out, _ = run_cli(["bag", "viz", moving_bag, tmp_path / "frames", "--engine", "nearest",
                          "--limit", "3", "--no-progress"], capsys)
    assert rc == 0 and "wrote 3 frames" in out
    files = sorted((tmp_path / "frames").glob("frame_*.png"))
    assert len(files) == 3
    first = cv2.imread(str(files[0]))
    assert first.shape == (480, 4 * 640, 3)
    # panel 4 is the source mask: measured and filled colours, no depth colours
    assert len(np.unique(first[100:, 3 * 640:].reshape(-1, 3), axis=0)) <= 4
    assert "depth scale" in out


def test_viz_mp4_from_processed_bag(moving_bag, tmp_path, capsys):
    rc, _, err = run_cli(["bag", "viz", moving_bag, tmp_path / "x.mp4", "--no-progress"], capsys)
    assert rc == 2 and "give --engine" in err  # no recorded outputs in a raw bag
    assert run_cli(["bag", "process", moving_bag, tmp_path / "done.mcap", "--engine", "nearest",
                    "--no-progress"], capsys)[0] == 0
    rc, out, _ = run_cli(["bag", "viz", tmp_path / "done.mcap", tmp_path / "clip.mp4", "--no-progress"],
                         capsys)
    assert rc == 0 and "recorded outputs" in out
    video = cv2.VideoCapture(str(tmp_path / "clip.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    ok, image = video.read()
    assert ok and image.shape == (480, 2560, 3)
    video.release()
