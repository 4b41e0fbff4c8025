"""Render a SceneSpec with Mitsuba 3 (variant scalar_rgb, the one that runs on any x86-64
CPU): IR images lit by the dot projector, colour images, and a geometry pass (depth and
material label per pixel). The camera frames follow OpenCV (x right, y down, z forward)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..core.errors import LingbotDepthError
from .materials import LABELS, mitsuba_bsdf
from .scene import Pose, SceneSpec

VARIANT = "scalar_rgb"


class RendererUnavailable(LingbotDepthError):
    """Mitsuba 3 (pip install mitsuba) is not installed or cannot start."""
    reason = "renderer_unavailable"


@lru_cache(maxsize=1)
def mitsuba():
    """The mitsuba module with the scalar_rgb variant set."""
    try:
        import mitsuba as mi
        mi.set_variant(VARIANT)
    except (ImportError, AttributeError, RuntimeError) as exc:
        raise RendererUnavailable(f"the simulator renders with Mitsuba 3: pip install mitsuba "
                                  f"({type(exc).__name__}: {exc})") from None
    return mi


def set_render_threads(count: int) -> None:
    """Threads Mitsuba renders with in this process (one per local worker process)."""
    import drjit
    mitsuba()
    drjit.set_thread_count(max(1, int(count)))


def _to_world(pose: Pose):
    # Mitsuba's camera frame: x left, y up, z forward
    matrix = np.eye(4)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = (
        -pose.right, -pose.down, pose.forward, pose.origin)
    return mitsuba().ScalarTransform4f(matrix.tolist())


def _sensor(pose: Pose, K: np.ndarray, width: int, height: int, spp: int, seed: int,
            pixel_filter: str) -> dict:
    fov = float(np.degrees(2.0 * np.arctan(width / 2.0 / K[0, 0])))
    return {"type": "perspective", "fov": fov, "fov_axis": "x", "to_world": _to_world(pose),
            "near_clip": 0.01, "far_clip": 100.0,
            "film": {"type": "hdrfilm", "width": width, "height": height,
                     "rfilter": {"type": pixel_filter}},
            "sampler": {"type": "multijitter", "sample_count": int(spp), "seed": int(seed)}}


def _shapes(spec: SceneSpec) -> dict:
    mi = mitsuba()
    shapes = {}
    for obj in spec.objects:
        bsdf = mitsuba_bsdf(obj["material"], mi)
        if obj["shape"] == "rectangle" and bsdf["type"] == "diffuse":
            bsdf = {"type": "twosided", "bsdf": bsdf}
        params = obj["params"]
        if obj["shape"] == "blob":
            shapes[obj["name"]] = _mesh(obj["name"], params, bsdf)
            continue
        shape = {"type": obj["shape"], "bsdf": bsdf}
        for key, value in params.items():
            shape[key] = (mi.ScalarTransform4f(np.asarray(value).tolist()) if key == "to_world"
                          else value)
        shapes[obj["name"]] = shape
        if obj["shape"] == "cylinder":  # Mitsuba's cylinder is open: a lid on top
            lid = np.eye(4)
            lid[:3, :3] *= params["radius"]
            lid[:3, 3] = params["p1"]
            shapes[obj["name"] + "_lid"] = {"type": "disk", "bsdf": bsdf,
                                            "to_world": mi.ScalarTransform4f(lid.tolist())}
    return shapes


def _mesh(name: str, params: dict, bsdf: dict):
    import drjit
    mi = mitsuba()
    props = mi.Properties()
    props["bsdf"] = mi.load_dict(bsdf)
    vertices, faces, uvs = params["vertices"], params["faces"], params["uvs"]
    mesh = mi.Mesh(name, len(vertices), len(faces), props=props, has_vertex_normals=False,
                   has_vertex_texcoords=True)
    values = mi.traverse(mesh)
    values["vertex_positions"] = drjit.scalar.ArrayXf(vertices.astype(np.float32).ravel())
    values["faces"] = drjit.scalar.ArrayXu(faces.astype(np.uint32).ravel())
    values["vertex_texcoords"] = drjit.scalar.ArrayXf(uvs.astype(np.float32).ravel())
    values.update()
    return mesh


def _lights(spec: SceneSpec, share: float) -> dict:
    emitters = {}
    # A closed room hides the environment: every sample of it would be a wasted shadow ray.
    if spec.kind != "room":
        emitters["ambient"] = {"type": "constant",
                               "radiance": {"type": "rgb", "value": spec.ambient * share}}
    for i, light in enumerate(spec.lights):
        emitters[f"light{i}"] = {"type": "point", "position": [float(v) for v in light["position"]],
                                 "intensity": {"type": "rgb",
                                               "value": [v * share for v in light["intensity"]]}}
    return emitters


@lru_cache(maxsize=8)
def dot_pattern(seed: int, width: int, height: int, density: float) -> np.ndarray:
    """A projector's fixed pseudo-random dot pattern, (H, W, 3) float32 in [0, 1]."""
    import cv2
    rng = np.random.default_rng(seed)
    dots = (rng.random((height, width)) < density).astype(np.float32)
    dots = cv2.GaussianBlur(dots, (3, 3), 0.6)
    return np.repeat((dots / dots.max())[..., None], 3, axis=2)


def render_images(spec: SceneSpec, poses: list[Pose], K: np.ndarray, width: int, height: int,
                  spp: int, max_depth: int, light_share: float = 1.0,
                  projector: dict | None = None, rr_depth: int = 5) -> list[np.ndarray]:
    """Radiance images (H, W, 3) float32 seen from each pose, in one loaded scene.
    `projector`: {pose, pattern (H, W, 3), fov_deg, power, share} adds the dot projector
    (share: the part of the emitter samples it gets, in (0, 1))."""
    mi = mitsuba()
    scene = {"type": "scene", "integrator": {"type": "path", "max_depth": int(max_depth),
                                             "rr_depth": int(rr_depth)}}
    scene.update(_shapes(spec))
    lights = _lights(spec, light_share)
    scene.update(lights)
    if projector is not None:
        # Next-event estimation picks one emitter per sample, uniformly by default: the dots
        # (the signal the matcher needs) then get 1 sample in 3-5 and a noise of their own
        # that a real imager does not have. projector["share"] of the picks go to the projector.
        share = float(projector.get("share", 0.5))
        weight = share / (1.0 - share) * max(len(lights), 1)
        scene["projector"] = {
            "type": "projector", "to_world": _to_world(projector["pose"]),
            "fov": float(projector["fov_deg"]), "scale": float(projector["power"]),
            "sampling_weight": float(weight),
            "irradiance": {"type": "bitmap", "bitmap": mi.Bitmap(projector["pattern"]),
                           "raw": True, "filter_type": "nearest"}}
    for i, pose in enumerate(poses):
        scene[f"sensor{i}"] = _sensor(pose, K, width, height, spp, spec.seed + i, "box")
    loaded = mi.load_dict(scene)
    return [np.array(mi.render(loaded, sensor=i, seed=spec.seed + i), dtype=np.float32)[..., :3]
            for i in range(len(poses))]


def render_geometry(spec: SceneSpec, pose: Pose, K: np.ndarray, width: int,
                    height: int) -> tuple[np.ndarray, np.ndarray]:
    """Perfect z-depth (metres, NaN where nothing is hit) and the material label per pixel
    (uint8, materials.LABELS) of the first surface one ray per pixel hits."""
    mi = mitsuba()
    scene = {"type": "scene", "integrator": {"type": "aov", "aovs": "pos:position,idx:shape_index"},
             "sensor": _sensor(pose, K, width, height, 1, spec.seed, "box")}
    scene.update(_shapes(spec))
    # optimize=False: Mitsuba would merge meshes sharing a BSDF into one shape without an id
    loaded = mi.load_dict(scene, optimize=False)
    image = np.array(mi.render(loaded, seed=spec.seed), dtype=np.float64)
    index = np.rint(image[..., 3]).astype(np.int64)
    kinds = {obj["name"]: obj["material"]["kind"] for obj in spec.objects}
    table = np.zeros(len(loaded.shapes()) + 1, np.uint8)
    for i, shape in enumerate(loaded.shapes()):
        table[i + 1] = LABELS[kinds[shape.id().removesuffix("_lid")]]
    labels = table[np.clip(index, 0, len(table) - 1)]
    depth = pose.world_to_camera(image[..., :3].reshape(-1, 3))[:, 2].reshape(height, width)
    depth = np.where(index > 0, depth, np.nan).astype(np.float32)
    return depth, labels
