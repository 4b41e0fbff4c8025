"""Surface materials of the synthetic scenes, their per-pixel labels and their textures
(crops of the real captures in examples/, or procedural). Renderer-independent: a material is
a plain dict that ``render`` turns into a Mitsuba BSDF."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from ..paths import data_path

#: per-pixel material label values (uint8 label image); 0 = nothing hit (open background)
LABELS = {"none": 0, "diffuse": 1, "textured": 2, "glass": 3, "mirror": 4, "metal": 5, "dark": 6}
KINDS = tuple(k for k in LABELS if k != "none")
TEXTURE_SIZE = 256


def draw_material(kind: str, rng: np.random.Generator) -> dict:
    """One material of `kind` with its random parameters."""
    if kind == "diffuse":
        return {"kind": kind, "albedo": _colour(rng, 0.25, 0.85)}
    if kind == "textured":
        return {"kind": kind, "texture": draw_texture(rng)}
    if kind == "glass":
        return {"kind": kind, "ior": float(rng.uniform(1.45, 1.55))}
    if kind == "mirror":
        return {"kind": kind}
    if kind == "metal":
        return {"kind": kind, "metal": str(rng.choice(["Al", "Cr", "Ag"])),
                "roughness": float(rng.uniform(0.02, 0.15))}
    if kind == "dark":
        return {"kind": kind, "albedo": _colour(rng, 0.005, 0.025)}
    raise ValueError(f"unknown material kind '{kind}': one of {', '.join(KINDS)}")


def _colour(rng: np.random.Generator, low: float, high: float) -> list[float]:
    return [float(v) for v in rng.uniform(low, high, 3)]


def draw_texture(rng: np.random.Generator) -> np.ndarray:
    """A float32 (S, S, 3) linear-RGB texture in [0, 1]: a crop of a real image (half the time
    where examples/ exists) or a procedural pattern."""
    photos = _example_photos()
    if photos and rng.random() < 0.5:
        photo = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        side = int(rng.integers(min(h, w) // 4, min(h, w) // 2))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = cv2.resize(photo[y:y + side, x:x + side], (TEXTURE_SIZE, TEXTURE_SIZE),
                          interpolation=cv2.INTER_AREA)
        return _srgb_to_linear(crop.astype(np.float32) / 255.0)
    return _procedural(rng)


def _procedural(rng: np.random.Generator) -> np.ndarray:
    """Band-limited noise or a checker between two random colours."""
    size = TEXTURE_SIZE
    if rng.random() < 0.5:
        cells = int(rng.integers(4, 16))
        yy, xx = np.mgrid[0:size, 0:size] * cells // size
        pattern = ((yy + xx) % 2).astype(np.float32)
    else:
        coarse = rng.random((int(rng.integers(8, 48)),) * 2).astype(np.float32)
        pattern = cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)
        pattern += 0.35 * rng.random((size, size)).astype(np.float32)
        pattern = (pattern - pattern.min()) / max(float(np.ptp(pattern)), 1e-6)
    # one light and one dark colour: a pattern that stays visible in a mono IR image
    a, b = np.array(_colour(rng, 0.45, 0.9), np.float32), np.array(_colour(rng, 0.02, 0.25), np.float32)
    return (a * pattern[..., None] + b * (1.0 - pattern[..., None])).astype(np.float32)


def _srgb_to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4).astype(np.float32)


@lru_cache(maxsize=1)
def _example_photos() -> tuple[np.ndarray, ...]:
    """The colour images of examples/ (RGB uint8), empty where the folder is missing."""
    root = data_path("examples")
    photos = []
    for path in sorted(Path(root).glob("*/rgb.*")) if Path(root).is_dir() else []:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is not None:
            photos.append(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    return tuple(photos)


def mitsuba_bsdf(material: dict, mi) -> dict:
    """The Mitsuba 3 BSDF dict of a material (`mi` is the mitsuba module, variant set)."""
    kind = material["kind"]
    if kind in ("diffuse", "dark"):
        return {"type": "diffuse", "reflectance": {"type": "rgb", "value": material["albedo"]}}
    if kind == "textured":
        return {"type": "diffuse", "reflectance": {
            "type": "bitmap", "bitmap": mi.Bitmap(material["texture"]), "raw": True}}
    if kind == "glass":
        return {"type": "dielectric", "int_ior": material["ior"], "ext_ior": 1.0}
    if kind == "mirror":
        return {"type": "conductor", "material": "none"}
    if kind == "metal":
        return {"type": "roughconductor", "material": material["metal"],
                "alpha": material["roughness"]}
    raise ValueError(f"unknown material kind '{kind}'")
