"""One synthetic frame through one camera model: scene -> IR pair, colour, perfect depth and
labels -> stereo matching and post-processing -> noise -> depth registered to colour."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from . import noise, render, stereo
from .cameras import CameraModel
from .scene import SceneSpec, generate_scene

#: projector: fixed pattern per device, a little wider than the imagers' field of view
PATTERN_SEED, PROJECTOR_FOV_MARGIN_DEG = 435, 6.0


@dataclass
class SimFrame:
    seed: int
    camera: str
    rgb: np.ndarray            # uint8 (H, W, 3), colour camera
    ir_left: np.ndarray        # uint8 (H, W), reference imager
    ir_right: np.ndarray
    depth: np.ndarray          # float32 metres, NaN = none: the simulated sensor, colour frame
    depth_gt: np.ndarray       # float32 metres, colour frame
    labels: np.ndarray         # uint8 material label, colour frame
    K: np.ndarray              # colour camera matrix
    depth_ir: np.ndarray       # the simulated sensor in the left imager's frame (pre-registration)
    depth_ir_gt: np.ndarray | None
    labels_ir: np.ndarray | None
    K_ir: np.ndarray
    scene_kind: str = ""
    seconds: dict = field(default_factory=dict)


def simulate_frame(seed: int, camera: CameraModel, config: dict,
                   scene: SceneSpec | None = None, ir_truth: bool = True) -> SimFrame:
    """Frame `seed` (its scene drawn from `config` unless `scene` is given). `ir_truth`:
    also the truth in the left imager's frame (else depth_ir_gt and labels_ir are None
    where the colour camera is elsewhere; the data command does not write them)."""
    spec = scene if scene is not None else generate_scene(seed, config)
    quality, ir_cfg = config["quality"], config["ir"]
    w, h = camera.width, camera.height
    K_ir, K_color = camera.ir_K(), camera.color_K()
    left_pose = spec.camera
    right_pose = left_pose.shifted(camera.baseline_m)
    color_pose = left_pose.shifted(camera.color_offset_m)
    seconds: dict = {}
    clock = time.process_time()
    rr_depth = int(quality.get("rr_depth", 5))
    ir_depth = int(quality.get("ir_max_depth", quality["max_depth"]))

    if camera.projector:
        pattern = render.dot_pattern(PATTERN_SEED, w, h,
                                     float(config["projector"]["dot_density"]))
        projector = {"pose": left_pose.shifted(camera.baseline_m / 2), "pattern": pattern,
                     "fov_deg": camera.ir_hfov_deg + PROJECTOR_FOV_MARGIN_DEG,
                     "power": spec.projector_power,
                     "share": float(quality.get("projector_share", 0.5))}
        left, right = render.render_images(spec, [left_pose, right_pose], K_ir, w, h,
                                           quality["ir_spp"], ir_depth,
                                           float(ir_cfg["ambient_share"]), projector, rr_depth)
        color = render.render_images(spec, [color_pose], K_color, w, h, quality["color_spp"],
                                     quality["max_depth"], rr_depth=rr_depth)[0]
    else:  # passive: the colour imagers are the stereo pair
        left, right = render.render_images(spec, [left_pose, right_pose], K_ir, w, h,
                                           quality["ir_spp"], quality["max_depth"],
                                           rr_depth=rr_depth)
        color = left
    seconds["render"] = time.process_time() - clock

    clock = time.process_time()
    separate = camera.projector or camera.color_offset_m != 0.0  # colour is not the left imager
    if separate:
        depth_gt, labels = render.render_geometry(spec, color_pose, K_color, w, h)
        depth_ir_gt, labels_ir = (render.render_geometry(spec, left_pose, K_ir, w, h)
                                  if ir_truth else (None, None))
    else:
        depth_gt, labels = render.render_geometry(spec, left_pose, K_ir, w, h)
        depth_ir_gt, labels_ir = depth_gt, labels
    seconds["geometry"] = time.process_time() - clock

    clock = time.process_time()
    rng = np.random.default_rng([int(seed), 1])
    ir_left, ir_right = noise.expose_ir(left, right, rng, float(ir_cfg["read_noise_dn"]),
                                        float(ir_cfg["full_well_dn"]))
    disparity = stereo.match(ir_left, ir_right, camera)
    disparity = noise.add_disparity_noise(disparity, camera.disparity_sigma_px(w), rng)
    depth_ir = stereo.disparity_to_depth(disparity, camera, K_ir[0, 0])
    depth = stereo.register_depth(depth_ir, K_ir, K_color, camera.color_offset_m, (h, w))
    seconds["stereo"] = time.process_time() - clock
    return SimFrame(int(seed), camera.name, noise.to_srgb8(color), ir_left, ir_right, depth,
                    depth_gt, labels, K_color, depth_ir, depth_ir_gt, labels_ir, K_ir,
                    spec.kind, seconds)
