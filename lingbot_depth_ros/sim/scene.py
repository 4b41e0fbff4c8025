"""Random tabletop and room scenes, drawn from the distributions of a YAML config
(config/sim_scenes.yaml). Everything is drawn from one ``numpy`` generator seeded by the
frame's seed, so a frame is reproducible from its seed alone. World frame: metres, z up."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .materials import KINDS, draw_material
from .meshes import blob_mesh


@dataclass
class Pose:
    """A camera pose: optical centre and OpenCV axes (x right, y down, z forward) in world."""
    origin: np.ndarray
    right: np.ndarray
    down: np.ndarray
    forward: np.ndarray

    @staticmethod
    def look_at(origin, target, up=(0.0, 0.0, 1.0)) -> "Pose":
        origin = np.asarray(origin, np.float64)
        forward = np.asarray(target, np.float64) - origin
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, np.asarray(up, np.float64))
        if np.linalg.norm(right) < 1e-6:  # looking straight along `up`
            right = np.cross(forward, (0.0, 1.0, 0.0))
        right /= np.linalg.norm(right)
        return Pose(origin, right, np.cross(forward, right), forward)

    def shifted(self, dx: float) -> "Pose":
        """The same orientation, `dx` metres along the camera's own +x (right)."""
        return Pose(self.origin + dx * self.right, self.right, self.down, self.forward)

    def world_to_camera(self, points: np.ndarray) -> np.ndarray:
        rotation = np.stack([self.right, self.down, self.forward])
        return (points - self.origin) @ rotation.T


@dataclass
class SceneSpec:
    seed: int
    kind: str                       # "tabletop" | "room"
    objects: list[dict]             # {name, shape, params, material}
    lights: list[dict]              # {position, intensity (rgb W/sr)}
    ambient: float                  # constant environment radiance
    camera: Pose                    # the rig's reference (left imager) pose
    projector_power: float = 0.0    # scale of the dot projector's irradiance
    extras: dict = field(default_factory=dict)


def generate_scene(seed: int, config: dict) -> SceneSpec:
    """The scene of frame `seed` under `config` (the YAML's mapping, see sim.config)."""
    rng = np.random.default_rng(int(seed))
    kinds = config["scene_kinds"]
    kind = str(rng.choice(list(kinds), p=_weights(kinds)))
    objects: list[dict] = []
    if kind == "tabletop":
        camera, spots = _tabletop(rng, config["tabletop"], objects)
    else:
        camera, spots = _room(rng, config["room"], objects)
    _place_objects(rng, config, spots, objects)
    lights = _lights(rng, config["lights"], spots)
    low, high = config["lights"]["ambient"]
    return SceneSpec(int(seed), kind, objects, lights, float(rng.uniform(low, high)), camera,
                     float(rng.uniform(*config["projector"]["power"])))


def _weights(table: dict) -> np.ndarray:
    w = np.array([float(v) for v in table.values()])
    return w / w.sum()


def _surface_material(rng: np.random.Generator, config: dict) -> dict:
    kinds = config["surface_materials"]
    return draw_material(str(rng.choice(list(kinds), p=_weights(kinds))), rng)


def _rectangle(name: str, centre, half_u, half_v, material: dict) -> dict:
    """A rectangle spanning centre +- half_u +- half_v (vectors); normal u x v."""
    u, v = np.asarray(half_u, float), np.asarray(half_v, float)
    n = np.cross(u, v) / (np.linalg.norm(u) * np.linalg.norm(v))
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = u, v, n, centre
    return {"name": name, "shape": "rectangle", "params": {"to_world": matrix},
            "material": material}


def _tabletop(rng, cfg: dict, objects: list) -> tuple[Pose, dict]:
    half = rng.uniform(*cfg["table_size_m"], 2) / 2
    objects.append(_rectangle("table", (0, 0, 0), (half[0], 0, 0), (0, half[1], 0),
                              _surface_material(rng, cfg)))
    # floor far below and a wall behind, so that no ray escapes to the open background
    objects.append(_rectangle("floor", (0, 0, -0.75), (6, 0, 0), (0, 6, 0),
                              _surface_material(rng, cfg)))
    wall_y = half[1] + rng.uniform(0.2, 1.5)
    objects.append(_rectangle("wall", (0, wall_y, 1.0), (6, 0, 0), (0, 0, 2.0),
                              _surface_material(rng, cfg)))
    distance = rng.uniform(*cfg["camera_distance_m"])
    elevation = math.radians(rng.uniform(*cfg["camera_elevation_deg"]))
    azimuth = math.radians(rng.uniform(-35, 35)) - math.pi / 2  # in front of the wall
    target = np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), 0.05])
    origin = target + distance * np.array([math.cos(elevation) * math.cos(azimuth),
                                           math.cos(elevation) * math.sin(azimuth),
                                           math.sin(elevation)])
    spots = {"centre": target, "half": np.minimum(half * 0.8, 0.45), "floor_z": 0.0}
    return Pose.look_at(origin, target), spots


def _room(rng, cfg: dict, objects: list) -> tuple[Pose, dict]:
    sx, sy = rng.uniform(*cfg["size_m"], 2) / 2
    height = rng.uniform(*cfg["height_m"])
    objects.append(_rectangle("floor", (0, 0, 0), (sx, 0, 0), (0, sy, 0),
                              _surface_material(rng, cfg)))
    objects.append(_rectangle("ceiling", (0, 0, height), (0, sy, 0), (sx, 0, 0),
                              _surface_material(rng, cfg)))
    for i, (centre, u, v) in enumerate((((0, sy, height / 2), (sx, 0, 0), (0, 0, height / 2)),
                                        ((0, -sy, height / 2), (0, 0, height / 2), (sx, 0, 0)),
                                        ((sx, 0, height / 2), (0, 0, height / 2), (0, sy, 0)),
                                        ((-sx, 0, height / 2), (0, sy, 0), (0, 0, height / 2)))):
        objects.append(_rectangle(f"wall{i}", centre, u, v, _surface_material(rng, cfg)))
    camera_height = rng.uniform(*cfg["camera_height_m"])
    origin = np.array([rng.uniform(-0.3, 0.3) * sx, -sy * 0.85, camera_height])
    target = np.array([rng.uniform(-0.4, 0.4) * sx, rng.uniform(-0.3, 0.5) * sy,
                       rng.uniform(0.2, 1.0)])
    # lights inside the closed room (under the ceiling), not outside it
    spots = {"centre": np.array([target[0], target[1], 0.0]),
             "half": np.array([sx * 0.6, sy * 0.5]), "floor_z": 0.0,
             "light_box": (np.array([-sx + 0.3, -sy + 0.3, height * 0.6]),
                           np.array([sx - 0.3, sy - 0.3, height - 0.15]))}
    return Pose.look_at(origin, target), spots


def _place_objects(rng, config: dict, spots: dict, objects: list) -> None:
    """Objects resting on the support plane around spots["centre"], footprints not overlapping."""
    shapes, materials = config["shapes"], config["object_materials"]
    low, high = config["objects_per_scene"]
    placed: list[tuple[float, float, float]] = []
    for i in range(int(rng.integers(low, high + 1))):
        size = float(rng.uniform(*config["object_size_m"]))
        for _ in range(20):  # rejection sampling of a free footprint
            x, y = spots["centre"][:2] + rng.uniform(-1, 1, 2) * spots["half"]
            if all(math.hypot(x - px, y - py) > size + pr for px, py, pr in placed):
                break
        else:
            continue
        placed.append((x, y, size))
        shape = str(rng.choice(list(shapes), p=_weights(shapes)))
        kind = str(rng.choice(list(materials), p=_weights(materials)))
        if kind not in KINDS:
            raise ValueError(f"object_materials names unknown kind '{kind}'")
        objects.append({"name": f"object{i}", "shape": shape,
                        "params": _shape_params(rng, shape, (x, y, spots["floor_z"]), size),
                        "material": draw_material(kind, rng)})


def _shape_params(rng, shape: str, base, size: float) -> dict:
    x, y, z = base
    if shape == "sphere":
        return {"center": [x, y, z + size], "radius": size}
    if shape == "cube":
        half = size * rng.uniform(0.5, 1.0, 3)
        matrix = np.eye(4)
        angle = rng.uniform(0, math.pi)
        c, s = math.cos(angle), math.sin(angle)
        matrix[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ np.diag(half)
        matrix[:3, 3] = (x, y, z + half[2])
        return {"to_world": matrix}
    if shape == "cylinder":
        height = size * rng.uniform(1.0, 3.0)
        return {"p0": [x, y, z], "p1": [x, y, z + height], "radius": size * rng.uniform(0.4, 1.0)}
    if shape == "blob":
        vertices, faces, uvs = blob_mesh(rng, size)
        lift = z - float(vertices[:, 2].min())  # resting on the support
        return {"vertices": vertices + np.array([x, y, lift], np.float32), "faces": faces, "uvs": uvs}
    raise ValueError(f"unknown shape '{shape}': sphere, cube, cylinder, blob")


def _lights(rng, cfg: dict, spots: dict) -> list[dict]:
    lights = []
    for _ in range(int(rng.integers(cfg["count"][0], cfg["count"][1] + 1))):
        if "light_box" in spots:
            position = rng.uniform(*spots["light_box"])
        else:
            position = spots["centre"] + np.array([rng.uniform(-2, 2), rng.uniform(-2, 1),
                                                   rng.uniform(1.2, 2.5)])
        tint = rng.uniform(0.8, 1.0, 3)
        lights.append({"position": position,
                       "intensity": [float(v) for v in tint * rng.uniform(*cfg["intensity"])]})
    return lights
