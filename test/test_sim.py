"""The simulator: scenes reproducible from their seed, the sensor failing where a real stereo
camera fails (glass, mirrors, occlusion shadows) and not on textured surfaces, the datasheet's
depth noise, and registration to the colour camera. Rendering tests run at 320x240 (a
quarter of the pixels of the real mode) with few samples per pixel, a couple of seconds each."""

from __future__ import annotations

import math
import time

import cv2
import numpy as np
import pytest
import yaml

from lingbot_depth_ros.sim import stereo
from lingbot_depth_ros.sim.cameras import CAMERAS, camera_model
from lingbot_depth_ros.sim.config import SimConfigError, load_sim_config
from lingbot_depth_ros.sim.materials import LABELS
from lingbot_depth_ros.sim.noise import add_disparity_noise
from lingbot_depth_ros.sim.scene import generate_scene

from sim_scenes import materials_scene, occluder_scene

try:
    from lingbot_depth_ros.sim.render import mitsuba
    mitsuba()
    RENDER_SKIP = ""
except Exception as exc:  # noqa: BLE001 - any failure to start the renderer is a skip reason
    RENDER_SKIP = f"Mitsuba 3 does not start here ({exc}); pip install mitsuba"
needs_renderer = pytest.mark.skipif(bool(RENDER_SKIP), reason=RENDER_SKIP or "n/a")

#: a sensor pixel is "bad" when missing or off by more than this share of the true depth
WRONG_SHARE = 0.10
TEST_W, TEST_H = 320, 240


@pytest.fixture(scope="module")
def config():
    return load_sim_config()  # the quality the data command renders at


def bad_share(depth: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    d, g = depth[mask], truth[mask]
    bad = ~np.isfinite(d) | (np.abs(d - g) > WRONG_SHARE * g)
    return float(bad.mean())


@pytest.fixture(scope="module")
def material_frames(config):
    """The materials scene through every camera model, in the left imager's frame."""
    if RENDER_SKIP:
        pytest.skip(RENDER_SKIP)
    from lingbot_depth_ros.sim.frame import simulate_frame
    scene = materials_scene()
    return {name: simulate_frame(scene.seed, cam.at_resolution(TEST_W, TEST_H), config, scene=scene)
            for name, cam in CAMERAS.items()}


@needs_renderer
@pytest.mark.parametrize("camera", sorted(CAMERAS))
def test_glass_and_mirror_mostly_missing_or_wrong(material_frames, camera):
    frame = material_frames[camera]
    for kind in ("glass", "mirror"):
        mask = frame.labels_ir == LABELS[kind]
        assert mask.sum() > 500, f"{kind} should fill part of the view"
        share = bad_share(frame.depth_ir, frame.depth_ir_gt, mask)
        assert share >= 0.5, f"{camera}: only {share:.0%} of the {kind} pixels missing or wrong"


@needs_renderer
@pytest.mark.parametrize("camera", ["d435", "d455", "gemini335"])
def test_textured_surface_measured(material_frames, camera):
    """Textured diffuse surface at 0.75 m, its interior: pixels whose matching window lies on
    it (the mask eroded by the window's half-size + 1); a real sensor also fails at edges.
    Active cameras only: passive stereo's fill depends on the texture's contrast."""
    frame = material_frames[camera]
    cam = CAMERAS[camera].at_resolution(TEST_W, TEST_H)
    box = (frame.labels_ir == LABELS["textured"]) & (frame.depth_ir_gt < 1.5)
    k = cam.block_size + 2
    interior = cv2.erode(box.astype(np.uint8), np.ones((k, k), np.uint8)).astype(bool)
    assert interior.sum() > 1000
    share = bad_share(frame.depth_ir, frame.depth_ir_gt, interior)
    assert share <= 0.05, f"{camera}: {share:.1%} of the textured surface missing or wrong"


@needs_renderer
def test_registered_depth_matches_truth_in_colour_frame(material_frames):
    """After registration the sensor depth sits on the colour camera's truth (D435: colour
    15 mm right of the left imager, narrower field of view)."""
    frame = material_frames["d435"]
    both = np.isfinite(frame.depth) & np.isfinite(frame.depth_gt)
    assert both.mean() > 0.6
    rel = np.abs(frame.depth[both] - frame.depth_gt[both]) / frame.depth_gt[both]
    assert np.median(rel) < 0.03, f"median relative error {np.median(rel):.3f}"


@needs_renderer
@pytest.mark.parametrize("camera", ["d435", "zed2i"])
def test_occlusion_holes_on_the_side_the_baseline_predicts(config, camera):
    """The right imager sits to the right: the background just left of a foreground object is
    hidden from it, so the left-referenced depth has its occlusion hole on the LEFT side, about
    f b (1/z_near - 1/z_far) pixels wide; none on the right side."""
    from lingbot_depth_ros.sim.frame import simulate_frame
    scene = occluder_scene()
    cam = camera_model(camera).at_resolution(TEST_W, TEST_H)
    frame = simulate_frame(scene.seed, cam, config, scene=scene)
    width = cam.ir_K()[0, 0] * cam.baseline_m * (1 / 0.45 - 1 / 1.2)
    band = int(math.ceil(width))
    near = frame.depth_ir_gt < 0.8
    left_hole, right_hole = [], []
    for row in range(TEST_H // 4, 3 * TEST_H // 4):
        cols = np.flatnonzero(near[row])
        if cols.size == 0:
            continue
        missing = ~np.isfinite(frame.depth_ir[row])
        left_hole.append(missing[max(0, cols[0] - band):cols[0]].mean())
        right_hole.append(missing[cols[-1] + 1:cols[-1] + 1 + band].mean())
    left, right = float(np.mean(left_hole)), float(np.mean(right_hole))
    assert left > 0.6 and right < 0.25 and left > 3 * right, (
        f"{camera}: missing share {left:.2f} left, {right:.2f} right of the object")


@needs_renderer
def test_frame_reproducible_from_seed(config):
    from lingbot_depth_ros.sim.frame import simulate_frame
    cam = camera_model("d435").at_resolution(80, 60)
    a, b = (simulate_frame(11, cam, config) for _ in range(2))
    for name in ("rgb", "ir_left", "ir_right", "depth", "depth_gt", "labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    c = simulate_frame(12, cam, config)
    assert not np.array_equal(a.depth_gt, c.depth_gt, equal_nan=True)


@needs_renderer
def test_tiny_scene_renders_quickly_with_the_conventions(config):
    from lingbot_depth_ros.sim.frame import simulate_frame
    cam = camera_model("gemini335").at_resolution(80, 60)
    start = time.process_time()
    frame = simulate_frame(3, cam, config)
    assert time.process_time() - start < 20.0  # CPU seconds, all render threads together
    assert frame.rgb.shape == (60, 80, 3) and frame.rgb.dtype == np.uint8
    assert frame.ir_left.dtype == np.uint8 and frame.ir_left.shape == (60, 80)
    assert frame.depth.dtype == np.float32 and frame.labels.dtype == np.uint8
    finite = frame.depth[np.isfinite(frame.depth)]
    assert finite.size > 0 and finite.min() >= cam.min_depth_m and finite.max() <= cam.max_depth_m
    assert set(np.unique(frame.labels)) <= set(LABELS.values())


def test_scene_drawn_from_seed_only():
    config = load_sim_config()
    a, b, c = generate_scene(5, config), generate_scene(5, config), generate_scene(6, config)
    assert [o["name"] for o in a.objects] == [o["name"] for o in b.objects]
    for x, y in zip(a.objects, b.objects):
        assert x["material"]["kind"] == y["material"]["kind"]
        for key, value in x["params"].items():
            np.testing.assert_array_equal(np.asarray(value), np.asarray(y["params"][key]))
    np.testing.assert_array_equal(a.camera.origin, b.camera.origin)
    assert not np.allclose(a.camera.origin, c.camera.origin)


def test_scenes_hold_the_failure_materials():
    config = load_sim_config()
    kinds = {o["material"]["kind"] for seed in range(30) for o in generate_scene(seed, config).objects}
    assert {"glass", "mirror", "metal", "dark", "textured", "diffuse"} <= kinds
    assert {generate_scene(seed, config).kind for seed in range(30)} == {"tabletop", "room"}


@pytest.mark.parametrize("camera,depth_m,rms_frac", [("d435", 2.0, 0.02), ("d455", 4.0, 0.02)])
def test_depth_noise_follows_the_datasheet(camera, depth_m, rms_frac):
    """Disparity noise alone gives the datasheet's RMS at its distance (tolerance 10% of it)
    and four times the error at twice the distance."""
    cam = camera_model(camera)
    fx = cam.ir_K()[0, 0]
    rng = np.random.default_rng(0)
    rms = []
    for z in (depth_m, 2 * depth_m):
        disparity = np.full(200_000, fx * cam.baseline_m / z, np.float32)
        depth = fx * cam.baseline_m / add_disparity_noise(disparity, cam.disparity_sigma_px(), rng)
        rms.append(float(np.sqrt(np.mean((depth - z) ** 2))))
    assert rms[0] / depth_m == pytest.approx(rms_frac, rel=0.1)
    assert rms[1] / rms[0] == pytest.approx(4.0, rel=0.15)


def test_left_right_check_drops_inconsistent_matches():
    left = np.full((4, 20), 3.0, np.float32)
    right = np.full((4, 20), 3.0, np.float32)
    right[:, 5] = 7.0  # the right image disagrees where left pixels 8 point to
    checked = stereo.left_right_check(left, right)
    assert np.isnan(checked[:, 8]).all() and np.isnan(checked[:, :2]).all()  # x - d < 0: none
    assert np.isfinite(checked[:, 9:]).all()


def test_registration_of_a_plane_shifts_by_the_offset():
    K = np.array([[300.0, 0, 159.5], [0, 300.0, 119.5], [0, 0, 1]])
    depth = np.full((240, 320), 1.5, np.float32)
    depth[:, :100] = np.nan
    registered = stereo.register_depth(depth, K, K, 0.05, (240, 320))
    # a point at 1.5 m moves 300 * 0.05 / 1.5 = 10 px left in a camera 5 cm to the right
    assert np.isnan(registered[:, :89]).all() and np.isfinite(registered[:, 91:309]).all()
    np.testing.assert_allclose(registered[np.isfinite(registered)], 1.5)


def test_camera_names_and_bad_config(tmp_path):
    with pytest.raises(ValueError, match="unknown camera 'd999'"):
        camera_model("d999")
    bad = tmp_path / "sim.yaml"
    bad.write_text("scene_kinds: {tabletop: 1}\n")
    with pytest.raises(SimConfigError, match="lacks objects_per_scene"):
        load_sim_config(bad)
    good = load_sim_config()
    good["quality"]["projector_share"] = 1.0  # all samples to the projector: no scene light
    bad.write_text(yaml.safe_dump(good))
    with pytest.raises(SimConfigError, match="projector_share must be a number in"):
        load_sim_config(bad)


@needs_renderer
def test_labels_of_objects_sharing_a_material():
    """Mitsuba merges meshes with equal BSDFs into one unnamed shape unless told not to:
    two mirror boxes must still both be labelled (a KeyError once stopped a data run)."""
    from lingbot_depth_ros.sim.render import render_geometry
    from sim_scenes import _box
    scene = occluder_scene()
    scene.objects[1:] = [_box("a", (-0.15, 0.6, 0.0), (0.05, 0.05, 0.05), {"kind": "mirror"}),
                         _box("b", (0.15, 0.6, 0.0), (0.05, 0.05, 0.05), {"kind": "mirror"})]
    cam = camera_model("d435").at_resolution(80, 60)
    _, labels = render_geometry(scene, scene.camera, cam.ir_K(), 80, 60)
    mirror = labels == LABELS["mirror"]
    assert mirror[:, :40].any() and mirror[:, 40:].any()
