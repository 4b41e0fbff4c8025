"""Hand-built scenes for the simulator's tests: known materials at known places."""

from __future__ import annotations

import numpy as np

from lingbot_depth_ros.sim.materials import draw_material
from lingbot_depth_ros.sim.scene import Pose, SceneSpec, _rectangle


def _box(name: str, centre, half, material: dict) -> dict:
    matrix = np.eye(4)
    matrix[:3, :3] = np.diag(half)
    matrix[:3, 3] = centre
    return {"name": name, "shape": "cube", "params": {"to_world": matrix}, "material": material}


def _textured(seed: int) -> dict:
    # procedural only (no photo crops), so the texture does not depend on examples/
    rng = np.random.default_rng(seed)
    from lingbot_depth_ros.sim.materials import _procedural
    return {"kind": "textured", "texture": _procedural(rng)}


def materials_scene(seed: int = 3) -> SceneSpec:
    """Camera at the origin looking along +y at a textured wall 2 m away; in front of it a
    glass cube (left), a mirror facing the camera (centre top) and a textured box (right)."""
    wall = _rectangle("wall", (0, 2.0, 0), (0, 0, 2.5), (3.0, 0, 0), _textured(seed))
    objects = [
        wall,
        _box("glass", (-0.15, 0.6, 0.0), (0.08, 0.08, 0.08),
             draw_material("glass", np.random.default_rng(seed))),
        _rectangle("mirror", (0.02, 0.8, 0.17), (0.12, 0, 0), (0, 0, 0.08), {"kind": "mirror"}),
        _box("box", (0.2, 0.75, -0.05), (0.1, 0.1, 0.1), _textured(seed + 1)),
    ]
    camera = Pose.look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    lights = [{"position": np.array([0.3, 0.0, 1.0]), "intensity": [2.0, 2.0, 2.0]}]
    return SceneSpec(seed, "test", objects, lights, 0.1, camera, 1.0)


def occluder_scene(seed: int = 5) -> SceneSpec:
    """A textured box 0.5 m in front of the camera before a textured wall at 1.2 m."""
    objects = [_rectangle("wall", (0, 1.2, 0), (0, 0, 1.5), (2.0, 0, 0), _textured(seed)),
               _box("box", (0.0, 0.5, 0.0), (0.06, 0.04, 0.3), _textured(seed + 1))]
    camera = Pose.look_at((0.0, 0.0, 0.0), (0.0, 1.0, 0.0))
    lights = [{"position": np.array([0.0, -0.2, 1.0]), "intensity": [2.0, 2.0, 2.0]}]
    return SceneSpec(seed, "test", objects, lights, 0.1, camera, 1.0)
