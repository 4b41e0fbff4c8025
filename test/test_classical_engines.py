"""The classical engines (guided, nearest, telea) on the shared real captures and on scenes
whose right answer is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lingbot_depth_ros.core.captures import find_captures, load_capture
from lingbot_depth_ros.core.errors import InvalidDepthError
from lingbot_depth_ros.core.frame import RGBDFrame, SourceMask
from lingbot_depth_ros.core.protocol import evaluate_engine, make_trials
from lingbot_depth_ros.engines import create_engine
from lingbot_depth_ros.engines.classical import GuidedEngine, NearestEngine, TeleaEngine

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
K = np.array([[300.0, 0, 80], [0, 300.0, 60], [0, 0, 1]])
CLASSICAL = ("guided", "nearest", "telea")


@pytest.fixture(scope="module")
def captures() -> list[RGBDFrame]:
    return [load_capture(p) for p in find_captures(EXAMPLES)]


@pytest.fixture(scope="module")
def medium_trials(captures):
    return make_trials(captures, "medium", [0])


def frame_of(depth: np.ndarray, rgb: np.ndarray | None = None) -> RGBDFrame:
    if rgb is None:
        rgb = np.full(depth.shape + (3,), 128, np.uint8)
    return RGBDFrame(rgb=rgb, depth=depth.astype(np.float32), K=K)


def test_registry_builds_each_engine_and_drops_model_options():
    for name, cls in (("guided", GuidedEngine), ("nearest", NearestEngine),
                      ("telea", TeleaEngine)):
        engine = create_engine(name, checkpoint="model.pt", onnx="m.onnx")
        assert isinstance(engine, cls) and engine.name == name
    assert create_engine("telea", radius=7).radius == 7
    assert create_engine("guided", sigma_color=0.3).params["sigma_color"] == 0.3


@pytest.mark.parametrize("name", CLASSICAL)
def test_measured_pixels_are_kept_bit_exactly(name, medium_trials):
    engine = create_engine(name)
    for trial in medium_trials:
        depth_in = trial.frame.depth.copy()
        result = engine.complete(trial.frame)
        measured = np.isfinite(depth_in)
        assert np.array_equal(trial.frame.depth, depth_in, equal_nan=True)  # input untouched
        assert np.array_equal(result.depth[measured].view(np.uint32),
                              depth_in[measured].view(np.uint32))
        assert np.all(result.source[measured] == SourceMask.MEASURED)
        assert np.all(result.source[~measured] == SourceMask.FILLED)
        assert np.all(np.isfinite(result.depth)) and result.depth.dtype == np.float32
        assert result.engine == name and result.timings_ms["fill"] > 0


@pytest.mark.parametrize("name", CLASSICAL)
@pytest.mark.parametrize("bad", [np.nan, 0.0, np.inf])
def test_all_invalid_depth_raises(name, bad):
    depth = np.full((24, 32), bad, np.float32)
    with pytest.raises(InvalidDepthError):
        create_engine(name).complete(frame_of(depth))


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (5, 1), (2, 3), (9, 13)])
def test_guided_fills_tiny_images_within_the_data_range(shape):
    rng = np.random.default_rng(3)
    depth = rng.uniform(1.0, 2.0, shape).astype(np.float32)
    depth.flat[1:] = np.where(rng.random(depth.size - 1) < 0.5, np.nan, depth.flat[1:])
    rgb = rng.integers(0, 256, shape + (3,), dtype=np.uint8)
    result = GuidedEngine().complete(frame_of(depth, rgb))
    assert np.all(np.isfinite(result.depth))
    valid = depth[np.isfinite(depth)]
    assert valid.min() - 1e-4 <= result.depth.min() and result.depth.max() <= valid.max() + 1e-4


def test_guided_continues_a_tilted_plane_through_a_hole():
    yy, xx = np.mgrid[0:120, 0:160]
    truth = (1.0 / (0.5 + 0.0008 * (yy - 60) + 0.0003 * (xx - 80))).astype(np.float32)
    depth = truth.copy()
    depth[40:80, 50:110] = np.nan
    hole = np.isnan(depth)
    errors = {name: np.abs(create_engine(name).complete(frame_of(depth)).depth - truth)[hole]
              for name in CLASSICAL}
    assert (errors["guided"] / truth[hole]).max() < 0.002  # a plane stays a plane
    assert errors["nearest"].max() > 10 * errors["guided"].max()
    assert errors["telea"].max() > 10 * errors["guided"].max()


def test_guided_follows_colour_into_a_hole():
    """A yellow disk at 1 m on a blue wall at 3 m; a hole cuts the disk's edge."""
    yy, xx = np.mgrid[0:120, 0:160]
    disk = (yy - 60) ** 2 + (xx - 80) ** 2 < 35 ** 2
    rgb = np.empty((120, 160, 3), np.uint8)
    rgb[:] = (40, 60, 200)
    rgb[disk] = (220, 180, 30)
    truth = np.where(disk, 1.0, 3.0).astype(np.float32)
    depth = truth.copy()
    depth[30:90, 85:135] = np.nan
    hole = np.isnan(depth)
    colour_blind = GuidedEngine(color_level=99).complete(frame_of(depth, rgb)).depth
    guided = GuidedEngine().complete(frame_of(depth, rgb)).depth
    nearest = NearestEngine().complete(frame_of(depth, rgb)).depth
    rmse = {name: float(np.sqrt(np.mean((d - truth)[hole] ** 2)))
            for name, d in (("guided", guided), ("blind", colour_blind), ("nearest", nearest))}
    assert rmse["guided"] < 0.8 * rmse["blind"]
    assert rmse["guided"] < 0.6 * rmse["nearest"]


def test_guided_beats_nearest_and_telea_on_the_protocol(medium_trials):
    """Medium level, seed 0, RMSE on the dropped pixels averaged over the 4 captures."""
    rmse = {name: evaluate_engine(create_engine(name), medium_trials)["masked"]["rmse"]
            for name in CLASSICAL}
    assert rmse["guided"] < 0.9 * min(rmse["nearest"], rmse["telea"]), rmse


def test_refine_measured_replaces_measured_pixels(captures):
    frame = captures[1]
    result = GuidedEngine(refine_measured=True).complete(frame)
    valid = np.isfinite(frame.depth)
    assert np.all(result.source[valid] == SourceMask.FILLED)
    assert not np.array_equal(result.depth[valid], frame.depth[valid])
    # a refinement, not a different scene: close to the measurement on most pixels
    rel = np.abs(result.depth[valid] - frame.depth[valid]) / frame.depth[valid]
    assert np.median(rel) < 0.02


@pytest.mark.parametrize("make", [lambda: TeleaEngine(radius=0),
                                  lambda: GuidedEngine(sigma_color=0),
                                  lambda: GuidedEngine(color_level=0),
                                  lambda: GuidedEngine(lambda_gradient=-1)])
def test_bad_engine_options_are_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_nearest_takes_the_closest_valid_pixel():
    depth = np.full((5, 7), np.nan, np.float32)
    depth[0, 0], depth[4, 6] = 1.0, 2.0
    out = NearestEngine().complete(frame_of(depth)).depth
    assert out[1, 1] == 1.0 and out[3, 5] == 2.0 and out[0, 2] == 1.0 and out[4, 4] == 2.0


def test_guided_ignores_zero_and_infinite_readings():
    """Frames should carry NaN for no data; zeros or inf from a careless caller must not leak
    into the prediction."""
    from lingbot_depth_ros.engines.guided import guided_fill

    depth = np.full((40, 60), 2.0, np.float32)
    depth[5:15, 5:15] = 0.0
    depth[20:30, 30:50] = np.inf
    depth[0, 0] = -1.0
    out = guided_fill(depth, np.full((40, 60, 3), 90, np.uint8))
    assert np.allclose(out, 2.0, rtol=1e-5)
